/**
 * The watchdog: a process outside the guards that checks, for every account of the trust anchor, that exactly one
 * guard runs, answers queries, has no failing workflow task and has valued the account recently, and alerts
 * otherwise. It is the fail-safe for what the guards cannot report themselves: a guard that is gone, wedged or blind
 * raises no alert of its own. This module does the Temporal calls and the delivery; the judgement is
 * src/watchdog/checks.ts.
 */
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { snapshotQuery, stateQuery, guardWorkflowId } from '../api/contract';
import { alertWebhookProblem, postToWebhook } from '../alerts/webhook';
import { DEFAULT_QUERY_TIMEOUT_MS, Finding, GuardObservation, ObservedExecution, ObservedQuery, alertKey, judgeGuard } from './checks';

/** One account's check: what was observed and what it means. */
export interface AccountCheck {
  accountId: string;
  observation: GuardObservation;
  findings: Finding[];
}

export interface CheckOptions {
  client: Client;
  /** The accounts to check (the trust anchor's). */
  accounts: readonly string[];
  /** How long the `state` query may take before the guard counts as wedged. @default 5000 */
  queryTimeoutMs?: number;
  /** The clock. @default () => new Date() */
  now?: () => Date;
  /** The venues an account uses, for the `breaker start` hint of a missing guard. */
  venuesOf?: (accountId: string) => readonly string[];
}

export { DEFAULT_QUERY_TIMEOUT_MS };

/** Accounts checked at once: enough to check hundreds within a round, few enough not to flood the frontend. */
const CONCURRENT_CHECKS = 16;

const errorText = (err: unknown) => ((err instanceof Error ? err.message : String(err)) || (err as Error)?.name || 'unknown error').split('\n')[0]!.slice(0, 500);

/**
 * Checks every account once, a few at a time, in the order given. Never throws: a call that fails becomes an
 * `unchecked` finding for its account.
 */
export async function checkAccounts(options: CheckOptions): Promise<AccountCheck[]> {
  const checks: AccountCheck[] = new Array(options.accounts.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < options.accounts.length; i = next++) {
      const accountId = options.accounts[i]!;
      try {
        checks[i] = await checkAccount(options, accountId);
      } catch (err) {
        checks[i] = uncheckedCheck(accountId, `could not check ${accountId}: ${errorText(err)}`, (options.now ?? (() => new Date()))());
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENT_CHECKS, options.accounts.length) }, lane));
  return checks;
}

async function checkAccount(options: CheckOptions, accountId: string): Promise<AccountCheck> {
  const { client } = options;
  const now = options.now ?? (() => new Date());
  const workflowId = guardWorkflowId(accountId);
  const [execution, runningForAccount] = await Promise.all([describe(client, workflowId), listRunning(client, accountId)]);
  const query: ObservedQuery =
    execution.kind === 'found' && execution.status === 'RUNNING'
      ? await queryState(client, workflowId, options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS)
      : { kind: 'notAsked' };
  const observation: GuardObservation = {
    accountId,
    workflowId,
    venues: options.venuesOf?.(accountId) ?? [],
    execution,
    runningForAccount,
    query,
    // Taken after the query answered: the valuation's age is measured from when it was seen.
    now: now().toISOString(),
  };
  return { accountId, observation, findings: judgeGuard(observation) };
}

async function describe(client: Client, workflowId: string): Promise<ObservedExecution> {
  try {
    const d = await client.workflow.getHandle(workflowId).describe();
    const attempt = d.raw.pendingWorkflowTask?.attempt;
    return {
      kind: 'found',
      runId: d.runId,
      status: d.status.name,
      workflowType: d.type,
      taskQueue: d.taskQueue,
      startedAt: d.startTime.toISOString(),
      closedAt: d.closeTime ? d.closeTime.toISOString() : null,
      pendingTaskAttempt: typeof attempt === 'number' && attempt > 0 ? attempt : null,
    };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { kind: 'notFound' };
    return { kind: 'error', error: errorText(err) };
  }
}

/** Running workflows that say they guard the account, whatever their id (visibility may lag a start by a moment). */
async function listRunning(client: Client, accountId: string): Promise<GuardObservation['runningForAccount']> {
  try {
    const workflowIds: string[] = [];
    let earliest: number | null = null;
    // Account ids are [A-Za-z0-9_.-] (the anchor's rule), so the value needs no escaping in the query.
    for await (const w of client.workflow.list({ query: `BreakerAccount='${accountId}' AND ExecutionStatus='Running'` })) {
      workflowIds.push(w.workflowId);
      if (w.workflowId !== guardWorkflowId(accountId)) earliest = Math.min(earliest ?? Infinity, w.startTime.getTime());
      if (workflowIds.length >= 100) break;
    }
    return { kind: 'listed', workflowIds, earliestStart: earliest === null ? null : new Date(earliest).toISOString() };
  } catch (err) {
    return { kind: 'error', error: errorText(err) };
  }
}

/**
 * The `state` query, raced against a timer: a query to a guard that no worker serves waits for the server's own
 * timeout otherwise. The `snapshot` query gives the guard's staleness limit; a guard that cannot answer it (an
 * older version) is judged with the default limit.
 */
async function queryState(client: Client, workflowId: string, timeoutMs: number): Promise<ObservedQuery> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const handle = client.workflow.getHandle(workflowId);
  // Aborting cancels the gRPC calls left behind by the race.
  const state = client.withAbortSignal(abort.signal, () => handle.query(stateQuery));
  const snapshot = client.withAbortSignal(abort.signal, () => handle.query(snapshotQuery)).then(
    (s) => s.config?.blindPolicy?.staleAfterSeconds ?? null,
    () => null,
  );
  state.catch(() => undefined);
  try {
    const view = await Promise.race([state, timeout]);
    if (view === 'timeout') return { kind: 'failed', timedOut: true, error: `no answer within ${timeoutMs} ms` };
    // The guard answered: a snapshot that does not (in the time left) only costs the guard's own limit.
    const staleAfterSeconds = await Promise.race([snapshot, timeout.then(() => null)]);
    return {
      kind: 'answered',
      state: view.state,
      lastValuationAt: view.lastValuationAt,
      blind: view.blind ? { since: view.blind.since, reason: view.blind.reason } : null,
      staleAfterSeconds: typeof staleAfterSeconds === 'number' ? staleAfterSeconds : null,
    };
  } catch (err) {
    return { kind: 'failed', timedOut: false, error: errorText(err) };
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

/** What the watchdog POSTs to the alert webhook for a finding that is not ok. */
export interface WatchdogAlert {
  /** Stable for the same ongoing problem (see {@link alertKey}); also sent as the Idempotency-Key header. */
  id: string;
  source: 'watchdog';
  kind: Finding['kind'];
  accountId: string;
  message: string;
  /** When the problem started, if known. */
  since: string | null;
  at: string;
}

/**
 * POSTs an alert to the webhook with the guards' own delivery rules (src/activities/index.ts `sendAlert`): the URL
 * passed {@link alertWebhookProblem} at start, redirects are refused, the request gives up after 5 s.
 * @throws Error when the webhook does not answer 2xx
 */
export function postAlert(url: string, alert: WatchdogAlert): Promise<void> {
  return postToWebhook(url, alert.id, alert);
}

export interface WatchdogOptions extends Omit<CheckOptions, 'client' | 'accounts'> {
  /** A client, or how to get one (called each round until it succeeds: a watchdog started while Temporal is down keeps trying). */
  client: Client | (() => Promise<Client>);
  /** The accounts, read each round (the trust anchor reloads its file when it changes). */
  accounts: () => readonly string[];
  /** Seconds between rounds. @default 60 */
  intervalSeconds?: number;
  /** Called after each round with its checks. */
  onFindings?: (checks: AccountCheck[]) => void | Promise<void>;
  /** Stops the loop (after the round in progress). */
  signal?: AbortSignal;
  /** Alerts go here (ALERT_WEBHOOK_URL); none when unset. Refused at start unless HTTPS or loopback. */
  alertWebhookUrl?: string;
  /** Where findings are printed. @default console.log */
  print?: (line: string) => void;
  /** Where delivery problems are printed. @default console.error */
  printError?: (line: string) => void;
  /** Stop after this many rounds (`--once` is 1). @default unlimited */
  rounds?: number;
}

/**
 * Checks every account each interval until `signal` aborts: prints every finding, alerts the webhook about those
 * that are not ok (once per ongoing problem per hour, see {@link alertKey}), and never stops on an error.
 * @returns the last round's checks
 * @throws Error at once when the alert webhook URL is not allowed
 */
export async function runWatchdog(options: WatchdogOptions): Promise<AccountCheck[]> {
  const url = options.alertWebhookUrl || undefined;
  const problem = url ? alertWebhookProblem(url) : undefined;
  if (problem) throw new Error(problem);
  const print = options.print ?? ((line: string) => console.log(line));
  const printError = options.printError ?? ((line: string) => console.error(line));
  const now = options.now ?? (() => new Date());
  const interval = (options.intervalSeconds ?? 60) * 1000;
  // Per ongoing finding, the key last delivered: sent again only when the key moves on (a new hour of the streak).
  const delivered = new Map<string, string>();
  let client = typeof options.client === 'function' ? undefined : options.client;
  let last: AccountCheck[] = [];
  for (let round = 1; !options.signal?.aborted; round++) {
    last = await oneRound();
    if (last.length === 0) print(`${now().toISOString()} watchdog: no accounts to check (the trust anchor lists none)`);
    for (const check of last) for (const f of check.findings) print(`${check.observation.now} ${f.kind.toUpperCase().padEnd(12)} ${f.message}`);
    if (url) await deliver(url, last);
    try {
      await options.onFindings?.(last);
    } catch (err) {
      printError(`watchdog: onFindings failed: ${errorText(err)}`);
    }
    if (options.rounds !== undefined && round >= options.rounds) break;
    await sleep(interval, options.signal);
  }
  return last;

  async function oneRound(): Promise<AccountCheck[]> {
    let accounts: readonly string[];
    try {
      accounts = options.accounts();
    } catch (err) {
      return [unchecked('(trust anchor)', `could not read the accounts: ${errorText(err)}`)];
    }
    try {
      client ??= await (options.client as () => Promise<Client>)();
    } catch (err) {
      return accounts.map((a) => unchecked(a, `could not check ${a}: cannot connect to Temporal: ${errorText(err)}`));
    }
    try {
      return await checkAccounts({ ...options, client, accounts });
    } catch (err) {
      return accounts.map((a) => unchecked(a, `could not check ${a}: ${errorText(err)}`));
    }
  }

  function unchecked(accountId: string, message: string): AccountCheck {
    return uncheckedCheck(accountId, message, now());
  }

  async function deliver(webhook: string, checks: AccountCheck[]): Promise<void> {
    const current = new Set<string>();
    for (const check of checks) {
      for (const f of check.findings) {
        if (f.kind === 'ok') continue;
        const streak = `${f.accountId}|${f.kind}|${f.subject}`;
        current.add(streak);
        const id = alertKey(f, check.observation.now);
        if (delivered.get(streak) === id) continue;
        try {
          await postAlert(webhook, { id, source: 'watchdog', kind: f.kind, accountId: f.accountId, message: f.message, since: f.since, at: check.observation.now });
          delivered.set(streak, id);
        } catch (err) {
          // Not recorded as delivered: tried again next round.
          printError(`watchdog: alert for ${f.accountId} (${f.kind}) not delivered: ${errorText(err)}`);
        }
      }
    }
    for (const streak of delivered.keys()) if (!current.has(streak)) delivered.delete(streak);
  }
}

/** An account that could not be checked at all: the failure is its finding. */
function uncheckedCheck(accountId: string, message: string, at: Date): AccountCheck {
  const observation: GuardObservation = {
    accountId,
    workflowId: guardWorkflowId(accountId),
    venues: [],
    execution: { kind: 'error', error: message },
    runningForAccount: { kind: 'listed', workflowIds: [], earliestStart: null },
    query: { kind: 'notAsked' },
    now: at.toISOString(),
  };
  return { accountId, observation, findings: [{ accountId, kind: 'unchecked', message, since: null, subject: 'describe' }] };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
