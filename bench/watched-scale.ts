/**
 * Watched scale: N guards (BENCH_WATCHED_GUARDS, default 1,000), each watching its own 2-venue account (Binance spot
 * and USDⓈ-M) on one guard worker process, with the watcher's streams as the only input while BTC moves every second.
 *
 * Set-up: a paper exchange of its own (one account per API key, shared prices, limits lifted), each account
 * spot { USDT 5000, BTC 0.1 } and futures { USDT 5000 } (capital 14,000 USDT at BTC 40,000); one worker process
 * (src/worker.ts) with 2·N venues, each bound to its account and reading its key from the environment;
 * guards with the watcher's default snapshot interval (60 s) and valuationIntervalSeconds 3600, so that a trip can
 * only come from the watcher.
 *
 * Figures (units in the keys):
 * - start-up: worker ready (building 2·N ccxt clients), then fleet start (first workflow start → ≥ 95 % of a sample
 *   of guards have heard their watcher), and the venue request weight the start-up spent, with what it would take
 *   at Binance's per-IP limits (spot 6,000, USDⓈ-M 2,400 weight per minute, 80 % for routine reads);
 * - steady state over a window (BENCH_WATCHED_WINDOW_SECONDS, default 60) of ±0.2 % moves every second: history
 *   events per guard per hour (describe().historyLength of ~50 guards before and after, scaled), worker CPU and RSS,
 *   Temporal server CPU, and the CPU of this process (which serves the paper exchange);
 * - trip latency: ~20 random accounts (BENCH_WATCHED_INJECTIONS), one every 2 s, get spot USDT 5000 → 4000 (a 7.1 %
 *   loss) through the control API, which pushes outboundAccountPosition on the account's user stream; latency is
 *   the injection's wall-clock time → the `at` of the guard's Triggered state (the workflow clock, same host): no
 *   polling resolution in it;
 * - the observations a sample of guards received (counters.observations).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { guardWorkflowId } from '../src/api/contract';
import { parseAccountConfig } from '../src/domain/config';
import type { GuardStateView } from '../src/domain/view';
import type { VenueSpec } from '../src/exchanges/venues';
import { ChildProcess, spawn } from 'node:child_process';
import { startPaperServer } from '../tooling/paper/server';
import type { PaperApi } from '../tooling/paper/rate-limits';
import { BenchContext, Results, Say, eachLimited, sleep } from './context';
import { percentile, processUsage, round } from './stats';

const GUARDS = Number(process.env.BENCH_WATCHED_GUARDS ?? 1_000);
const WINDOW_SECONDS = Number(process.env.BENCH_WATCHED_WINDOW_SECONDS ?? 60);
const INJECTIONS = Number(process.env.BENCH_WATCHED_INJECTIONS ?? 20);
/** Guards whose history is counted (and whose observations are read). */
const HISTORY_SAMPLE = 50;
/** Guards queried while waiting for the fleet to start. */
const READY_SAMPLE = 100;
const START_PRICE = 40_000;
const CAPITAL = '14000'; // 5000 USDT + 0.1 BTC × 40,000 on spot, 5000 USDT on futures
/** Binance's per-IP REQUEST_WEIGHT per minute, and the share the request budget lets routine reads use. */
const BINANCE_LIMITS: Record<PaperApi, number> = { spot: 6_000, futures: 2_400 };
const ROUTINE_SHARE = 0.8;
const UNLIMITED = 1_000_000_000;

type View = Pick<GuardStateView, 'state' | 'breaker' | 'watcher' | 'counters'>;

/** How long one `state` query may take: a saturated worker answers late or not at all, and the section must end. */
const QUERY_TIMEOUT_MS = 5_000;
/** How long the fleet may take to start before the window is measured anyway (what was not ready is reported). */
const READY_SECONDS = Number(process.env.BENCH_WATCHED_READY_SECONDS ?? 90);

/** `promise`'s value, or undefined when it fails or takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise.catch(() => undefined), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * Starts the production worker (src/worker.ts) as tooling/crash/worker-process.ts does (node with tsx as a loader,
 * so that SIGKILL reaches it), but waits longer than its 60 s for "worker ready": building 2,000 ccxt clients alone
 * takes ~35 s of CPU, and on a busy machine the whole start came within 0.2 s of that limit.
 */
async function startWorker(env: Record<string, string>, readyTimeoutMs: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    cwd: path.resolve(__dirname, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker not ready within ${readyTimeoutMs / 1000} s:\n${output}`)), readyTimeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('worker ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => void (output += chunk.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`worker exited with ${code} while starting:\n${output}`));
      });
    });
  } catch (err) {
    await killWorker(child);
    throw err;
  }
  child.removeAllListeners('exit');
  // Keep draining its output (it prints every venue at start), so that it never blocks on a full pipe.
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}

async function killWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** When the guard's history set its BreakerState search attribute to Triggered (ms since epoch), if it did. */
async function triggeredEventTime(handle: WorkflowHandle): Promise<number | undefined> {
  const history = await within(handle.fetchHistory(), QUERY_TIMEOUT_MS);
  for (const event of history?.events ?? []) {
    const field = event.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.BreakerState;
    if (!field?.data || !Buffer.from(field.data).toString().includes('Triggered') || !event.eventTime) continue;
    return Number(event.eventTime.seconds ?? 0) * 1_000 + (event.eventTime.nanos ?? 0) / 1e6;
  }
  return undefined;
}

/** Shuffled indices (Fisher–Yates), for picking random accounts. */
function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export async function watchedScale(ctx: BenchContext, results: Results, say: Say): Promise<void> {
  const n = GUARDS;
  const tag = randomBytes(3).toString('hex');
  const accounts = Array.from({ length: n }, (_, i) => ({
    id: `w${i}-${tag}`,
    apiKey: randomBytes(16).toString('hex'),
    secret: randomBytes(32).toString('hex'),
  }));
  const paper = await startPaperServer({ credentials: accounts.map(({ apiKey, secret }) => ({ apiKey, secret })), separateAccounts: true });
  paper.rateLimits.configure({ spotWeightPerMinute: UNLIMITED, futuresWeightPerMinute: UNLIMITED });
  // Every venue request's weight as the paper (by Binance's table) counts it, whatever the limits: what the start-up
  // spends, to set against Binance's per-IP limits.
  const weight: Record<PaperApi, number> = { spot: 0, futures: 0 };
  const admit = paper.rateLimits.admit.bind(paper.rateLimits);
  paper.rateLimits.admit = (api, w, now) => {
    weight[api] += w;
    return admit(api, w, now);
  };
  for (const a of accounts) paper.accounts.get(a.apiKey)!.seed({ spotBalances: { USDT: '5000', BTC: '0.1' }, futuresBalances: { USDT: '5000' } });

  // Venues: bound to their account, keys by env var name only (the values go to the worker's environment, as in
  // production); weightPerMinute matches the lifted limits of this paper exchange.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'breaker-watched-'));
  const venuesFile = path.join(dir, 'venues.json');
  const venue = (i: number, exchange: VenueSpec['exchange']) => ({
    id: `${exchange === 'binance' ? 's' : 'p'}-${i}`,
    exchange,
    routeTo: paper.url,
    account: accounts[i]!.id,
    apiKeyEnv: `K_${i}`,
    secretEnv: `S_${i}`,
    timeoutMs: 10_000,
    rateLimitMs: 1,
    weightPerMinute: UNLIMITED,
  });
  writeFileSync(venuesFile, JSON.stringify(accounts.flatMap((_, i) => [venue(i, 'binance'), venue(i, 'binanceusdm')])), { mode: 0o600 });
  // A file, not BREAKER_VENUES: 2,000 venues are ~300 KB of JSON, beyond Linux's 128 KB for one environment string.
  // The worker's activity slots (one per running watcher) are its default, BREAKER_MAX_ACTIVITIES 10,000.
  const env: Record<string, string> = { BREAKER_VENUES_FILE: venuesFile };
  accounts.forEach((a, i) => Object.assign(env, { [`K_${i}`]: a.apiKey, [`S_${i}`]: a.secret }));

  // Prices move every second by ±0.2 %, kept within ±1 % of the start (no account comes near its 3 % warning).
  let price = START_PRICE;
  let moves = 0;
  let moveFailures = 0;
  const mover = setInterval(() => {
    const step = price * 0.002 * (Math.random() < 0.5 ? -1 : 1);
    price = Math.abs(price + step - START_PRICE) > START_PRICE * 0.01 ? price - step : price + step;
    fetch(`${paper.url}/control/prices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ BTC: price.toFixed(2) }) }).then(
      (r) => void (r.ok ? (moves += 1) : (moveFailures += 1)),
      () => void (moveFailures += 1),
    );
  }, 1_000);

  const taskQueue = `bench-watched-${n}-${tag}`;
  const handle = (i: number): WorkflowHandle => ctx.client.workflow.getHandle(guardWorkflowId(accounts[i]!.id));
  const view = (i: number) => within(handle(i).query<View>('state'), QUERY_TIMEOUT_MS);
  const started: number[] = [];
  let worker: ChildProcess | undefined;
  const benchCpuAtStart = process.cpuUsage();
  try {
    const workerStart = Date.now();
    worker = await startWorker({ ...env, TEMPORAL_ADDRESS: ctx.server.address, BREAKER_TASK_QUEUE: taskQueue, BREAKER_WORKFLOW_BUNDLE: ctx.workflowBundle }, 60_000 + 100 * n);
    const workerReadySeconds = (Date.now() - workerStart) / 1_000;
    const workerPid = worker.pid!;

    // Plain workflow starts (as section A), 50 at a time.
    const fleetStart = Date.now();
    await eachLimited(accounts, 50, async (a, i) => {
      const parsed = parseAccountConfig({ accountId: a.id, initialCapital: CAPITAL, venues: [`s-${i}`, `p-${i}`], valuationIntervalSeconds: 3600, watch: { snapshotIntervalSeconds: 60 } });
      if (!parsed.ok) throw new Error(parsed.error);
      await ctx.client.workflow.start('accountGuard', { workflowId: guardWorkflowId(a.id), taskQueue, args: [{ config: parsed.value }] });
      started.push(i);
    });
    const startsSeconds = (Date.now() - fleetStart) / 1_000;
    // Ready: the guard has heard its watcher (its start-up reads and streams are up). A sample is queried, not all.
    const readySample = shuffled(n).slice(0, Math.min(n, READY_SAMPLE));
    const readyBy = Date.now() + READY_SECONDS * 1_000;
    let spoke = 0;
    for (;;) {
      spoke = 0;
      await eachLimited(readySample, 25, async (i) => void ((await view(i))?.watcher?.spoke && (spoke += 1)));
      if (spoke >= readySample.length * 0.95 || Date.now() > readyBy) break;
      await sleep(2_000);
    }
    const fleetSeconds = (Date.now() - fleetStart) / 1_000;
    const startupWeight = { ...weight };
    const spotMinutes = startupWeight.spot / (BINANCE_LIMITS.spot * ROUTINE_SHARE);
    const futuresMinutes = startupWeight.futures / (BINANCE_LIMITS.futures * ROUTINE_SHARE);
    const exchangeInfos = (paper.requests.get('GET /api/v3/exchangeInfo') ?? 0) + (paper.requests.get('GET /fapi/v1/exchangeInfo') ?? 0);
    Object.assign(results, {
      watched_guards: n,
      watched_worker_ready_seconds: round(workerReadySeconds, 1),
      watched_startup_seconds: round(fleetSeconds, 1),
      watched_startup_spoke_sample_percent: round((spoke / readySample.length) * 100, 0),
      watched_startup_weight_spot: startupWeight.spot,
      watched_startup_weight_usdm: startupWeight.futures,
      watched_startup_exchange_info_requests: exchangeInfos,
      watched_startup_minutes_at_binance_ip_limits: round(Math.max(spotMinutes, futuresMinutes), 1),
    });
    say(
      `W. watched scale: ${n} guards × 2 venues on one worker: worker ready in ${round(workerReadySeconds, 1)} s (${2 * n} ccxt clients), ` +
        `${n} starts in ${round(startsSeconds, 1)} s, ${spoke}/${readySample.length} sampled guards heard their watcher ${round(fleetSeconds, 1)} s after the first start; ` +
        `start-up weight spot ${startupWeight.spot}, USDⓈ-M ${startupWeight.futures} (${exchangeInfos} exchangeInfo loads): at Binance's per-IP limits ` +
        `(80 % of 6,000 / 2,400 per minute for routine reads) that is ≥ ${round(spotMinutes, 1)} min spot, ≥ ${round(futuresMinutes, 1)} min USDⓈ-M from one IP`,
    );

    // Steady window: history, CPU, memory. The sample excludes the accounts that will get a breach.
    const order = shuffled(n);
    const injected = order.slice(0, Math.min(INJECTIONS, n));
    const sample = order.slice(injected.length, injected.length + Math.min(HISTORY_SAMPLE, n - injected.length));
    const history = async () => {
      let events = 0;
      await eachLimited(sample, 10, async (i) => {
        const { historyLength } = await handle(i).describe(); // read first: `events += await` would add to a stale sum
        events += historyLength;
      });
      return events;
    };
    /** Per sampled guard that answered its query in time: observations received, and its watcher's feeds. */
    let feedsPolling = 0;
    let fallbacks = 0;
    const observations = async () => {
      const seen = new Map<number, number>();
      feedsPolling = 0;
      fallbacks = 0;
      // 25 at a time: against a saturated worker each query waits its whole timeout, and the section must end.
      await eachLimited(sample, 25, async (i) => {
        const v = await view(i);
        if (!v) return;
        seen.set(i, v.counters.observations);
        for (const feed of Object.values(v.watcher?.feeds ?? {})) {
          if (feed.mode === 'polling') feedsPolling += 1;
          fallbacks += feed.fallbacks;
        }
      });
      return seen;
    };
    const historyBefore = await history();
    const observationsBefore = await observations();
    const serverBefore = processUsage(ctx.server.process.pid!);
    const workerBefore = processUsage(workerPid);
    const benchBefore = process.cpuUsage();
    const weightBefore = { ...weight };
    const windowStart = Date.now();
    await sleep(WINDOW_SECONDS * 1_000);
    const elapsed = (Date.now() - windowStart) / 1_000;
    const serverAfter = processUsage(ctx.server.process.pid!);
    const workerAfter = processUsage(workerPid);
    const bench = process.cpuUsage(benchBefore);
    // The watchers' REST reconciliation (every snapshot interval) is what steady state spends against the IP limit.
    const steadyPerMinute = { spot: ((weight.spot - weightBefore.spot) / elapsed) * 60, futures: ((weight.futures - weightBefore.futures) / elapsed) * 60 };
    const accountsPerIp = Math.floor(
      Math.min(...(['spot', 'futures'] as const).map((api) => (BINANCE_LIMITS[api] * ROUTINE_SHARE) / (steadyPerMinute[api] / n))),
    );
    const historyAfter = await history();
    const observationsAfter = await observations();
    const eventsPerGuardHour = ((historyAfter - historyBefore) / sample.length) * (3_600 / elapsed);
    const answeredBoth = [...observationsAfter.keys()].filter((i) => observationsBefore.has(i));
    const gained = answeredBoth.reduce((sum, i) => sum + observationsAfter.get(i)! - observationsBefore.get(i)!, 0);
    const observationsPerGuardHour = answeredBoth.length > 0 ? (gained / answeredBoth.length) * (3_600 / elapsed) : NaN;
    const observationsTotal = [...observationsAfter.values()].reduce((a, b) => a + b, 0);
    const workerCpu = ((workerAfter.cpuSeconds - workerBefore.cpuSeconds) / elapsed) * 100;
    const serverCpu = ((serverAfter.cpuSeconds - serverBefore.cpuSeconds) / elapsed) * 100;
    const benchCpu = ((bench.user + bench.system) / 1e6 / elapsed) * 100;
    Object.assign(results, {
      watched_window_seconds: round(elapsed, 0),
      watched_history_events_per_guard_hour: round(eventsPerGuardHour, 0),
      watched_observations_per_guard_hour: round(observationsPerGuardHour, 0),
      watched_observations_sample_total: observationsTotal,
      watched_observations_sample_answered: observationsAfter.size,
      watched_sample_feeds_polling: feedsPolling,
      watched_sample_feed_fallbacks: fallbacks,
      watched_worker_cpu_percent: round(workerCpu, 0),
      watched_worker_rss_mb: round(workerAfter.rssMb, 0),
      watched_server_cpu_percent: round(serverCpu, 0),
      watched_paper_process_cpu_percent: round(benchCpu, 0),
      watched_steady_weight_per_minute_spot: round(steadyPerMinute.spot, 0),
      watched_steady_weight_per_minute_usdm: round(steadyPerMinute.futures, 0),
      watched_steady_accounts_per_ip_at_binance_limits: accountsPerIp,
    });
    say(
      `W. steady ${round(elapsed, 0)} s window (BTC ±0.2 % every second, ${moves} moves so far, ${moveFailures} failed): ` +
        `${round(eventsPerGuardHour, 0)} history events per guard per hour and ${round(observationsPerGuardHour, 0)} observations per guard per hour ` +
        `(${sample.length} guards sampled for history; ${observationsAfter.size} answered their state query, holding ${observationsTotal} observations since start; ${feedsPolling} of their feeds polling, ${fallbacks} fallbacks to polling); ` +
        `worker ${round(workerCpu, 0)} % CPU, ${round(workerAfter.rssMb, 0)} MB RSS; server ${round(serverCpu, 0)} % CPU; bench process (paper exchange) ${round(benchCpu, 0)} % CPU; ` +
        `venue weight ${round(steadyPerMinute.spot, 0)} spot / ${round(steadyPerMinute.futures, 0)} USDⓈ-M per minute (the REST reconciliation), ` +
        `so one IP at Binance's limits carries ≤ ${accountsPerIp} such accounts`,
    );

    // Breaches: one every 2 s into a random account; each followed until Triggered (its `at` is the figure).
    const latencies: number[] = [];
    let missed = 0;
    let byLoss = 0;
    let fromHistory = 0;
    /**
     * Follows a breached guard until Triggered. The server's copy of its BreakerState search attribute (describe(),
     * no worker involved) says when; the trip time is the Triggered state's `at` from the `state` query, or, when a
     * saturated worker does not answer queries, the time of the history event that set BreakerState to Triggered
     * (the end of the same workflow task: later than `at` by that task's processing).
     */
    const follow = async (i: number, injectedAt: number) => {
      const giveUp = injectedAt + 60_000;
      while (Date.now() < giveUp) {
        const described = await within(handle(i).describe(), QUERY_TIMEOUT_MS);
        if (described?.searchAttributes?.BreakerState?.[0] === 'Triggered') {
          const v = await view(i);
          if (v?.breaker.name === 'Triggered') {
            latencies.push(Date.parse(v.breaker.at) - injectedAt);
            if (v.breaker.cause === 'loss') byLoss += 1;
            return;
          }
          const at = await triggeredEventTime(handle(i));
          if (at !== undefined) {
            latencies.push(at - injectedAt);
            fromHistory += 1;
            return;
          }
        }
        await sleep(250);
      }
      missed += 1;
    };
    const follows: Promise<void>[] = [];
    for (const i of injected) {
      const injectedAt = Date.now();
      const r = await fetch(`${paper.url}/control/seed`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ account: accounts[i]!.apiKey, spotBalances: { USDT: '4000' } }),
      });
      if (!r.ok) throw new Error(`seeding a breach failed: ${r.status}`);
      follows.push(follow(i, injectedAt));
      await sleep(2_000);
    }
    await Promise.all(follows);
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    Object.assign(results, {
      watched_trip_p50_ms: round(p50, 0),
      watched_trip_p99_ms: round(p99, 0),
      watched_trip_max_ms: round(Math.max(...latencies), 0),
      watched_trips: latencies.length,
      watched_trips_missed: missed,
      watched_trips_timed_from_history: fromHistory,
    });
    say(
      `W. ${injected.length} breaches (spot USDT 5000 → 4000, a 7.1 % loss, one every 2 s): injection → Triggered p50 ${round(p50, 0)} ms, p99 ${round(p99, 0)} ms ` +
        `(max ${round(Math.max(...latencies), 0)} ms; ${latencies.length} tripped, ${byLoss} by loss per the state query, ${fromHistory} timed from history, ${missed} not Triggered within 60 s)`,
    );
    say(
      `W. summary: ${n} watched guards, trip p50 ${round(p50, 0)} ms / p99 ${round(p99, 0)} ms, ${round(eventsPerGuardHour, 0)} history events/guard/h, ` +
        `worker ${round(workerCpu, 0)} % CPU / ${round(workerAfter.rssMb, 0)} MB, server ${round(serverCpu, 0)} % CPU, fleet up in ${round(fleetSeconds, 1)} s (+ ${round(workerReadySeconds, 1)} s worker start)`,
    );
  } finally {
    clearInterval(mover);
    const t = Date.now();
    await eachLimited(started, 50, async (i) => void (await handle(i).terminate('bench').catch(() => undefined)));
    if (worker) await killWorker(worker);
    await paper.close();
    rmSync(dir, { recursive: true, force: true });
    const cpu = process.cpuUsage(benchCpuAtStart);
    say(`W. cleanup: ${started.length} guards terminated, worker and paper exchange stopped in ${round((Date.now() - t) / 1_000, 1)} s (bench process ${round((cpu.user + cpu.system) / 1e6, 0)} CPU s in this section)`);
  }
}
