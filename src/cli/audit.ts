/**
 * `breaker audit`: reads the audit trail straight from its directory (no Temporal, no secrets).
 *
 *   breaker audit verify [account] [--dir <path>]            exit 0 when every log is intact, 1 when any is not
 *   breaker audit show <account> [--json] [--limit N] [--dir <path>]
 *
 * The directory comes from `--dir` or `BREAKER_AUDIT_DIR`.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync } from 'node:fs';
import { AuditActor, AuditLogError, AuditRecord, AuditVerifyResult, read, verify } from '../audit/log';

/** Where the commands write and how they end; the defaults are the console and `process.exitCode`. */
export interface AuditCliIo {
  out(line: string): void;
  err(line: string): void;
  exit(code: number): void;
}

const consoleIo: AuditCliIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  exit: (code) => {
    process.exitCode = code;
  },
};

/** Exit codes: intact, not intact (verify) or unreadable (show), and a usage or I/O error. */
export const AUDIT_EXIT = { ok: 0, broken: 1, error: 2 } as const;

interface DirOptions {
  dir?: string;
}

function dirOption(): Option {
  return new Option('--dir <path>', 'the audit directory').env('BREAKER_AUDIT_DIR');
}

function requireDir(opts: DirOptions): string {
  if (opts.dir === undefined || opts.dir === '') {
    throw new Error('no audit directory: pass --dir <path> or set BREAKER_AUDIT_DIR');
  }
  return opts.dir;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

/**
 * Escapes what a terminal would interpret (control characters, bidirectional overrides), since records hold text
 * that came from bots and operators.
 */
export function printable(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    const hostile = code < 0x20 || (code >= 0x7f && code < 0xa0) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
    out += hostile ? `\\u${code.toString(16).padStart(4, '0')}` : ch;
  }
  return out;
}

/** One line per account, e.g. `ok acct-1: 42 records, head 1a2b3c4d` or `BROKEN acct-1: record 7 was edited (hash mismatch)`. */
export function formatVerifyResult(r: AuditVerifyResult): string {
  if (r.problem !== null) return `BROKEN ${r.accountId}: ${r.problem.message}`;
  const warnings = r.warnings.map((w) => ` (warning: ${w})`).join('');
  return `ok ${r.accountId}: ${r.records} record${r.records === 1 ? '' : 's'}, head ${r.head.hash.slice(0, 8)}${warnings}`;
}

function formatActor(actor: AuditActor | null): string {
  if (actor === null) return '-';
  const parts = [
    ...(actor.operator !== undefined ? [`operator ${actor.operator}`] : []),
    ...(actor.keyId !== undefined ? [`key ${actor.keyId}`] : []),
    ...(actor.approvedBy !== undefined ? [`approved by ${actor.approvedBy}`] : []),
    ...(actor.bot !== undefined ? [`bot ${actor.bot}`] : []),
  ];
  return parts.length === 0 ? '-' : parts.join(', ');
}

/** A table for people: seq, at, kind, actor, what, why; columns padded to their widest cell (what to at most 60). */
export function formatRecords(records: readonly AuditRecord[]): string {
  const header = ['seq', 'at', 'kind', 'actor', 'what', 'why'];
  const rows = records.map((r) => [String(r.seq), r.at, r.kind, formatActor(r.actor), r.what, r.why ?? '-'].map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  widths[4] = Math.min(widths[4] ?? 0, 60);
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : i === 0 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/**
 * Adds `audit verify [account]` and `audit show <account>` to `program` (the `breaker` command).
 * @param io where output goes and how the exit code is set; the console and `process.exitCode` by default.
 * @returns the `audit` command.
 */
export function registerAuditCommands(program: Command, io: AuditCliIo = consoleIo): Command {
  const audit = program.command('audit').description('the tamper-evident audit trail: check its hash chains, show its records');

  // Errors become one line and exit code 2 (not a stack trace), so that scripts can tell "broken" (1) from "could not check".
  const guarded = <A extends unknown[]>(fn: (...args: A) => Promise<void>) => async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      io.err(`breaker audit: ${(err as Error).message}`);
      io.exit(AUDIT_EXIT.error);
    }
  };

  audit
    .command('verify')
    .description('recompute every hash and link (and compare with the head files); exit 1 when any log is not intact')
    .argument('[account]', 'one account (default: every account in the directory)')
    .addOption(dirOption())
    .action(guarded(async (account: string | undefined, opts: DirOptions) => {
      const dir = requireDir(opts);
      if (!existsSync(dir)) throw new Error(`no audit directory at ${dir}`);
      const results = await verify(dir, account);
      if (results.length === 0) io.out(`no audit logs in ${dir}`);
      for (const result of results) io.out(formatVerifyResult(result));
      io.exit(results.every((r) => r.ok) ? AUDIT_EXIT.ok : AUDIT_EXIT.broken);
    }));

  audit
    .command('show')
    .description("an account's audit records, oldest first (the log is verified first)")
    .argument('<account>')
    .addOption(dirOption())
    .option('--json', 'the records as a JSON array')
    .addOption(new Option('--limit <n>', 'only the last n records').argParser(parseLimit))
    .action(guarded(async (account: string, opts: DirOptions & { json?: boolean; limit?: number }) => {
      const dir = requireDir(opts);
      if (!existsSync(dir)) throw new Error(`no audit directory at ${dir}`);
      let records: AuditRecord[];
      try {
        records = await read(dir, account);
      } catch (err) {
        if (!(err instanceof AuditLogError)) throw err;
        io.err(`breaker audit: ${err.message} (see breaker audit verify ${account})`);
        io.exit(AUDIT_EXIT.broken);
        return;
      }
      const shown = opts.limit === undefined ? records : records.slice(-opts.limit);
      io.out(opts.json ? JSON.stringify(shown, null, 2) : formatRecords(shown));
      io.exit(AUDIT_EXIT.ok);
    }));

  return audit;
}
