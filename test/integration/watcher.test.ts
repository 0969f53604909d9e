/**
 * The watcher with real parts: the guard workflow on the shared Temporal server, a real worker, real ccxt pro
 * clients streaming from the paper exchange. No bot reports anywhere: every loss here is seen by the watcher alone
 * (valuationIntervalSeconds is an hour, so the guard's own periodic read cannot explain a trip).
 */
import { randomBytes } from 'node:crypto';
import type { GuardStateView } from '../../src/api/contract';
import { BreakerClient } from '../../src/client';
import { WorkerProcess } from '../../tooling/crash/worker-process';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('watcher');
});
afterAll(async () => {
  await h?.stop();
});

/** Spot: 5,000 USDT + 1 BTC at 50,000; futures: 5,000 USDT. Capital 60,000: a loss of 5 % is 3,000. */
function seed() {
  h.paper.exchange.seed({ prices: { BTC: '50000' }, spotBalances: { USDT: '5000', BTC: '1' }, futuresBalances: { USDT: '5000' } });
}

async function control(path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST'): Promise<unknown> {
  const res = await fetch(`${h.paper.url}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

const state = (accountId: string) => h.breaker.state(accountId);
const streaming = (s: GuardStateView) => s.watcher !== null && [SPOT, PERP].every((v) => s.watcher!.feeds[v]?.mode === 'streaming');

/** A watched guard whose watcher has spoken for both venues (streaming), valued at no loss. */
async function watchedGuard(watch: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const accountId = uniqueAccount('watch');
  await h.breaker.startGuard({ accountId, initialCapital: '60000', venues: [SPOT, PERP], valuationIntervalSeconds: 3600, watch: { snapshotIntervalSeconds: 2, ...watch }, ...extra });
  await eventually(() => state(accountId), (s) => streaming(s) && s.lossPct === '0.00', 30_000);
  return accountId;
}

afterEach(async () => {
  await control('/control/streams/faults', undefined, 'DELETE');
  await control('/control/faults', undefined, 'DELETE');
});

test('a price move on the venue trips the guard with no bot report, through the streams', async () => {
  seed();
  const accountId = await watchedGuard();
  // BTC 50,000 → 46,000: the account loses 4,000 of 60,000 (6.67 %).
  await control('/control/prices', { BTC: '46000' });
  const tripped = await eventually(() => state(accountId), (s) => s.state === 'Triggered', 20_000);
  expect(tripped.breaker).toMatchObject({ name: 'Triggered', cause: 'loss' });
  expect(tripped.counters.reportsAccepted).toBe(0);
  expect(tripped.venues[SPOT]!.holdingsFrom).toBe('watcher');
  expect(tripped.watcher!.feeds[SPOT]!.mode).toBe('streaming');
  await h.breaker.handle(accountId).terminate('test done');
}, 60_000);

test('a silent price stream falls back to polling (recorded as state and an event), and polling still sees the loss', async () => {
  seed();
  const accountId = await watchedGuard({ streamSilenceSeconds: 2, pollIntervalSeconds: 1 });
  await control('/control/streams/faults', { action: 'silence', streams: 'all' });
  const polling = await eventually(() => state(accountId), (s) => s.watcher!.feeds[SPOT]?.mode === 'polling', 20_000);
  expect(polling.watcher!.feeds[SPOT]!.lastError).toMatch(/silent/);
  expect((await h.breaker.events(accountId)).some((e) => e.type === 'FeedChanged' && e.venue === SPOT && e.mode === 'polling')).toBe(true);
  // Streams are still silent: only a REST poll can see this.
  await control('/control/prices', { BTC: '46000' });
  const tripped = await eventually(() => state(accountId), (s) => s.state === 'Triggered', 20_000);
  expect(tripped.counters.reportsAccepted).toBe(0);
  expect(tripped.watcher!.feeds[SPOT]!.mode).toBe('polling');
  await h.breaker.handle(accountId).terminate('test done');
}, 60_000);

test('dropped streams: the feed falls back to polling, then streams again once they are back', async () => {
  seed();
  const accountId = await watchedGuard({ streamSilenceSeconds: 2, pollIntervalSeconds: 1 });
  const before = (await state(accountId)).watcher!.feeds[SPOT]!.fallbacks;
  // Dropped, and kept silent long enough to be noticed; then both faults end and the streams resume.
  await control('/control/streams/faults', { action: 'drop', streams: 'all' });
  await control('/control/streams/faults', { action: 'silence', streams: 'all', ms: 4000 });
  await eventually(() => state(accountId), (s) => s.watcher!.feeds[SPOT]!.fallbacks > before, 20_000);
  const back = await eventually(() => state(accountId), (s) => s.watcher!.feeds[SPOT]!.mode === 'streaming', 30_000);
  expect(back.state).toBe('Active');
  await control('/control/prices', { BTC: '46000' });
  await eventually(() => state(accountId), (s) => s.state === 'Triggered', 20_000);
  await h.breaker.handle(accountId).terminate('test done');
}, 90_000);

test('a stream silent and REST failing: the watcher data grows old and the guard goes blind', async () => {
  seed();
  const accountId = await watchedGuard(
    { streamSilenceSeconds: 2, pollIntervalSeconds: 1, snapshotIntervalSeconds: 2 },
    { valuationIntervalSeconds: 5, blindPolicy: { staleAfterSeconds: 8 } },
  );
  await control('/control/streams/faults', { action: 'silence', streams: 'all' });
  // Every REST request fails from now on (the guard's own reads too).
  await control('/control/faults', { endpoint: '*', kind: 'http5xx' });
  const blind = await eventually(() => state(accountId), (s) => s.blind !== null, 40_000);
  expect(blind.blind!.reason).toMatch(/old|stale/);
  // No fresh data: old, or none at all when a new watcher generation (after continue-as-new: the shared test server
  // suggests it after 60 events) has not been able to read anything since.
  const age = blind.watcher!.feeds[SPOT]!.dataAgeSeconds;
  expect(age === null || age > 2).toBe(true);
  await h.breaker.handle(accountId).terminate('test done');
}, 90_000);

test('an order placed after a trip, seen on the order stream, is cancelled at once (not at the next sweep)', async () => {
  seed();
  const accountId = await watchedGuard({}, { sweepIntervalSeconds: 3600 });
  await h.breaker.halt(accountId, { operator: 'alice', reason: 'late-order test' });
  // Flat, and the watcher replaced by one that follows the order streams.
  await eventually(
    () => state(accountId),
    (s) => s.state === 'Triggered' && !s.shutdownInProgress && s.watcher!.generation >= 2 && s.watcher!.spoke && streaming(s) && !Object.values(s.shutdown).some((p) => p.pass !== null),
    30_000,
  );
  const cancelledBefore = (await state(accountId)).shutdown[SPOT]!.cancelled;
  await control('/control/orders', { market: 'spot', symbol: 'ETHUSDT', side: 'BUY', price: '1', quantity: '1' });
  await eventually(() => Promise.resolve(h.paper.exchange.snapshot().openOrders.total), (open) => open === 0, 20_000);
  const after = await eventually(() => state(accountId), (s) => s.shutdown[SPOT]!.cancelled > cancelledBefore, 10_000);
  expect(after.shutdown[SPOT]!.cancelled).toBe(cancelledBefore + 1);
  await h.breaker.handle(accountId).terminate('test done');
}, 60_000);

test('the watcher of a SIGKILLed worker resumes on the other worker, and the loss is still seen without a report', async () => {
  seed();
  // Two worker processes on a queue of their own; the watcher runs on one of them.
  const taskQueue = `watcher-crash-${randomBytes(3).toString('hex')}`;
  const options = { address: h.address, taskQueue, workflowBundle: process.env.TEST_WORKFLOW_BUNDLE!, paperUrl: h.paper.url, credentials: h.credentials, trust: h.trust };
  const workers = [await WorkerProcess.start(options), await WorkerProcess.start(options)];
  try {
    const breaker = new BreakerClient(h.client, taskQueue, { operatorKeys: h.trust.operatorKeys });
    const accountId = uniqueAccount('watch-crash');
    await breaker.startGuard({ accountId, initialCapital: '60000', venues: [SPOT, PERP], valuationIntervalSeconds: 3600, watch: { snapshotIntervalSeconds: 2 } });
    await eventually(() => breaker.state(accountId), (s) => streaming(s) && s.lossPct === '0.00', 30_000);
    const watcherActivity = async () => (await breaker.handle(accountId).describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'watchAccount');
    const first = await eventually(watcherActivity, (a) => a?.lastWorkerIdentity !== undefined && a.lastWorkerIdentity !== '', 10_000);
    const victim = workers.find((w) => w.identity === first!.lastWorkerIdentity)!;
    const survivor = workers.find((w) => w !== victim)!;
    expect(victim).toBeDefined();
    await victim.kill();
    // Noticed by its heartbeat timeout, retried on the survivor (same generation: the guard keeps listening to it).
    const moved = await eventually(watcherActivity, (a) => a?.lastWorkerIdentity === survivor.identity && (a.attempt ?? 1) >= 2, 30_000);
    expect(moved!.lastWorkerIdentity).toBe(survivor.identity);
    const observationsBefore = (await breaker.state(accountId)).counters.observations;
    await eventually(() => breaker.state(accountId), (s) => s.counters.observations > observationsBefore && streaming(s), 20_000);
    await control('/control/prices', { BTC: '46000' });
    const tripped = await eventually(() => breaker.state(accountId), (s) => s.state === 'Triggered', 20_000);
    expect(tripped.counters.reportsAccepted).toBe(0);
    await breaker.handle(accountId).terminate('test done');
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
  }
}, 120_000);
