/**
 * Section B: recovery with a standby worker. Two guard worker processes (src/worker.ts) poll the same task queue; a
 * guard trips with many open orders on the paper exchange and a cancel pass slowed down by a `delay` fault, and the
 * worker running that pass is SIGKILLed mid-way. Figure: kill → paper exchange flat (0 open orders), over
 * BENCH_RECOVERY_RUNS runs (default 10); also kill → the pass's retry started on the standby (server's clock), and
 * kill → the guard's own state shows the shutdown finished.
 *
 * Which worker to kill: the one the server names as the running attempt's `lastWorkerIdentity` in the workflow's
 * describe() (pendingActivities): that is the process holding the pass, whatever held the workflow task. A worker's
 * identity is the SDK default `<pid>@<hostname>`, so it maps to a WorkerProcess. The sticky queue is not a good
 * handle: describe() does not name it, and the worker caching the workflow need not be the one that picked up the
 * activity (activity tasks go through the shared queue). Killing the workflow's sticky worker matters for the guard
 * *recording* the result (see "kill → guard done"), not for the venue getting flat.
 *
 * What bounds kill → flat (first short runs on a shared machine: p50 3.9 s, p99 4.7 s; retry started p50 3.5 s after
 * the kill; the server's last heartbeat p50 1.06 s old at the kill): nothing on the standby's side. The SDK sends
 * heartbeats at most every 0.8 × heartbeatTimeout (2.4 s for the guard's 3 s), so at a kill the last one the server
 * has is 0–2.4 s old and the timeout fires 0.6–3 s later; then the retry policy's initialInterval (500 ms), then
 * 1–1.5 s that the server adds (last heartbeat → retry started is that sum: ~4.5–5 s measured, where 3.5 s is the
 * policy's; the dev server's timer queue fires the heartbeat-timeout and retry timers late under load),
 * then the rest of the pass (~0.3 s: the re-list and the symbols left). The sticky queue timeout plays no part in
 * getting flat (activity retries are dispatched by the server, without a workflow task); it can only delay the guard
 * *recording* the result, and kill → guard done was within ~0.4 s of kill → flat in those runs.
 *
 * Knobs: BENCH_RECOVERY_RUNS, BENCH_RECOVERY_ORDERS (spot orders over 20 symbols, default 100),
 * BENCH_RECOVERY_DELAY_MS (each cancel-all request held this long by the paper exchange, default 1,000: 20 symbols
 * at 8 in flight make a pass of three waves of requests, ~3 s, and the kill lands after the first wave).
 */
import { randomBytes } from 'node:crypto';
import { BreakerClient } from '../src/client';
import { WorkerProcess } from '../tooling/crash/worker-process';
import { spreadOrders } from '../tooling/paper/exchange';
import { SPOT_VENUE } from '../tooling/seed-scenario';
import { BenchContext, Results, Say, msSince, sleep } from './context';
import { percentile, round } from './stats';

const RUNS = Number(process.env.BENCH_RECOVERY_RUNS ?? 10);
const ORDERS = Number(process.env.BENCH_RECOVERY_ORDERS ?? 100);
const DELAY_MS = Number(process.env.BENCH_RECOVERY_DELAY_MS ?? 1_000);
const CANCEL_ENDPOINT = 'DELETE /api/v3/openOrders';

const STARTED = 2; // PENDING_ACTIVITY_STATE_STARTED
const tsMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => (t ? Number(t.seconds) * 1_000 + (t.nanos ?? 0) / 1e6 : NaN);

export async function recoveryWithStandby(ctx: BenchContext, results: Results, say: Say): Promise<void> {
  const { paper } = ctx;
  const taskQueue = `bench-recovery-${randomBytes(3).toString('hex')}`;
  const start = () => WorkerProcess.start({ address: ctx.server.address, taskQueue, workflowBundle: ctx.workflowBundle, paperUrl: paper.url, credentials: ctx.credentials, timeoutMs: 10_000 });
  const workers = [await start(), await start()];
  const breaker = new BreakerClient(ctx.client, taskQueue);
  const orders = spreadOrders(ORDERS * 3).filter((o) => o.market === 'spot').slice(0, ORDERS);
  const toFlat: number[] = [];
  const toRetry: number[] = [];
  const toGuardDone: number[] = [];
  const heartbeatAge: number[] = [];
  /** Last heartbeat the server had → retry started: heartbeatTimeout + the retry's initialInterval + the server's own lag. */
  const beatToRetry: number[] = [];
  let skipped = 0;
  try {
    for (let run = 0; run < RUNS; run++) {
      paper.faults.clear();
      paper.exchange.seed({ orders });
      const opened = paper.exchange.snapshot().openOrders.total;
      paper.faults.add({ endpoint: CANCEL_ENDPOINT, kind: 'delay', delayMs: DELAY_MS });
      // One venue (spot) so that there is exactly one cancel pass, and its worker is the one to kill; capital = the
      // paper spot balance, so the start-up read alone does not trip it.
      const accountId = `bench-recovery-${run}-${randomBytes(2).toString('hex')}`;
      const spotUsdt = paper.exchange.snapshot().spotBalances.USDT ?? '6000';
      // No watcher: the one cancel pass in flight is the thing killed and measured (a watcher would also follow the
      // order stream and could start passes of its own, and itself moves to the standby when its worker dies).
      await breaker.startGuard({ accountId, initialCapital: spotUsdt, venues: [SPOT_VENUE], valuationIntervalSeconds: 3600, watch: { enabled: false } });
      await breaker.report(accountId, { venue: SPOT_VENUE, seq: 1, balances: { USDT: spotUsdt } });
      await breaker.report(accountId, { venue: SPOT_VENUE, seq: 2, balances: { USDT: '1' } }); // trips
      const handle = breaker.handle(accountId);
      // Find the worker running the pass, then wait until the pass is mid-way (the first wave of cancels landed).
      let victim: WorkerProcess | undefined;
      let activityId: string | undefined;
      while (!victim && paper.exchange.snapshot().openOrders.total > 0) {
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        const pass = pending.find((a) => a.activityType?.name === 'cancelAllOpenOrders' && a.state === STARTED && a.lastWorkerIdentity);
        victim = workers.find((w) => w.identity === pass?.lastWorkerIdentity);
        activityId = pass?.activityId ?? undefined;
        if (!victim) await sleep(20);
      }
      while (victim && paper.exchange.snapshot().openOrders.total === opened) await sleep(2);
      if (!victim || paper.exchange.snapshot().openOrders.total === 0) {
        skipped += 1; // the pass ended before it could be caught mid-way (machine too slow or too fast)
        paper.faults.clear();
        await handle.terminate('bench');
        continue;
      }
      // How old the server's last heartbeat of the pass is at the kill: the heartbeat timeout runs from there.
      const beat = (await handle.describe()).raw.pendingActivities?.find((a) => a.activityId === activityId)?.lastHeartbeatTime;
      const killedAt = Date.now();
      if (beat) heartbeatAge.push(killedAt - tsMs(beat));
      const beatAt = beat ? tsMs(beat) : NaN;
      const t = process.hrtime.bigint();
      await victim.kill();
      // The delay was there to catch the pass mid-way; the retry runs against a normal venue. Requests the dead
      // worker had already sent still complete at the paper exchange after their delay, as they would at a venue.
      paper.faults.clear();
      const flat = (async () => {
        while (paper.exchange.snapshot().openOrders.total > 0) await sleep(1);
        toFlat.push(msSince(t));
      })();
      const retry = (async () => {
        // Server clock and ours are the same machine's.
        for (const until = Date.now() + 30_000; Date.now() < until; await sleep(50)) {
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          const pass = pending.find((a) => a.activityId === activityId);
          if (!pass) return; // done before we saw the retry start: no sample
          if ((pass.attempt ?? 1) > 1 && pass.state === STARTED) {
            toRetry.push(tsMs(pass.lastStartedTime) - killedAt);
            if (!Number.isNaN(beatAt)) beatToRetry.push(tsMs(pass.lastStartedTime) - beatAt);
            return;
          }
        }
      })();
      const guardDone = (async () => {
        for (const until = Date.now() + 60_000; Date.now() < until; await sleep(50)) {
          const view = await breaker.state(accountId).catch(() => undefined);
          if (view && view.state === 'Triggered' && !view.shutdownInProgress) return void toGuardDone.push(msSince(t));
        }
      })();
      await Promise.all([flat, retry, guardDone]);
      await handle.terminate('bench');
      // The killed worker comes back (not timed) so that every run has a standby.
      workers[workers.indexOf(victim)] = await start();
    }
  } finally {
    paper.faults.clear();
    await Promise.all(workers.map((w) => w.kill()));
  }
  const fig = (xs: number[], p: number) => round(percentile(xs, p));
  Object.assign(results, {
    recovery_runs: toFlat.length,
    recovery_skipped_runs: skipped,
    recovery_kill_to_flat_p50_ms: fig(toFlat, 50),
    recovery_kill_to_flat_p99_ms: fig(toFlat, 99),
    recovery_kill_to_flat_max_ms: round(Math.max(...toFlat)),
    recovery_kill_to_retry_started_p50_ms: fig(toRetry, 50),
    recovery_kill_to_retry_started_p99_ms: fig(toRetry, 99),
    recovery_last_heartbeat_age_at_kill_p50_ms: fig(heartbeatAge, 50),
    recovery_last_heartbeat_to_retry_started_p50_ms: fig(beatToRetry, 50),
    recovery_last_heartbeat_to_retry_started_max_ms: round(Math.max(...beatToRetry)),
    recovery_kill_to_guard_done_p50_ms: fig(toGuardDone, 50),
    recovery_kill_to_guard_done_p99_ms: fig(toGuardDone, 99),
  });
  say(
    `B. recovery, ${ORDERS} spot orders / 20 symbols, cancel requests delayed ${DELAY_MS} ms until the kill, ${toFlat.length} runs (${skipped} skipped): ` +
      `kill → flat p50 ${fig(toFlat, 50)} ms, p99 ${fig(toFlat, 99)} ms (max ${round(Math.max(...toFlat))}); ` +
      `kill → retry started on the standby p50 ${fig(toRetry, 50)} ms, p99 ${fig(toRetry, 99)} ms (${toRetry.length} seen); ` +
      `the server's last heartbeat of the pass was p50 ${fig(heartbeatAge, 50)} ms old at the kill, and the retry started p50 ${fig(beatToRetry, 50)} ms (max ${round(Math.max(...beatToRetry))}) after it; ` +
      `kill → guard shows the shutdown done p50 ${fig(toGuardDone, 50)} ms, p99 ${fig(toGuardDone, 99)} ms`,
  );
}
