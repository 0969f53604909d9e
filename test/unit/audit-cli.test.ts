/**
 * `breaker audit verify|show` on a fresh commander program and a temp directory: output lines and exit codes.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { AuditEntry, AuditKind, append } from '../../src/audit/log';
import { registerAuditCommands } from '../../src/cli/audit';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'audit-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  out: string[];
  err: string[];
  code: number | undefined;
}

async function run(...args: string[]): Promise<Run> {
  const result: Run = { out: [], err: [], code: undefined };
  const program = new Command('breaker').exitOverride();
  program.configureOutput({ writeOut: (s) => result.out.push(s.trimEnd()), writeErr: (s) => result.err.push(s.trimEnd()) });
  registerAuditCommands(program, {
    out: (line) => result.out.push(line),
    err: (line) => result.err.push(line),
    exit: (code) => {
      result.code = code;
    },
  });
  try {
    await program.parseAsync(['node', 'breaker', ...args]);
  } catch (err) {
    result.err.push(`commander: ${(err as Error).message}`);
    result.code = (err as { exitCode?: number }).exitCode;
  }
  return result;
}

function entry(id: string, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return { eventId: id, at: '2026-01-01T00:00:00.000Z', kind: AuditKind.Warning, actor: null, what: `event ${id}`, why: null, valuation: null, ...overrides };
}

async function seed(account: string, n: number) {
  return append(dir, account, Array.from({ length: n }, (_, i) => entry(`e${i + 1}`)));
}

describe('breaker audit verify', () => {
  it('prints one ok line per account and exits 0 when every log is intact', async () => {
    const a = await seed('acct-1', 42);
    const b = await seed('acct-2', 1);
    const r = await run('audit', 'verify', '--dir', dir);
    expect(r.out).toEqual([`ok acct-1: 42 records, head ${a.head.hash.slice(0, 8)}`, `ok acct-2: 1 record, head ${b.head.hash.slice(0, 8)}`]);
    expect(r.code).toBe(0);
  });

  it('exits 1 and names the broken account and record when one log was edited', async () => {
    await seed('acct-1', 9);
    await seed('acct-2', 3);
    const file = path.join(dir, 'acct-1.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines[6] = (lines[6] as string).replace('"what":"event e7"', '"what":"event e8"');
    await writeFile(file, lines.join('\n'));
    const r = await run('audit', 'verify', '--dir', dir);
    expect(r.out[0]).toBe('BROKEN acct-1: record 7 was edited (hash mismatch)');
    expect(r.out[1]).toMatch(/^ok acct-2: 3 records, head [0-9a-f]{8}$/);
    expect(r.code).toBe(1);
    // One account: only its line.
    const one = await run('audit', 'verify', 'acct-2', '--dir', dir);
    expect([one.out.length, one.code]).toEqual([1, 0]);
  });

  it('takes the directory from BREAKER_AUDIT_DIR, and names both ways when there is none', async () => {
    await seed('acct-1', 2);
    const saved = process.env.BREAKER_AUDIT_DIR;
    try {
      process.env.BREAKER_AUDIT_DIR = dir;
      const r = await run('audit', 'verify');
      expect([r.out.length, r.code]).toEqual([1, 0]);
      delete process.env.BREAKER_AUDIT_DIR;
      const missing = await run('audit', 'verify');
      expect(missing.err).toEqual(['breaker audit: no audit directory: pass --dir <path> or set BREAKER_AUDIT_DIR']);
      expect(missing.code).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.BREAKER_AUDIT_DIR;
      else process.env.BREAKER_AUDIT_DIR = saved;
    }
  });

  it('exits 2 for a directory that does not exist or an invalid account id, 1 for an account with no log', async () => {
    expect((await run('audit', 'verify', '--dir', path.join(dir, 'nope'))).code).toBe(2);
    expect((await run('audit', 'verify', '../x', '--dir', dir)).code).toBe(2);
    const none = await run('audit', 'verify', 'ghost', '--dir', dir);
    expect(none.out).toEqual(['BROKEN ghost: no audit log']);
    expect(none.code).toBe(1);
  });
});

describe('breaker audit show', () => {
  beforeEach(async () => {
    await append(dir, 'acct-1', [
      entry('e1', { kind: AuditKind.CircuitBreakerTriggered, what: 'breaker tripped', why: 'loss 5.50 % >= 5 %', valuation: { totalValue: '9450.00', lossPct: '5.50' } }),
      entry('e2', { kind: AuditKind.OperatorAction, at: '2026-01-01T01:00:00.000Z', actor: { operator: 'alice', keyId: 'k1', approvedBy: 'bob' }, what: 'reset', why: 'checked\u001b[2Jwith desk' }),
      entry('e3', { what: 'warning' }),
    ]);
  });

  it('prints a table of seq, at, kind, actor, what, why, escaping terminal controls', async () => {
    const r = await run('audit', 'show', 'acct-1', '--dir', dir);
    expect(r.code).toBe(0);
    const table = r.out.join('\n').split('\n');
    expect(table[0]).toMatch(/^seq\s+at\s+kind\s+actor\s+what\s+why$/);
    expect(table).toHaveLength(4);
    expect(table[1]).toMatch(/^ {2}1 {2}2026-01-01T00:00:00\.000Z {2}CircuitBreakerTriggered\s+-\s+breaker tripped\s+loss 5\.50 % >= 5 %$/);
    expect(table[2]).toContain('operator alice, key k1, approved by bob');
    expect(table[2]).toContain('checked\\u001b[2Jwith desk');
    expect(table[2]).not.toContain('\u001b');
  });

  it('--json --limit prints the last n records as JSON', async () => {
    const r = await run('audit', 'show', 'acct-1', '--json', '--limit', '2', '--dir', dir);
    const records = JSON.parse(r.out.join('\n')) as Array<{ seq: number; eventId: string; hash: string }>;
    expect(records.map((x) => x.seq)).toEqual([2, 3]);
    expect(records[0]?.eventId).toBe('e2');
    const zero = await run('audit', 'show', 'acct-1', '--limit', '0', '--dir', dir);
    expect(zero.err.join()).toMatch(/expected a positive whole number/);
    expect(zero.out).toEqual([]);
  });

  it('refuses to show a log that is not intact, pointing at verify', async () => {
    const file = path.join(dir, 'acct-1.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.splice(1, 1);
    await writeFile(file, lines.join('\n'));
    const r = await run('audit', 'show', 'acct-1', '--dir', dir);
    expect(r.err).toEqual(['breaker audit: audit log of acct-1: record 2 was removed (seq jumps from 1 to 3) (see breaker audit verify acct-1)']);
    expect(r.code).toBe(1);
  });
});
