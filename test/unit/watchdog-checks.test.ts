/**
 * The watchdog's judgement (src/watchdog/checks.ts) by table: every finding kind, each status a guard can be in, and
 * the boundaries (a workflow task's first attempt against its second, a valuation exactly at the staleness limit and
 * one millisecond past it, a never-valued guard exactly as old as the limit). The table asserts its own coverage.
 */
import { FINDING_KINDS, FindingKind, GuardObservation, alertKey, judgeGuard, DEFAULT_STALE_AFTER_SECONDS, Finding } from '../../src/watchdog/checks';

const T0 = Date.parse('2026-01-01T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const NOW = at(0);
const LIMIT = 120;

const healthy: GuardObservation = {
  accountId: 'acct-1',
  workflowId: 'guard-acct-1',
  venues: ['binance-spot', 'binance-usdm'],
  execution: {
    kind: 'found',
    runId: 'run-1',
    status: 'RUNNING',
    workflowType: 'accountGuard',
    taskQueue: 'portfolio-breaker',
    startedAt: at(-3_600_000),
    closedAt: null,
    pendingTaskAttempt: null,
  },
  runningForAccount: { kind: 'listed', workflowIds: ['guard-acct-1'], earliestStart: null },
  query: { kind: 'answered', state: 'Active', lastValuationAt: at(-30_000), blind: null, staleAfterSeconds: LIMIT },
  now: NOW,
};
type Found = Extract<GuardObservation['execution'], { kind: 'found' }>;
type Answered = Extract<GuardObservation['query'], { kind: 'answered' }>;
const withExecution = (e: Partial<Found>, query: GuardObservation['query'] = { kind: 'notAsked' }): GuardObservation => ({
  ...healthy,
  execution: { ...(healthy.execution as Found), ...e },
  query,
});
const withQuery = (q: Partial<Answered>): GuardObservation => ({ ...healthy, query: { ...(healthy.query as Answered), ...q } });
const closed = (status: string): GuardObservation => withExecution({ status, closedAt: at(-60_000) });

interface Row {
  observation: GuardObservation;
  kinds: FindingKind[];
  /** Text each finding's message must contain, in order. */
  says?: string[];
}

const rows: Record<string, Row> = {
  'healthy guard': { observation: healthy, kinds: ['ok'], says: ['acct-1: guard running, Active, valued 30 s ago'] },
  'no guard at all': {
    observation: { ...healthy, execution: { kind: 'notFound' }, runningForAccount: { kind: 'listed', workflowIds: [], earliestStart: null }, query: { kind: 'notAsked' } },
    kinds: ['missing'],
    says: ['acct-1: no guard (workflow guard-acct-1 not found): the account is unprotected; start it: breaker start acct-1 --capital <initial capital> --venues binance-spot,binance-usdm'],
  },
  'no guard, no venues known': {
    observation: { ...healthy, venues: [], execution: { kind: 'notFound' }, runningForAccount: { kind: 'listed', workflowIds: [], earliestStart: null }, query: { kind: 'notAsked' } },
    kinds: ['missing'],
    says: ['--venues <venue ids>'],
  },
  terminated: { observation: closed('TERMINATED'), kinds: ['not-running'], says: [`acct-1: guard terminated at ${at(-60_000)} (run run-1): the account is unprotected; start it again: breaker start acct-1`] },
  completed: { observation: closed('COMPLETED'), kinds: ['not-running'], says: ['guard completed at'] },
  failed: { observation: closed('FAILED'), kinds: ['not-running'], says: ['guard failed at'] },
  cancelled: { observation: closed('CANCELLED'), kinds: ['not-running'], says: ['guard cancelled at'] },
  'timed out': { observation: closed('TIMED_OUT'), kinds: ['not-running'], says: ['guard timed out at'] },
  paused: { observation: withExecution({ status: 'PAUSED' }), kinds: ['not-running'], says: ['temporal workflow unpause --workflow-id guard-acct-1'] },
  'another workflow guards the account besides the guard': {
    observation: { ...healthy, runningForAccount: { kind: 'listed', workflowIds: ['guard-acct-1', 'rogue-acct-1'], earliestStart: at(-5_000) } },
    kinds: ['duplicate'],
    says: ['acct-1: 1 other workflow(s) run as its guard (rogue-acct-1); only guard-acct-1 may act'],
  },
  'another workflow guards the account, the guard is missing': {
    observation: { ...healthy, execution: { kind: 'notFound' }, runningForAccount: { kind: 'listed', workflowIds: ['rogue-acct-1'], earliestStart: at(-5_000) }, query: { kind: 'notAsked' } },
    kinds: ['duplicate', 'missing'],
  },
  'the guard id listed twice': {
    observation: { ...healthy, runningForAccount: { kind: 'listed', workflowIds: ['guard-acct-1', 'guard-acct-1'], earliestStart: null } },
    kinds: ['duplicate'],
    says: ['2 running executions of guard-acct-1'],
  },
  'describe failed': {
    observation: { ...healthy, execution: { kind: 'error', error: 'connection refused' }, query: { kind: 'notAsked' } },
    kinds: ['unchecked'],
    says: ['could not check acct-1: connection refused'],
  },
  'list failed, guard healthy': {
    observation: { ...healthy, runningForAccount: { kind: 'error', error: 'visibility unavailable' } },
    kinds: ['unchecked'],
    says: ['could not check acct-1 for duplicate guards: visibility unavailable'],
  },
  'query timed out': {
    observation: { ...healthy, query: { kind: 'failed', timedOut: true, error: 'no answer within 5000 ms' } },
    kinds: ['wedged'],
    says: ['acct-1: guard guard-acct-1 is running but its state query did not answer: no answer within 5000 ms; check that a worker polls task queue portfolio-breaker'],
  },
  'query failed': {
    observation: { ...healthy, query: { kind: 'failed', timedOut: false, error: 'TypeError: boom' } },
    kinds: ['wedged'],
    says: ['state query failed: TypeError: boom'],
  },
  'workflow task on its first attempt': { observation: withExecution({ pendingTaskAttempt: 1 }, healthy.query), kinds: ['ok'] },
  'workflow task on its second attempt': {
    observation: withExecution({ pendingTaskAttempt: 2 }, healthy.query),
    kinds: ['failing-task'],
    says: ["acct-1: guard's workflow task has failed 1 time(s) and is being retried"],
  },
  'failing workflow task and no answer': {
    observation: withExecution({ pendingTaskAttempt: 7 }, { kind: 'failed', timedOut: false, error: 'TypeError' }),
    kinds: ['failing-task', 'wedged'],
    says: ['has failed 6 time(s)', 'state query failed'],
  },
  'valued exactly at the staleness limit': { observation: withQuery({ lastValuationAt: at(-LIMIT * 1000) }), kinds: ['ok'], says: [`valued ${LIMIT} s ago`] },
  'valued 1 ms beyond the staleness limit': {
    observation: withQuery({ lastValuationAt: at(-LIMIT * 1000 - 1) }),
    kinds: ['blind'],
    says: [`acct-1: guard has not valued the account since ${at(-LIMIT * 1000 - 1)} (${LIMIT} s ago), beyond its ${LIMIT} s staleness limit`],
  },
  'default limit when the config is unknown: exactly at it': {
    observation: withQuery({ staleAfterSeconds: null, lastValuationAt: at(-DEFAULT_STALE_AFTER_SECONDS * 1000) }),
    kinds: ['ok'],
  },
  'default limit when the config is unknown: beyond it': {
    observation: withQuery({ staleAfterSeconds: null, lastValuationAt: at(-DEFAULT_STALE_AFTER_SECONDS * 1000 - 1) }),
    kinds: ['blind'],
    says: [`beyond its ${DEFAULT_STALE_AFTER_SECONDS} s staleness limit`],
  },
  'never valued, started exactly the limit ago': {
    observation: { ...withExecution({ startedAt: at(-LIMIT * 1000) }, healthy.query), query: { ...(healthy.query as Answered), lastValuationAt: null } },
    kinds: ['ok'],
    says: ['starting, not valued yet'],
  },
  'never valued, started beyond the limit': {
    observation: { ...withExecution({ startedAt: at(-LIMIT * 1000 - 1) }, healthy.query), query: { ...(healthy.query as Answered), lastValuationAt: null } },
    kinds: ['blind'],
    says: ['since it started at'],
  },
  'the guard says it is blind, valuation fresh': {
    observation: withQuery({ blind: { since: at(-10_000), reason: 'binance-spot: holdings 130 s old' } }),
    kinds: ['blind'],
    says: [`acct-1: guard is blind since ${at(-10_000)}: binance-spot: holdings 130 s old`],
  },
  'stale and the guard says why': {
    observation: withQuery({ lastValuationAt: at(-600_000), blind: { since: at(-500_000), reason: 'binance-spot: auth failed' } }),
    kinds: ['blind'],
    says: ['it reports: binance-spot: auth failed'],
  },
};

describe('judgeGuard', () => {
  it.each(Object.entries(rows))('%s', (_name, row) => {
    const findings = judgeGuard(row.observation);
    expect(findings.map((f) => f.kind)).toEqual(row.kinds);
    for (const f of findings) {
      expect(f.accountId).toBe('acct-1');
      expect(f.message).toContain('acct-1');
      expect(f.message).not.toContain('\n');
    }
    (row.says ?? []).forEach((text, i) => expect(findings[i]!.message).toContain(text));
  });

  it('the table covers every finding kind', () => {
    const covered = new Set(Object.values(rows).flatMap((r) => r.kinds));
    expect([...covered].sort()).toEqual([...FINDING_KINDS].sort());
  });

  it('anchors a finding at when its problem started, where the observation says', () => {
    const byKind = (o: GuardObservation) => Object.fromEntries(judgeGuard(o).map((f) => [f.kind, f]));
    expect(byKind(closed('TERMINATED'))['not-running']!.since).toBe(at(-60_000));
    expect(byKind(withQuery({ lastValuationAt: at(-600_000) })).blind!.since).toBe(at(-600_000));
    expect(byKind(rows['another workflow guards the account besides the guard']!.observation).duplicate!.since).toBe(at(-5_000));
    expect(byKind(rows['no guard at all']!.observation).missing!.since).toBeNull();
  });
});

describe('alertKey', () => {
  const anchored: Finding = { accountId: 'acct-1', kind: 'not-running', message: '', since: at(0), subject: 'run-1' };
  const unanchored: Finding = { accountId: 'acct-1', kind: 'missing', message: '', since: null, subject: '' };
  const minutes = (m: number) => at(m * 60_000);

  it('is the same for the same problem within an hour of its start, whenever it is computed (a restarted watchdog)', () => {
    expect(alertKey(anchored, minutes(1))).toBe(alertKey(anchored, minutes(59)));
    expect(alertKey(anchored, minutes(59))).not.toBe(alertKey(anchored, minutes(60)));
    expect(alertKey(anchored, minutes(60))).toBe(alertKey(anchored, minutes(119)));
  });

  it('counts clock hours for a problem with no known start', () => {
    // NOW is 12:00:00 on the clock.
    expect(alertKey(unanchored, minutes(0))).toBe(alertKey(unanchored, minutes(59)));
    expect(alertKey(unanchored, minutes(59))).not.toBe(alertKey(unanchored, minutes(60)));
    expect(alertKey(unanchored, minutes(-1))).not.toBe(alertKey(unanchored, minutes(0)));
  });

  it('differs between problems: another start, another run, another kind, another account', () => {
    const key = alertKey(anchored, minutes(5));
    expect(alertKey({ ...anchored, since: at(1) }, minutes(5))).not.toBe(key);
    expect(alertKey({ ...anchored, subject: 'run-2' }, minutes(5))).not.toBe(key);
    expect(alertKey({ ...anchored, kind: 'blind' }, minutes(5))).not.toBe(key);
    expect(alertKey({ ...anchored, accountId: 'acct-2' }, minutes(5))).not.toBe(key);
  });
});
