/**
 * A rogue worker without the deployment's key cannot fake a flat account. Anyone who can poll the guard's task queue
 * can answer its activities; with encrypted history (src/codec/encryption.ts) a worker without the key writes results
 * the guard's workers cannot decode, and the guard treats such a result as a failure of that effect
 * (src/workflows/account-guard.ts `settle`), never as "0 open orders". The paper exchange is the truth throughout.
 *
 * On a task queue of its own: worker A (the guard's workflow code and every activity except the two that flatten, with
 * the key), a rogue (only `cancelAllOpenOrders` and `closePositions`, answering "flat", no key), and later worker B
 * (every activity, with the key).
 */
import { randomBytes } from 'node:crypto';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import type { GuardStateView } from '../../src/api/contract';
import { BreakerClient } from '../../src/client';
import { payloadCodecsFromEnv } from '../../src/codec/encryption';
import { VenueClient, createVenueClient } from '../../src/exchanges/ccxt-factory';
import { payloadConverterPath } from '../../src/worker-factory';
import { seedPaperAccount } from '../../tooling/seed-scenario';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

const KEYS = { BREAKER_CODEC_KEYS: `k1:${randomBytes(32).toString('base64')}` };

let h: Harness;
/** One connection per worker: core refuses two workers of one connection polling the same task types of a queue. */
const connections: NativeConnection[] = [];
const connect = async () => {
  const c = await NativeConnection.connect({ address: h.address });
  connections.push(c);
  return c;
};
let venues: Map<string, VenueClient>;
const running: { worker: Worker; done: Promise<void> }[] = [];

beforeAll(async () => {
  h = await startHarness('rogue');
  const spec = (id: string, exchange: 'binance' | 'binanceusdm') => ({ id, exchange, routeTo: h.paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS });
  venues = new Map([createVenueClient(spec(SPOT, 'binance'), h.credentials), createVenueClient(spec(PERP, 'binanceusdm'), h.credentials)].map((v) => [v.id, v]));
});

afterAll(async () => {
  await Promise.all([...running].map(stop));
  await Promise.all(connections.map((c) => c.close()));
  // The watchers' WebSocket connections would keep the process alive.
  await Promise.all([...(venues?.values() ?? [])].map((v) => v.exchange.close()));
  await h?.stop();
});

function run(worker: Worker): { worker: Worker; done: Promise<void> } {
  const r = { worker, done: worker.run() };
  running.push(r);
  return r;
}

async function stop(r: { worker: Worker; done: Promise<void> }): Promise<void> {
  running.splice(running.indexOf(r), 1);
  r.worker.shutdown();
  await r.done;
}

const genuineActivities = () => createActivities({ venues, trust: h.trust.anchor, auditDir: h.trust.auditDir });

/** What the rogue was asked and how often it answered "flat". */
const rogueCalls: { activity: string; argType: string }[] = [];

test('a rogue worker without the deployment\'s key cannot fake a flat account; a genuine worker then flattens it', async () => {
  h.paper.exchange.seed(seedPaperAccount());
  const seeded = h.paper.exchange.snapshot().openOrders;
  expect(seeded).toEqual({ spot: 3, futures: 2, futuresAlgo: 2, total: 7 });
  const taskQueue = `rogue-${randomBytes(4).toString('hex')}`;

  // Worker A: the guard's workflows, every activity except the two that flatten, with the key.
  const allButFlattening: Partial<ReturnType<typeof genuineActivities>> = genuineActivities();
  delete allButFlattening.cancelAllOpenOrders;
  delete allButFlattening.closePositions;
  run(
    await Worker.create({
      connection: await connect(),
      namespace: 'default',
      taskQueue,
      workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
      dataConverter: { payloadConverterPath: payloadConverterPath(), payloadCodecs: payloadCodecsFromEnv(KEYS) },
      activities: allButFlattening,
      stickyQueueScheduleToStartTimeout: '3 seconds',
    }),
  );
  const breaker = new BreakerClient(new Client({ connection: h.client.connection, dataConverter: { payloadCodecs: payloadCodecsFromEnv(KEYS, { onRefused: 'throw' }) } }), taskQueue);
  const accountId = uniqueAccount('rogue');
  const state = () => breaker.state(accountId);
  await breaker.startGuard({ accountId, initialCapital: '10000.00', venues: [SPOT, PERP], sweepIntervalSeconds: 5 });
  await eventually(state, (s) => s.lossPct === '0.00' && s.trust?.loadedAt != null, 30_000);

  // The rogue joins the queue: no key, no workflows, and an answer of "flat" to every pass. It uses the guard's own
  // payload converter, so that the encrypted argument it cannot read does not stop it from answering.
  const rogue = run(
    await Worker.create({
      connection: await connect(),
      namespace: 'default',
      taskQueue,
      dataConverter: { payloadConverterPath: payloadConverterPath() },
      activities: {
        async cancelAllOpenOrders(venue: unknown) {
          rogueCalls.push({ activity: 'cancelAllOpenOrders', argType: typeof venue });
          return { venue: typeof venue === 'string' ? venue : SPOT, cancelled: 0, openAfter: 0 };
        },
        async closePositions(venue: unknown) {
          rogueCalls.push({ activity: 'closePositions', argType: typeof venue });
          return { venue: typeof venue === 'string' ? venue : SPOT, closed: 0, remaining: 0 };
        },
      },
    }),
  );

  // A bot reports 1,000 USDT less on spot: a loss of 10 %. The breaker trips and orders a cancel pass per venue.
  const answer = await breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '3000.00', BTC: '0.1' } });
  expect(answer.state).toBe('Triggered');

  // Only the rogue answers the passes (worker A has no such activity and fails them, retryably): each answer is refused
  // as undecodable, and no venue is ever recorded flat.
  const seen: string[] = [];
  const watch = (s: GuardStateView) => {
    for (const v of [SPOT, PERP]) seen.push(`${v} ${s.shutdown[v]?.status}`);
    return s;
  };
  const refused = (s: GuardStateView, v: string) => s.shutdown[v]?.status === 'failed' && /could not be decoded/.test(s.shutdown[v]?.lastError ?? '');
  const first = await eventually(async () => watch(await state()), (s) => refused(s, SPOT) && refused(s, PERP), 60_000);
  // Refused again at later sweeps: the guard keeps trying, and keeps refusing the rogue's answer.
  // (The state as that condition saw it: read again, a sweep may have just moved a venue back to cancelling.)
  const stillOpen = await eventually(async () => watch(await state()), (s) => [SPOT, PERP].every((v) => s.shutdown[v]!.attempts >= first.shutdown[v]!.attempts + 2 && refused(s, v)), 60_000);
  expect(seen.filter((s) => s.endsWith(' flat'))).toEqual([]);
  expect(stillOpen.state).toBe('Triggered');
  expect(stillOpen.breaker).toMatchObject({ name: 'Triggered', shutdown: 'inProgress' });
  expect(stillOpen.shutdownInProgress).toBe(true);
  for (const v of [SPOT, PERP]) {
    expect(stillOpen.shutdown[v]).toMatchObject({ status: 'failed', cancelled: 0, openOrders: null });
    expect(stillOpen.shutdown[v]!.lastError).toMatch(/^UndecodableResult: the activity's result could not be decoded .*was it answered by a worker of this deployment\?/);
  }
  const events = await breaker.events(accountId);
  expect(events.some((e) => e.type === 'SystemShutdown')).toBe(false);
  // VenueShutdownFailed once per venue's streak of refusals (not at every sweep), each the rogue's.
  const failures = events.filter((e) => e.type === 'VenueShutdownFailed') as { venue: string; error: string }[];
  expect(new Set(failures.map((e) => e.venue))).toEqual(new Set([SPOT, PERP]));
  for (const f of failures) expect(f.error).toMatch(/^UndecodableResult: /);
  // The rogue did answer (these refusals are its answers), without being able to read which venue it was asked about.
  expect(rogueCalls.length).toBeGreaterThanOrEqual(2);
  expect(new Set(rogueCalls.map((c) => `${c.activity} ${c.argType}`))).toEqual(new Set(['cancelAllOpenOrders object']));
  // The truth: every order is still open.
  expect(h.paper.exchange.snapshot().openOrders).toEqual(seeded);

  // A genuine worker (every activity, with the key) joins; the rogue is still there. The next pass it answers cancels
  // for real, and the guard takes that answer.
  run(
    await Worker.create({
      connection: await connect(),
      namespace: 'default',
      taskQueue,
      dataConverter: { payloadConverterPath: payloadConverterPath(), payloadCodecs: payloadCodecsFromEnv(KEYS) },
      activities: genuineActivities(),
    }),
  );
  await eventually(() => Promise.resolve(h.paper.exchange.snapshot().openOrders.total), (open) => open === 0, 60_000);
  const recorded = await eventually(state, (s) => s.shutdown[SPOT]!.cancelled === 3 && s.shutdown[PERP]!.cancelled === 4, 60_000);
  expect(recorded.state).toBe('Triggered');

  // Once the rogue is gone, every pass is answered genuinely, and the shutdown is confirmed.
  await stop(rogue);
  const flat = await eventually(state, (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat', 90_000);
  expect(Object.values(flat.shutdown).map((p) => [p.status, p.openOrders])).toEqual([
    ['flat', 0],
    ['flat', 0],
  ]);
  expect((await breaker.events(accountId)).some((e) => e.type === 'SystemShutdown')).toBe(true);
  expect(h.paper.exchange.snapshot().openOrders.total).toBe(0);
  await breaker.handle(accountId).terminate('test done');
}, 300_000);
