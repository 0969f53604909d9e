/**
 * Our own `breaker` command line, run as a separate process like an operator would.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';
import { newEd25519KeyPair } from '../../src/domain/signing';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
let h: Harness;
/** Key files as `breaker keygen` writes them: alice's (listed by the worker's anchor) and an impostor's. */
let aliceKey: string;
let impostorKey: string;
function writeKeyFile(name: string, key: { id: string; secretKey: string; publicKey: string }, mode = 0o600): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'breaker-key-')), `${name}.json`);
  writeFileSync(file, JSON.stringify({ kind: 'portfolio-breaker-ed25519', ...key }), { mode });
  return file;
}
beforeAll(async () => {
  h = await startHarness('breakercli');
  aliceKey = writeKeyFile('alice', h.trust.operatorKeys.find((k) => k.id === 'alice')!);
  impostorKey = writeKeyFile('impostor', { id: 'alice', ...newEd25519KeyPair() });
  h.paper.exchange.seed({ spotBalances: { USDT: '6000' }, futuresBalances: { USDT: '4000' } });
});
afterAll(async () => {
  await h?.stop();
});

async function breaker(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(path.join(ROOT, 'node_modules/.bin/tsx'), ['src/cli/breaker.ts', '--address', h.address, '--task-queue', h.taskQueue, ...args], { cwd: ROOT, timeout: 60_000 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('breaker CLI', () => {
  it('starts a guard, reports, shows state and events, refuses what is not allowed, and resets', async () => {
    const account = uniqueAccount('cli');
    const started = await breaker('start', account, '--capital', '10000.00', '--venues', `${SPOT},${PERP}`);
    expect(started).toMatchObject({ code: 0, stdout: expect.stringContaining(`guard guard-${account} is running`) });
    await eventually(() => h.breaker.state(account), (s) => s.lastValuationAt !== null);

    const reported = await breaker('report', account, JSON.stringify({ venue: SPOT, seq: 1, balances: { USDT: '5400' } }));
    expect(reported.code).toBe(0);
    expect(reported.stdout).toMatch(/^accepted\n/);
    expect(reported.stdout).toMatch(/state\s+Triggered/);
    expect(reported.stdout).toMatch(/loss\s+6\.00 %/);

    const badReport = await breaker('report', account, JSON.stringify({ venue: SPOT, seq: 2, balances: { USDT: 'lots' } }));
    expect(badReport).toMatchObject({ code: 2, stderr: expect.stringContaining('report.balances.USDT: must be a decimal string') });

    const disable = await breaker('disable', account, '--key', aliceKey, '--reason', 'try');
    expect(disable).toMatchObject({ code: 2, stderr: expect.stringContaining('a Triggered breaker cannot be disabled') });

    const noReason = await breaker('reset', account, '--key', aliceKey);
    expect(noReason.code).not.toBe(0);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");
    const noKey = await breaker('reset', account, '--reason', 'x');
    expect(noKey.code).not.toBe(0);
    expect(noKey.stderr).toContain("required option '--key <file>' not specified");
    // A key of one's own, claiming to be alice: the guard refuses it and records the attempt.
    const impostor = await breaker('reset', account, '--key', impostorKey, '--reason', 'trust me');
    expect(impostor).toMatchObject({ code: 2, stderr: expect.stringContaining('signature does not match') });
    const exposed = await breaker('reset', account, '--key', writeKeyFile('exposed', h.trust.operatorKeys[0]!, 0o644), '--reason', 'x');
    expect(exposed).toMatchObject({ code: 2, stderr: expect.stringContaining('too open') });

    const listed = await breaker('list', '--state', 'Triggered');
    expect(listed.stdout).toContain(`guard-${account}`);

    const reset = await breaker('reset', account, '--key', aliceKey, '--reason', 'reviewed; capital rebased by ops');
    expect(reset.code).toBe(0);
    const events = await breaker('events', account, '--json');
    expect(JSON.parse(events.stdout).map((e: { type: string }) => e.type)).toContain('CircuitBreakerReset');

    const state = await breaker('state', account, '--json');
    expect(JSON.parse(state.stdout)).toMatchObject({ accountId: account, lastSeq: { [SPOT]: 1 } });
  });

  it('explains a bad account config without starting anything', async () => {
    const account = uniqueAccount('clibad');
    const result = await breaker('start', account, '--capital', '0', '--venues', SPOT, '--warning', '6');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('config.initialCapital: must be greater than 0');
    expect(result.stderr).toContain('config.warningPct: must be below thresholdPct');
  });
});
