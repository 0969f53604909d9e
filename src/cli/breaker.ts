#!/usr/bin/env node
/**
 * `breaker`: the operator's command line. Talks to Temporal like any other client; needs no secrets.
 *
 *   breaker start <account> --capital 10000 --venues binance-spot,binance-usdm
 *   breaker state <account> [--json]        breaker events <account> [--json]
 *   breaker report <account> '<json>'       breaker list [--state Triggered]
 *   breaker reset|disable|enable|halt <account> --key <key file> --reason <text>   (signed with the operator's key)
 *   breaker resync-seq <account> --venue <id> --seq <n|any> --key <key file> --reason <text>
 *   breaker approve <account> --request <id> --key <key file> --reason <text>     breaker pending <account>
 *   breaker keygen --out <file> --operator <id>     breaker sign <account> <action> --key <file> --reason <text>
 *   breaker audit verify [account]     breaker audit show <account>     breaker watch [--once]
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { Command, Option } from 'commander';
import { GuardStateView, TASK_QUEUE } from '../api/contract';
import { BreakerClient } from '../client';
import { Decimal, formatUsd } from '../domain/money';
import { loadTemporalConnection } from '../temporal-connection';
import { payloadCodecsFromEnv } from '../codec/encryption';
import { readKeyFile } from '../trust/sign-request';
import { registerAuditCommands } from './audit';
import { registerKeyCommands } from './keys';
import { registerWatchCommand } from './watch';

/** Connection flags override Temporal's environment configuration (src/temporal-connection.ts); unset, it decides. */
interface GlobalOptions {
  address?: string;
  namespace?: string;
  profile?: string;
  taskQueue: string;
}

async function connect(opts: GlobalOptions, operatorKeyFile?: string): Promise<{ breaker: BreakerClient; close: () => Promise<void> }> {
  // The key first: a key file others can read is refused before anything is sent.
  const key = operatorKeyFile ? readKeyFile(operatorKeyFile) : undefined;
  const { client, close } = await clientFor(opts);
  const operatorKeys = key ? [{ id: key.id, secretKey: key.secretKey }] : [];
  return { breaker: new BreakerClient(client, opts.taskQueue, { operatorKeys }), close };
}

/** A Temporal client as the flags and environment say; with BREAKER_CODEC_KEYS, payloads encrypted as the workers expect. */
async function clientFor(opts: GlobalOptions): Promise<{ client: Client; close: () => Promise<void> }> {
  const temporal = loadTemporalConnection(process.env, { address: opts.address, namespace: opts.namespace, profile: opts.profile });
  const connection = await Connection.connect({ ...temporal.clientConnectOptions, connectTimeout: 5_000 });
  // A payload this operator cannot decrypt is an error here (not a silently refused value).
  const client = new Client({ connection, namespace: temporal.namespace, dataConverter: { payloadCodecs: payloadCodecsFromEnv(process.env, { onRefused: 'throw' }) } });
  return { client, close: () => connection.close() };
}

/** Prints a state for people: the figures an operator looks for first, then per-venue shutdown progress. */
export function formatState(s: GuardStateView): string {
  const money = (v: string | null) => (v === null ? 'n/a' : formatUsd(new Decimal(v)));
  const lines = [
    `account        ${s.accountId}`,
    `state          ${s.state}${s.breaker.name === 'Triggered' ? ` since ${s.breaker.at} (${s.breaker.cause}: ${s.breaker.reason}; shutdown ${s.breaker.shutdown})` : ''}${s.breaker.name === 'Disabled' ? ` by ${s.breaker.operator}: ${s.breaker.reason}` : ''}`,
    `loss           ${s.lossPct === null ? 'n/a' : `${s.lossPct} %`} (warning at ${s.warningPct} %, trip at ${s.thresholdPct} %)`,
    `value          ${money(s.totalValue)} of ${money(s.initialCapital)} ${s.referenceCurrency}, P&L ${money(s.pnl)}`,
    `valued at      ${s.lastValuationAt ?? 'not yet'}`,
    `venues         ${Object.entries(s.perVenueValue).map(([v, value]) => `${v} ${money(value)} (seq ${s.lastSeq[v] ?? '-'})`).join(', ') || 'none valued yet'}`,
    ...(s.blind ? [`BLIND          since ${s.blind.since} (policy ${s.blind.policy}): ${s.blind.reason}`] : []),
    ...(s.unpriced.length > 0 ? [`unpriced       ${s.unpriced.map((u) => `${u.venue} ${u.amount} ${u.asset} since ${u.since}`).join(', ')}`] : []),
    ...(s.alertsPending > 0 ? [`alerts         ${s.alertsPending} not yet delivered`] : []),
    `reports        ${s.counters.reportsAccepted} accepted, ${s.counters.reportsDuplicate} duplicate, ${s.counters.reportsStale} stale, ${s.counters.reportsRejected} rejected${s.counters.reportsUnauthenticated ? ` (${s.counters.reportsUnauthenticated} unsigned or forged)` : ''}`,
    ...(s.trust
      ? [
          `trust          ${s.trust.listed ? `operators ${s.trust.operators.map((o) => `${o.id} (${o.actions.join(' ')})`).join(', ') || 'none'}` : 'account NOT listed in the anchor: no operator may act'}` +
            `${s.trust.approvalRequiredFor.length > 0 ? `; second approver for ${s.trust.approvalRequiredFor.join(', ')}` : ''}${s.trust.botsSignReports ? '; reports must be signed' : ''}` +
            `${s.trust.lastError ? `; ANCHOR UNREADABLE: ${s.trust.lastError}` : ''}`,
        ]
      : []),
    ...s.pendingApprovals.map((p) => `pending        ${p.action} by ${p.operator} (${p.reason}), request ${p.id}, until ${p.expiresAt}: needs another operator's approve`),
    ...(s.counters.operatorRequestsRefused ? [`refused        ${s.counters.operatorRequestsRefused} operator request(s) failed the trust checks (see events)`] : []),
    ...(s.audit?.failedSince ? [`AUDIT          ${s.audit.pending} entries not written since ${s.audit.failedSince}: ${s.audit.lastError}`] : []),
  ];
  const venues = Object.entries(s.shutdown);
  if (venues.length > 0) {
    lines.push('shutdown');
    for (const [venue, p] of venues) {
      lines.push(`  ${venue.padEnd(16)} ${p.status.padEnd(10)} cancelled ${p.cancelled}, open ${p.openOrders ?? '?'}, attempts ${p.attempts}${p.lastError ? `, last error: ${p.lastError}` : ''}`);
    }
  }
  return lines.join('\n');
}

function parseJsonArgument(text: string): unknown {
  const source = text.startsWith('@') ? readFileSync(text.slice(1), 'utf8') : text;
  try {
    return JSON.parse(source);
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`);
  }
}

/** `--key`: the operator's key file (breaker keygen), or BREAKER_OPERATOR_KEY. */
const keyOption = () => new Option('--key <file>', "the operator's key file (breaker keygen writes one; mode 0600)").env('BREAKER_OPERATOR_KEY').makeOptionMandatory();

/** The operator a request names: --operator, else the key file's id. */
function operatorOf(o: { key: string; operator?: string }): string {
  return o.operator ?? readKeyFile(o.key).id;
}

/** Runs a command with a connection, turning Temporal's rejections into one clear line and exit code 2. */
function action<A extends unknown[]>(program: Command, fn: (breaker: BreakerClient, ...args: A) => Promise<void>) {
  return async (...args: A) => {
    // Commander passes the command's options second to last: an operator command's --key signs its request.
    const options = args[args.length - 2] as { key?: string } | undefined;
    const { breaker, close } = await connect(program.opts<GlobalOptions>(), typeof options?.key === 'string' ? options.key : undefined);
    try {
      await fn(breaker, ...args);
    } catch (err) {
      const cause = err instanceof WorkflowUpdateFailedError ? err.cause : err;
      console.error(`breaker: ${(cause as Error).message}`);
      process.exitCode = 2;
    } finally {
      await close();
    }
  };
}

export function buildProgram(): Command {
  const program = new Command('breaker')
    .description('Operate portfolio-breaker guards (one Temporal workflow per trading account).')
    // Not commander's .env(): the variables, the profile file and their precedence are Temporal's, read in one place.
    .addOption(new Option('--address <host:port>', 'Temporal frontend (default: TEMPORAL_ADDRESS, the profile, else 127.0.0.1:7233)'))
    .addOption(new Option('--namespace <name>', 'Temporal namespace (default: TEMPORAL_NAMESPACE, the profile, else "default")'))
    .addOption(new Option('--profile <name>', 'profile of the Temporal profile file (default: TEMPORAL_PROFILE, else "default")'))
    .addOption(new Option('--task-queue <name>', 'task queue of the guard workers').default(TASK_QUEUE))
    .showHelpAfterError();

  program
    .command('start <account>')
    .description('start the guard of an account (or show the running one)')
    .requiredOption('--capital <amount>', 'initial capital in the reference currency, e.g. 10000.00')
    .requiredOption('--venues <ids>', 'comma-separated venue ids configured on the workers')
    .option('--warning <pct>', 'warning level, percent loss', '3')
    .option('--threshold <pct>', 'trip level, percent loss', '5')
    .option('--reference <currency>', 'reference currency', 'USDT')
    .option('--auto-close', 'close positions after the cancels are confirmed', false)
    .option('--interval <seconds>', 'how often the guard values the account itself', '60')
    .option('--sweep-interval <seconds>', 'while Triggered, how often every venue is swept again', '30')
    .option('--key <file>', "sign the config with this operator's key file: needed when it differs from the account's last accepted one")
    .option('--reason <text>', 'why the config changes (with --key)')
    .action(
      action(program, async (breaker, account: string, o: Record<string, string | boolean>) => {
        const interval = Number(o.interval);
        if (o.key && !o.reason) throw new Error('--reason is required with --key: why the config changes, for the audit trail');
        const signedBy = o.key ? { operator: readKeyFile(String(o.key)).id, reason: String(o.reason) } : undefined;
        const handle = await breaker.startGuard({
          accountId: account,
          initialCapital: String(o.capital),
          venues: String(o.venues).split(',').map((v) => v.trim()).filter(Boolean),
          warningPct: String(o.warning),
          thresholdPct: String(o.threshold),
          referenceCurrency: String(o.reference) as 'USDT',
          autoClosePositions: o.autoClose === true,
          valuationIntervalSeconds: interval,
          sweepIntervalSeconds: Number(o.sweepInterval),
        }, signedBy);
        console.log(`guard ${handle.workflowId} is running`);
      }),
    );

  program
    .command('state <account>')
    .description('show the breaker state')
    .option('--json', 'print the raw state as JSON')
    .action(
      action(program, async (breaker, account: string, o: { json?: boolean }) => {
        const state = await breaker.state(account);
        console.log(o.json ? JSON.stringify(state, null, 2) : formatState(state));
      }),
    );

  program
    .command('events <account>')
    .description('show recent risk events, newest last')
    .option('--json', 'print as JSON')
    .action(
      action(program, async (breaker, account: string, o: { json?: boolean }) => {
        const events = await breaker.events(account);
        if (o.json) console.log(JSON.stringify(events, null, 2));
        else for (const e of events) console.log(`${e.at}  ${e.type.padEnd(24)} ${JSON.stringify({ ...e, at: undefined, type: undefined })}`);
      }),
    );

  program
    .command('report <account> <json>')
    .description("send a balance report and print the result (json inline, or @file)")
    .action(
      action(program, async (breaker, account: string, json: string) => {
        const answer = await breaker.report(account, parseJsonArgument(json) as never);
        console.log(`${answer.outcome}\n${formatState(answer)}`);
      }),
    );

  program
    .command('list')
    .description('list guards, optionally by breaker state')
    .option('--state <state>', 'Active, Warning, Triggered or Disabled')
    .action(
      action(program, async (breaker, o: { state?: string }) => {
        const filters = ["WorkflowType = 'accountGuard'", "ExecutionStatus = 'Running'"];
        if (o.state) {
          if (!/^[A-Za-z]+$/.test(o.state)) throw new Error(`--state must be a state name, got ${JSON.stringify(o.state)}`);
          filters.push(`BreakerState = '${o.state}'`);
        }
        for await (const wf of breaker.client.workflow.list({ query: filters.join(' AND ') })) {
          const attrs = wf.typedSearchAttributes;
          const state = attrs.getAll().find((p) => p.key.name === 'BreakerState')?.value ?? '?';
          const loss = attrs.getAll().find((p) => p.key.name === 'BreakerLossPct')?.value;
          console.log(`${wf.workflowId.padEnd(40)} ${String(state).padEnd(10)} ${loss === undefined ? '' : `${String(loss)} %`}`);
        }
      }),
    );

  for (const verb of ['reset', 'disable', 'enable', 'halt'] as const) {
    program
      .command(`${verb} <account>`)
      .description(
        { reset: 'leave Triggered (the only way out)', disable: 'switch the breaker off', enable: 'switch it back on', halt: 'trip the breaker now (manual kill switch)' }[verb],
      )
      .addOption(keyOption())
      .option('--operator <id>', "the operator's id in the trust anchor (default: the key file's id)")
      .requiredOption('--reason <text>', 'why, for the audit trail')
      .action(
        action(program, async (breaker, account: string, o: { key: string; operator?: string; reason: string }) => {
          const state = await breaker[verb](account, { operator: operatorOf(o), reason: o.reason });
          console.log(formatState(state));
        }),
      );
  }
  program
    .command('approve <account>')
    .description("approve another operator's pending reset or disable (accounts whose anchor asks for a second approver)")
    .requiredOption('--request <id>', 'the pending request id (breaker pending <account>)')
    .addOption(keyOption())
    .option('--operator <id>', "the operator's id in the trust anchor (default: the key file's id)")
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .action(
      action(program, async (breaker, account: string, o: { request: string; key: string; operator?: string; reason: string }) => {
        console.log(formatState(await breaker.approve(account, { operator: operatorOf(o), reason: o.reason, requestId: o.request })));
      }),
    );
  program
    .command('pending <account>')
    .description('requests waiting for a second operator')
    .option('--json', 'print as JSON')
    .action(
      action(program, async (breaker, account: string, o: { json?: boolean }) => {
        const pending = (await breaker.state(account)).pendingApprovals;
        if (o.json) console.log(JSON.stringify(pending, null, 2));
        else if (pending.length === 0) console.log('no pending requests');
        else for (const p of pending) console.log(`${p.id}  ${p.action} by ${p.operator} at ${p.requestedAt}, expires ${p.expiresAt}: ${p.reason}`);
      }),
    );
  program
    .command('resync-seq <account>')
    .description("set a venue's last accepted seq (after a bot restarted its sequence, or a runaway seq)")
    .requiredOption('--venue <id>', 'the venue id')
    .requiredOption('--seq <n|any>', 'the last seq to consider accepted, or "any" to accept the next report whatever its seq')
    .addOption(keyOption())
    .option('--operator <id>', "the operator's id in the trust anchor (default: the key file's id)")
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .action(
      action(program, async (breaker, account: string, o: { venue: string; seq: string; key: string; operator?: string; reason: string }) => {
        if (o.seq !== 'any' && !/^\d{1,16}$/.test(o.seq)) throw new Error(`--seq must be a whole number or "any", got ${JSON.stringify(o.seq.slice(0, 20))}`);
        const seq = o.seq === 'any' ? null : Number(o.seq);
        console.log(formatState(await breaker.resyncSeq(account, { venue: o.venue, seq, operator: operatorOf(o), reason: o.reason })));
      }),
    );
  registerKeyCommands(program);
  registerAuditCommands(program);
  registerWatchCommand(program, () => clientFor(program.opts<GlobalOptions>()));
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err) => {
      console.error(`breaker: ${(err as Error).message}`);
      process.exitCode = 2;
    });
}
