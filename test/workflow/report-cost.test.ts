/**
 * What a bot report costs in history: the events Temporal itself writes for any workflow (a signal: the signal and
 * one workflow task; an update: accepted, completed and one workflow task) and nothing more. Before, a report that
 * moved the loss across a tenth of a percent also upserted the loss search attribute: one more event and one more
 * visibility write per report.
 */
import { temporal } from '@temporalio/proto';
import { WorkflowHarness, startWorkflowHarness, uniqueAccount } from './harness';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await startWorkflowHarness('report-cost');
});
afterAll(async () => {
  h.stubs.releaseAll();
  await h?.stop();
});

const { EventType } = temporal.api.enums.v1;

/** A guard over two venues of its own, 5,000 USDT each, valued once; its history length then. */
async function valuedGuard() {
  const spot = uniqueAccount('spot');
  const perp = uniqueAccount('perp');
  h.stubs.venue(spot).setHoldings({ balances: { USDT: '5000' } });
  h.stubs.venue(perp).setHoldings({ balances: { USDT: '5000' } });
  const accountId = uniqueAccount('cost');
  const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [spot, perp], valuationIntervalSeconds: 3600 });
  await h.eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null && s.watcher?.spoke === false && s.watcher.running && s.trust?.loadedAt !== null && s.audit?.pending === 0);
  // Let the start-up settle (reads, the first search attributes) before counting.
  await new Promise((r) => setTimeout(r, 500));
  return { accountId, handle, spot, before: (await handle.fetchHistory()).events!.length };
}

/** Event types written after `before`, counted. */
async function eventsSince(handle: Awaited<ReturnType<typeof valuedGuard>>['handle'], before: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const e of (await handle.fetchHistory()).events!.slice(before)) {
    const name = EventType[e.eventType ?? 0]!.replace('EVENT_TYPE_', '');
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

// Three reports alternating 5,000 and 4,985 USDT on one venue: the loss moves between 0 % and 0.15 %. (Few enough that
// the test server, which suggests continue-as-new after 60 events, keeps one run with the start-up's reads, watcher,
// trust load and first audit write.)
const balances = (i: number) => ({ USDT: i % 2 ? '5000' : '4985' });

it('a report by signal writes the signal and one workflow task, no search-attribute upsert', async () => {
  const { accountId, handle, spot, before } = await valuedGuard();
  for (let seq = 1; seq <= 3; seq++) {
    await h.breaker.signalReport(accountId, { venue: spot, seq, balances: balances(seq) });
    await h.eventually(() => h.breaker.state(accountId), (s) => s.lastSeq[spot] === seq);
  }
  const counts = await eventsSince(handle, before);
  expect(counts).toEqual({ WORKFLOW_EXECUTION_SIGNALED: 3, WORKFLOW_TASK_SCHEDULED: 3, WORKFLOW_TASK_STARTED: 3, WORKFLOW_TASK_COMPLETED: 3 });
  await handle.terminate('test done');
});

it('a report by update writes accepted, completed and one workflow task, no search-attribute upsert', async () => {
  const { accountId, handle, spot, before } = await valuedGuard();
  for (let seq = 1; seq <= 3; seq++) await h.breaker.report(accountId, { venue: spot, seq, balances: balances(seq) });
  const counts = await eventsSince(handle, before);
  expect(counts).toEqual({
    WORKFLOW_EXECUTION_UPDATE_ACCEPTED: 3,
    WORKFLOW_EXECUTION_UPDATE_COMPLETED: 3,
    WORKFLOW_TASK_SCHEDULED: 3,
    WORKFLOW_TASK_STARTED: 3,
    WORKFLOW_TASK_COMPLETED: 3,
  });
  await handle.terminate('test done');
});

it('the loss search attribute still follows whole percents and every change of state', async () => {
  const { accountId, handle, spot } = await valuedGuard();
  // 10,000 → 9,750: a loss of 2.5 %, published as 2 (whole percent, rounded down).
  await h.breaker.report(accountId, { venue: spot, seq: 1, balances: { USDT: '4750' } });
  await h.eventually(() => handle.describe(), (d) => d.searchAttributes.BreakerLossPct?.[0] === 2);
  // 3.5 %: Warning, and 3.
  await h.breaker.report(accountId, { venue: spot, seq: 2, balances: { USDT: '4650' } });
  const d = await h.eventually(() => handle.describe(), (x) => x.searchAttributes.BreakerState?.[0] === 'Warning');
  expect(d.searchAttributes.BreakerLossPct).toEqual([3]);
  await handle.terminate('test done');
});
