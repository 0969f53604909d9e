/**
 * Bad input never wedges a guard, duplicates and stale reports are ignored and counted, operators are checked.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { balanceReportSignal } from '../../src/api/contract';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('reports');
  h.paper.exchange.seed({ spotBalances: { USDT: '6000' }, futuresBalances: { USDT: '4000' } });
});
afterAll(async () => {
  await h?.stop();
});

const good = (seq: number, usdt = '6000') => ({ venue: SPOT, seq, balances: { USDT: usdt } });

/** Every kind of invalid report, as any Temporal client could send it. */
const invalid: [string, unknown, string][] = [
  ['NaN balance', { venue: SPOT, seq: 50, balances: { USDT: 'NaN' } }, 'report.balances.USDT'],
  ['negative balance', { venue: SPOT, seq: 51, balances: { USDT: '-1' } }, 'must not be negative'],
  ['non-numeric string', { venue: SPOT, seq: 52, balances: { USDT: 'ten' } }, 'got the string "ten"'],
  ['number instead of string', { venue: SPOT, seq: 53, balances: { USDT: 6000 } }, 'got the number 6000'],
  ['unknown venue', { venue: 'kraken', seq: 54, balances: { USDT: '1' } }, 'unknown venue "kraken"'],
  ['wrong type for seq', { venue: SPOT, seq: 'five', balances: {} }, 'report.seq'],
  ['missing balances', { venue: SPOT, seq: 55 }, 'report.balances'],
  ['missing venue', { seq: 56, balances: {} }, 'report.venue'],
  ['null payload', null, 'report'],
  ['array payload', [1, 2], 'report'],
  ['string payload', 'hello', 'report'],
];

async function historyEventTypes(accountId: string): Promise<string[]> {
  const history = await h.breaker.handle(accountId).fetchHistory();
  return (history.events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? 'unknown');
}

describe('invalid reports', () => {
  let accountId: string;
  beforeAll(async () => {
    accountId = uniqueAccount('invalid');
    // No watcher: its snapshots (and those of the new one after a continue-as-new, which the shared test server
    // suggests after 60 events) would change the state under the comparisons below.
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP], watch: { enabled: false } });
    // Let the guard's own start-up read finish, so that nothing else changes the state under the tests below.
    await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    await h.breaker.report(accountId, good(1));
  });

  it.each(invalid)('update with %s is rejected with a precise error and changes nothing', async (_label, payload, message) => {
    const before = await h.breaker.state(accountId);
    const handle = h.breaker.handle(accountId);
    const attempt = handle.executeUpdate('reportBalances', { args: [payload] });
    await expect(attempt).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    await expect(attempt).rejects.toMatchObject({ cause: { message: expect.stringContaining(message), type: 'InvalidReport' } });
    expect(await h.breaker.state(accountId)).toEqual(before);
  });

  it('signals with every invalid payload are dropped, recorded and counted; the guard keeps answering', async () => {
    const before = await h.breaker.state(accountId);
    for (const [, payload] of invalid) await h.breaker.handle(accountId).signal(balanceReportSignal, payload as never);
    const after = await eventually(() => h.breaker.state(accountId), (s) => s.counters.reportsRejected === invalid.length);
    // Only the counters changed (and the trust view's load time, should the run have continued as new meanwhile).
    expect({ ...after, counters: before.counters, trust: before.trust }).toEqual(before);
    const rejected = (await h.breaker.events(accountId)).filter((e) => e.type === 'ReportRejected');
    expect(rejected).toHaveLength(invalid.length);
    invalid.forEach(([, , message], i) => expect(rejected[i]).toMatchObject({ error: expect.stringContaining(message) }));
    // And it still accepts good reports.
    expect((await h.breaker.report(accountId, good(2, '5999'))).outcome).toBe('accepted');
    const types = await historyEventTypes(accountId);
    expect(types).not.toContain('EVENT_TYPE_WORKFLOW_TASK_FAILED');
    expect(types).not.toContain('EVENT_TYPE_WORKFLOW_EXECUTION_FAILED');
  });
});

describe('sequence numbers', () => {
  it('ignores repeated and stale seq per venue and counts them', async () => {
    const accountId = uniqueAccount('seq');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    expect((await h.breaker.report(accountId, good(10, '6000'))).outcome).toBe('accepted');
    expect((await h.breaker.report(accountId, good(10, '1'))).outcome).toBe('duplicate');
    expect((await h.breaker.report(accountId, good(9, '1'))).outcome).toBe('stale');
    // seq is per venue: the perp venue starts from nothing.
    expect((await h.breaker.report(accountId, { venue: PERP, seq: 1, balances: { USDT: '4000' } })).outcome).toBe('accepted');
    await h.breaker.signalReport(accountId, good(10, '2'));
    const state = await eventually(() => h.breaker.state(accountId), (s) => s.counters.reportsDuplicate === 2);
    expect(state).toMatchObject({
      lastSeq: { [SPOT]: 10, [PERP]: 1 },
      totalValue: '10000',
      counters: { reportsAccepted: 2, reportsDuplicate: 2, reportsStale: 1 },
    });
  });

  it('continues as new when Temporal suggests it, carrying state, seq and events', async () => {
    // The shared test server suggests continue-as-new after 60 history events (see global-setup.ts).
    const accountId = uniqueAccount('can');
    // No timer read and no watcher during the test: the bots report balances the paper account does not hold, and
    // the figures must be the bots' alone (a watcher would replace them with the venue's own).
    const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP], valuationIntervalSeconds: 3600, watch: { enabled: false } });
    const firstRunId = handle.firstExecutionRunId;
    // The guard's start-up reads first: a read that starts after a bot's report is newer than it, and would count.
    await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    await h.breaker.report(accountId, { venue: PERP, seq: 1, balances: { USDT: '3650' } });
    for (let seq = 1; seq <= 60; seq++) await h.breaker.report(accountId, good(seq, '6000'));
    const description = await h.breaker.handle(accountId).describe();
    expect(description.runId).not.toBe(firstRunId);
    expect((await h.breaker.report(accountId, good(60, '1'))).outcome).toBe('duplicate');
    const state = await h.breaker.state(accountId);
    expect(state).toMatchObject({ state: 'Warning', lastSeq: { [SPOT]: 60, [PERP]: 1 }, totalValue: '9650', counters: { reportsAccepted: 61 } });
    expect((await h.breaker.events(accountId)).map((e) => e.type)).toEqual(['WarningTriggered']);
  });
});

describe('operator requests', () => {
  it('checks operator and reason and the state before anything reaches history', async () => {
    const accountId = uniqueAccount('ops');
    // No watcher: the reports below are the account (the paper venue holds something else, and a watcher's snapshot of
    // it arriving between a report and the enable would replace them).
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP], watch: { enabled: false } });
    await expect(h.breaker.reset(accountId, { operator: 'alice', reason: 'x' })).rejects.toMatchObject({
      cause: { type: 'NotAllowedInThisState', message: expect.stringContaining('reset applies only to a Triggered breaker') },
    });
    await expect(h.breaker.disable(accountId, { operator: '', reason: 'x' })).rejects.toMatchObject({ cause: { type: 'InvalidOperatorRequest' } });
    await expect(h.breaker.handle(accountId).executeUpdate('disable', { args: [null] })).rejects.toMatchObject({ cause: { type: 'InvalidOperatorRequest' } });
    expect((await h.breaker.disable(accountId, { operator: 'alice', reason: 'maintenance' })).state).toBe('Disabled');
    // Disabled: a breach is recorded as a value but does not trip.
    await h.breaker.report(accountId, good(1, '6000'));
    const breach = await h.breaker.report(accountId, { venue: PERP, seq: 1, balances: { USDT: '3000' } });
    expect(breach).toMatchObject({ state: 'Disabled', lossPct: '10.00' });
    // Enabling re-evaluates at once: the breach now trips the breaker.
    const enabled = await h.breaker.enable(accountId, { operator: 'bob', reason: 'done' });
    expect(enabled.state).toBe('Triggered');
    await expect(h.breaker.disable(accountId, { operator: 'alice', reason: 'x' })).rejects.toMatchObject({ cause: { type: 'NotAllowedInThisState' } });
    const events = await eventually(() => h.breaker.events(accountId), (e) => e.some((x) => x.type === 'SystemShutdown'));
    // Each signed action is recorded with who signed it (and goes to the audit log), then its effect.
    expect(events.map((e) => e.type)).toEqual(['OperatorActionAccepted', 'BreakerDisabled', 'OperatorActionAccepted', 'BreakerEnabled', 'CircuitBreakerTriggered', 'SystemShutdown']);
    expect(events.filter((e) => e.type === 'OperatorActionAccepted')).toMatchObject([
      { action: 'disable', operator: 'alice', keyId: expect.any(String) },
      { action: 'enable', operator: 'bob', keyId: expect.any(String) },
    ]);
  });
});
