/**
 * The watchdog's judgement of one account's guard: from what was observed about it (the execution behind
 * `guard-<accountId>`, other running workflows that carry the account's `BreakerAccount` search attribute, and
 * whether the `state` query answered), the findings an operator must act on. Pure: no Temporal, no clock, so that
 * every boundary is a table row (test/unit/watchdog-checks.test.ts); src/watchdog/watchdog.ts does the observing.
 */
import { assertNever } from '../domain/breaker';

/** What can be wrong with an account's guard, or `ok`. */
export const FINDING_KINDS = ['missing', 'not-running', 'duplicate', 'wedged', 'failing-task', 'blind', 'unchecked', 'ok'] as const;
/**
 * - `missing`: no workflow `guard-<accountId>` at all: the account is unprotected.
 * - `not-running`: the guard exists but is closed (terminated, completed, failed, cancelled, timed out) or paused.
 * - `duplicate`: another running workflow says it guards this account (search attribute `BreakerAccount`).
 * - `wedged`: the guard is running but its `state` query did not answer (no worker, or a worker that cannot run it).
 * - `failing-task`: the guard's workflow task is being retried (a bad deploy, a non-determinism error).
 * - `blind`: the guard has not valued the account within its own staleness limit, or says it is blind.
 * - `unchecked`: the watchdog could not observe the guard (Temporal unreachable, an error): itself a finding.
 * - `ok`: none of the above.
 */
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface Finding {
  accountId: string;
  kind: FindingKind;
  /** One line for people: the account, what is wrong, what to do. */
  message: string;
  /**
   * When the problem started, where the observation says so (the guard's close time, its last valuation, the
   * other guard's start); null when it does not. Keys the alert so that a restarted watchdog pages once.
   */
  since: string | null;
  /** What the finding is about beyond its kind (a run id, other workflow ids), for the alert key. */
  subject: string;
}

/** The execution behind `guard-<accountId>`, as `describe` returned it. */
export type ObservedExecution =
  | { kind: 'notFound' }
  | { kind: 'error'; error: string }
  | {
      kind: 'found';
      runId: string;
      /** Temporal's status name: RUNNING, TERMINATED, COMPLETED, FAILED, CANCELLED, TIMED_OUT, PAUSED, ... */
      status: string;
      workflowType: string;
      taskQueue: string;
      startedAt: string;
      closedAt: string | null;
      /** `pendingWorkflowTask.attempt` from describe's raw response; null when no workflow task is pending. */
      pendingTaskAttempt: number | null;
    };

/** The `state` query, asked only of a running guard. */
export type ObservedQuery =
  | { kind: 'notAsked' }
  | { kind: 'failed'; timedOut: boolean; error: string }
  | {
      kind: 'answered';
      /** The guard's breaker state (Active, Warning, Triggered, Disabled). */
      state: string;
      lastValuationAt: string | null;
      /** The guard's own blind condition (GuardStateView.blind). */
      blind: { since: string; reason: string } | null;
      /** The guard's `blindPolicy.staleAfterSeconds`; null when its config could not be read (the default applies). */
      staleAfterSeconds: number | null;
    };

/** Everything observed about one account in one check. */
export interface GuardObservation {
  accountId: string;
  /** The guard's workflow id, `guard-<accountId>`. */
  workflowId: string;
  /** The venues the trust anchor lists for the account (for the `breaker start` hint); may be empty. */
  venues: readonly string[];
  execution: ObservedExecution;
  /** Workflow ids of running executions whose `BreakerAccount` is this account (the guard's own included), or why the list failed. */
  runningForAccount: { kind: 'listed'; workflowIds: readonly string[]; earliestStart: string | null } | { kind: 'error'; error: string };
  query: ObservedQuery;
  /** When the observation was made (ISO 8601). */
  now: string;
}

/** How long a guard has to answer the `state` query before it counts as wedged. */
export const DEFAULT_QUERY_TIMEOUT_MS = 5_000;

/** The staleness limit for a guard whose config could not be read: the blind policy's default. */
export const DEFAULT_STALE_AFTER_SECONDS = 300;

const seconds = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;
const roundSeconds = (s: number) => `${Math.floor(s)} s`;

/**
 * Judges one account's guard.
 * @param o what was observed about it
 * @returns the findings, at least one; `[ok]` exactly when nothing is wrong
 */
export function judgeGuard(o: GuardObservation): Finding[] {
  const { accountId: acct, workflowId: id } = o;
  const finding = (kind: FindingKind, message: string, since: string | null, subject = ''): Finding => ({ accountId: acct, kind, message, since, subject });
  const startHint = `breaker start ${acct} --capital <initial capital> --venues ${o.venues.length > 0 ? o.venues.join(',') : '<venue ids>'}`;
  const findings: Finding[] = [];

  // Another workflow guarding the account is a problem whatever the state of the guard itself.
  if (o.runningForAccount.kind === 'error') {
    findings.push(finding('unchecked', `could not check ${acct} for duplicate guards: ${o.runningForAccount.error}`, null, 'list'));
  } else {
    const ids = o.runningForAccount.workflowIds;
    const others = [...new Set(ids.filter((w) => w !== id))].sort();
    const own = ids.filter((w) => w === id).length;
    if (others.length > 0 || own > 1) {
      const what = others.length > 0 ? `${others.length} other workflow(s) run as its guard (${others.join(', ')})` : `${own} running executions of ${id}`;
      findings.push(
        finding(
          'duplicate',
          `${acct}: ${what}; only ${id} may act on the account's venues: terminate the others (temporal workflow terminate --workflow-id <id> --reason "duplicate guard")`,
          o.runningForAccount.earliestStart,
          others.join(','),
        ),
      );
    }
  }

  const e = o.execution;
  switch (e.kind) {
    case 'error':
      findings.push(finding('unchecked', `could not check ${acct}: ${e.error}`, null, 'describe'));
      break;
    case 'notFound':
      findings.push(finding('missing', `${acct}: no guard (workflow ${id} not found): the account is unprotected; start it: ${startHint}`, null));
      break;
    case 'found':
      if (e.status !== 'RUNNING') {
        const status = e.status.toLowerCase().replace('_', ' ');
        findings.push(
          e.status === 'PAUSED'
            ? finding('not-running', `${acct}: guard ${id} is paused: it does not protect the account; unpause it (temporal workflow unpause --workflow-id ${id})`, null, e.runId)
            : finding(
                'not-running',
                `${acct}: guard ${status}${e.closedAt ? ` at ${e.closedAt}` : ''} (run ${e.runId}): the account is unprotected; start it again: ${startHint}`,
                e.closedAt,
                e.runId,
              ),
        );
        break;
      }
      findings.push(...judgeRunning(o, e, finding));
      break;
    default:
      assertNever(e);
  }
  return findings.length > 0 ? findings : [finding('ok', okMessage(o), null)];
}

function judgeRunning(
  o: GuardObservation,
  e: Extract<ObservedExecution, { kind: 'found' }>,
  finding: (kind: FindingKind, message: string, since: string | null, subject?: string) => Finding,
): Finding[] {
  const { accountId: acct, workflowId: id } = o;
  const findings: Finding[] = [];
  // Attempt 1 is a task being worked on; from 2 on, earlier attempts failed and the server is retrying.
  if (e.pendingTaskAttempt !== null && e.pendingTaskAttempt > 1) {
    findings.push(
      finding(
        'failing-task',
        `${acct}: guard's workflow task has failed ${e.pendingTaskAttempt - 1} time(s) and is being retried (a bad deploy or a non-determinism error): the guard does nothing until it succeeds; read the failure (temporal workflow describe --workflow-id ${id}) and fix or roll back the workers on task queue ${e.taskQueue}`,
        null,
        e.runId,
      ),
    );
  }
  const q = o.query;
  switch (q.kind) {
    case 'notAsked':
      break;
    case 'failed':
      findings.push(
        finding(
          'wedged',
          `${acct}: guard ${id} is running but its state query ${q.timedOut ? 'did not answer' : 'failed'}: ${q.error}; check that a worker polls task queue ${e.taskQueue} and read its logs`,
          null,
          e.runId,
        ),
      );
      break;
    case 'answered': {
      const limit = q.staleAfterSeconds ?? DEFAULT_STALE_AFTER_SECONDS;
      // Same rule as the guard's own staleness (src/domain/valuation.ts): data exactly at the limit is still fresh.
      const since = q.lastValuationAt ?? e.startedAt;
      const age = seconds(since, o.now);
      if (age > limit) {
        const when = q.lastValuationAt ? `since ${q.lastValuationAt} (${roundSeconds(age)} ago)` : `since it started at ${e.startedAt} (${roundSeconds(age)} ago)`;
        findings.push(
          finding(
            'blind',
            `${acct}: guard has not valued the account ${when}, beyond its ${limit} s staleness limit${q.blind ? `; it reports: ${q.blind.reason}` : ''}; check its venues' reachability and credentials (breaker state ${acct})`,
            since,
            e.runId,
          ),
        );
      } else if (q.blind) {
        findings.push(
          finding('blind', `${acct}: guard is blind since ${q.blind.since}: ${q.blind.reason}; check its venues' reachability and credentials (breaker state ${acct})`, q.blind.since, e.runId),
        );
      }
      break;
    }
    default:
      assertNever(q);
  }
  return findings;
}

function okMessage(o: GuardObservation): string {
  const q = o.query;
  if (q.kind !== 'answered') return `${o.accountId}: guard running`;
  const valued = q.lastValuationAt ? `valued ${roundSeconds(Math.max(0, seconds(q.lastValuationAt, o.now)))} ago` : 'starting, not valued yet';
  return `${o.accountId}: guard running, ${q.state}, ${valued}`;
}

/** A finding's alerts are keyed per hour of its streak: a receiver that honours Idempotency-Key pages once an hour. */
export const ALERT_REPEAT_SECONDS = 3_600;

/**
 * The idempotency key of a finding's alert at `now`. It depends only on what was observed, never on the watchdog's
 * memory, so that a restarted watchdog sends the same key for the same ongoing problem (and the receiver drops it):
 * a finding that knows when it started counts hours from then; one that does not (a missing guard, a query that
 * times out) counts clock hours.
 */
export function alertKey(f: Finding, now: string): string {
  const anchor = f.since !== null && Number.isFinite(Date.parse(f.since)) ? f.since : null;
  const hour = anchor === null ? Math.floor(Date.parse(now) / 1000 / ALERT_REPEAT_SECONDS) : Math.max(0, Math.floor(seconds(anchor, now) / ALERT_REPEAT_SECONDS));
  return ['watchdog', f.accountId, f.kind, f.subject, anchor ?? 'clock', String(hour)].join(':');
}
