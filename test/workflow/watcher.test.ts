/**
 * The guard's watcher on the real guard workflow, with the stub watcher of test/workflow/harness.ts: the test speaks
 * for the watcher by sending `watcherObservation` signals, and the stub records every watcher the guard starts and
 * every one it cancels. Each guard has venues of its own (the stubs are shared by the whole file) and is terminated
 * at the end of its test, so that the stub's `setFailure` and `endAll` reach no other test's guard.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { watcherObservationSignal } from '../../src/api/contract';
import type { WatcherObservation } from '../../src/domain/watcher';
import { WorkflowHarness, startWorkflowHarness, uniqueAccount } from './harness';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await startWorkflowHarness('watcher');
});
afterEach(() => {
  h.stubs.watcher.setFailure(null);
});
afterAll(async () => {
  h.stubs.releaseAll();
  await h?.stop();
});

/** A guard over two venues of its own, 5,000 USDT each, valued once. */
async function startWatched(extra: Record<string, unknown> = {}) {
  const spot = uniqueAccount('spot');
  const perp = uniqueAccount('perp');
  h.stubs.venue(spot).setHoldings({ balances: { USDT: '5000' } });
  h.stubs.venue(perp).setHoldings({ balances: { USDT: '5000' } });
  const accountId = uniqueAccount('watch');
  const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [spot, perp], ...extra });
  await h.eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null && s.watcher?.running === true);
  return { accountId, handle, spot, perp };
}

const plansOf = (accountId: string) => h.stubs.watcher.plans.filter((p) => p.accountId === accountId);
const alertsOf = (accountId: string) => h.stubs.alerts.received.filter((a) => a.accountId === accountId).map((a) => a.kind);

/** An observation of watcher `generation`: per venue, its USDT balance (a reading) and the orders it saw open. */
function observation(generation: number, venues: Record<string, { usdt?: string; ordersOpened?: number }>): WatcherObservation {
  return {
    generation,
    reason: 'snapshot',
    level: null,
    venues: Object.fromEntries(
      Object.entries(venues).map(([venue, v]) => [
        venue,
        {
          feed: { mode: 'streaming', dataAgeSeconds: 0, fallbacks: 0, lastError: null },
          ...(v.usdt !== undefined ? { reading: { balances: { USDT: v.usdt }, prices: {}, positions: [] } } : {}),
          ordersOpened: v.ordersOpened ?? 0,
        },
      ]),
    ),
  };
}

const { EventType } = temporal.api.enums.v1;

/** The generations of this run's watchAccount activities that Temporal recorded as cancelled. */
async function cancelledGenerations(handle: WorkflowHandle): Promise<number[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const generationOf = new Map<string, number>();
  for (const e of events) {
    const a = e.activityTaskScheduledEventAttributes;
    if (e.eventType !== EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED || a?.activityType?.name !== 'watchAccount') continue;
    const payload = a.input?.payloads?.[0]?.data;
    const plan = payload ? (JSON.parse(Buffer.from(payload).toString('utf8')) as { generation: number }) : undefined;
    if (plan) generationOf.set(String(e.eventId), plan.generation);
  }
  // The guard's request to stop (recorded with the decision that replaced the watcher); when the activity sees it
  // depends on its next heartbeat reaching the server, which a loaded machine can delay.
  return events
    .filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED)
    .flatMap((e) => {
      const generation = generationOf.get(String(e.activityTaskCancelRequestedEventAttributes?.scheduledEventId ?? ''));
      return generation === undefined ? [] : [generation];
    });
}

it('a guard starts a watcher: generation 1, not triggered, no secrets in the plan', async () => {
  const { accountId, handle, spot, perp } = await startWatched();
  const plans = await h.eventually(() => plansOf(accountId), (p) => p.length > 0);
  expect(plans[0]).toMatchObject({ accountId, generation: 1, triggered: false, venues: [spot, perp], initialCapital: '10000', referenceCurrency: 'USDT' });
  expect(JSON.stringify(plans[0])).not.toMatch(/secret|apiKey|password|token|credential/i);
  expect((await h.breaker.state(accountId)).watcher).toMatchObject({ generation: 1, running: true, failures: 0 });
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
});

it('a breaching observation trips the guard with no bot report; the Triggered watcher replaces the old one', async () => {
  const { accountId, handle, spot, perp } = await startWatched();
  await h.client.workflow.getHandle(handle.workflowId).signal(watcherObservationSignal, observation(1, { [spot]: { usdt: '5000' }, [perp]: { usdt: '4000' } }));
  const state = await h.eventually(() => h.breaker.state(accountId), (s) => s.state === 'Triggered');
  expect(state.counters).toMatchObject({ reportsAccepted: 0, observations: 1 });
  expect(state.venues[perp]).toMatchObject({ holdingsFrom: 'watcher' });
  const plans = await h.eventually(() => plansOf(accountId), (p) => p.some((plan) => plan.generation === 2));
  expect(plans.find((p) => p.generation === 2)).toMatchObject({ triggered: true });
  expect(plans.filter((p) => p.generation === 1).every((p) => !p.triggered)).toBe(true);
  // The first watcher was asked to stop, in this run's history; the second was not.
  await h.eventually(() => cancelledGenerations(handle), (g) => g.includes(1));
  expect(await cancelledGenerations(handle)).not.toContain(2);
  expect((await h.breaker.state(accountId)).watcher).toMatchObject({ generation: 2, running: true });
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
});

it('orders seen opening on a Triggered account are cancelled at once (no sweep could explain it)', async () => {
  const { accountId, handle, spot, perp } = await startWatched({ sweepIntervalSeconds: 3600 });
  const guard = h.client.workflow.getHandle(handle.workflowId);
  await guard.signal(watcherObservationSignal, observation(1, { [perp]: { usdt: '4000' } }));
  // The trip's own cancel passes done, and a Triggered watcher (generation 2 or later) running. Its generation is read, not assumed: on a
  // loaded machine a missed heartbeat can replace it (generation 3 or later) before the test speaks for it.
  await h.eventually(
    () => h.breaker.state(accountId),
    (s) => s.state === 'Triggered' && (s.watcher?.generation ?? 0) >= 2 && s.watcher?.running === true && Object.values(s.shutdown).every((p) => p.pass === null && p.status === 'flat'),
  );
  const passesBefore = h.stubs.venue(spot).calls.cancelAllOpenOrders;
  h.stubs.venue(spot).addLateOrders(3);
  // Speak as the current watcher until the orders are gone: an observation of a generation replaced meanwhile is
  // (rightly) ignored by the guard, so each poll re-reads the generation.
  await h.eventually(
    async () => {
      const generation = (await h.breaker.state(accountId)).watcher?.generation ?? 0;
      if (h.stubs.venue(spot).openOrders > 0) await guard.signal(watcherObservationSignal, observation(generation, { [spot]: { ordersOpened: 3 } }));
      return h.stubs.venue(spot).openOrders;
    },
    (open) => open === 0,
  );
  expect(h.stubs.venue(spot).calls.cancelAllOpenOrders).toBeGreaterThan(passesBefore);
  expect(h.stubs.venue(spot).cancelled).toBeGreaterThanOrEqual(3);
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
});

it('a watcher that fails is recorded, alerted, and started again once it can run', async () => {
  const { accountId, handle } = await startWatched();
  h.stubs.watcher.setFailure('stub: stream refused');
  const events = await h.eventually(() => h.breaker.events(accountId), (e) => e.some((x) => x.type === 'WatcherStopped'), 30_000);
  expect(events.find((e) => e.type === 'WatcherStopped')).toMatchObject({ generation: 1, error: expect.stringContaining('stub: stream refused') });
  await h.eventually(() => alertsOf(accountId), (kinds) => kinds.includes('WatcherDown'));
  const down = await h.breaker.state(accountId);
  expect(down.watcher).toMatchObject({ failures: expect.any(Number), lastError: expect.stringContaining('stub: stream refused') });
  const seen = plansOf(accountId).length;
  h.stubs.watcher.setFailure(null);
  const up = await h.eventually(() => h.breaker.state(accountId), (s) => s.watcher?.running === true && s.watcher.generation >= 2, 60_000);
  expect(plansOf(accountId).length).toBeGreaterThan(seen);
  expect(plansOf(accountId).some((p) => p.generation === up.watcher!.generation)).toBe(true);
  // One WatcherDown per streak, however many attempts failed.
  expect(alertsOf(accountId).filter((k) => k === 'WatcherDown')).toHaveLength(1);
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
}, 90_000);

it('a watcher that hands over is started again at once', async () => {
  const { accountId, handle } = await startWatched();
  await h.eventually(() => plansOf(accountId), (p) => p.length === 1);
  h.stubs.watcher.endAll();
  const state = await h.eventually(() => h.breaker.state(accountId), (s) => s.watcher?.generation === 2 && s.watcher.running);
  expect(state.watcher).toMatchObject({ failures: 0, lastError: null });
  await h.eventually(() => plansOf(accountId), (p) => p.some((plan) => plan.generation === 2));
  expect((await h.breaker.events(accountId)).some((e) => e.type === 'WatcherStopped')).toBe(false);
  expect(alertsOf(accountId)).not.toContain('WatcherDown');
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
});

it('after continue-as-new the new run starts a new watcher generation', async () => {
  const { accountId, handle, spot, perp } = await startWatched();
  const firstRun = (await handle.describe()).runId;
  const guard = h.client.workflow.getHandle(handle.workflowId);
  // Enough messages for the server to suggest continue-as-new (after 60 history events in this test server).
  for (let i = 0; i < 40; i++) await guard.signal(watcherObservationSignal, observation(1, { [spot]: { usdt: '5000' }, [perp]: { usdt: '5000' } }));
  await h.eventually(() => handle.describe(), (d) => d.runId !== firstRun, 30_000);
  const state = await h.eventually(() => h.breaker.state(accountId), (s) => s.watcher?.generation === 2 && s.watcher.running);
  expect(state.state).toBe('Active');
  await h.eventually(() => plansOf(accountId), (p) => p.some((plan) => plan.generation === 2 && !plan.triggered));
  // The old run's watcher speaks with a generation the new run ignores.
  await guard.signal(watcherObservationSignal, observation(1, { [perp]: { usdt: '1' } }));
  const after = await h.eventually(() => h.breaker.state(accountId), (s) => s.counters.observationsIgnored > state.counters.observationsIgnored);
  expect(after.state).toBe('Active');
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
}, 90_000);
