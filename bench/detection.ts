/**
 * Detection latency: a price move on the paper exchange, with no bot report, until the guard is Triggered.
 *
 * Three ways of seeing it, each on a guard worker in its own process:
 * - streams: the watcher on the paper exchange's WebSocket streams (trades are pushed at once);
 * - 1 s polling: the same watcher with every stream silenced (the paper's `silence` fault), so that it falls back to
 *   REST polling every second, as it does whenever a stream drops;
 * - the 60 s timer: no watcher, the guard's own valuation every `valuationIntervalSeconds` (what a guard without a
 *   watcher, or before it, sees). Guards are started at staggered times, so their timers fall at every phase.
 *
 * Latency is the guard's own `breaker.at` (the workflow clock, this machine's) minus the wall time just before the
 * price move: no polling resolution in the figure.
 */
import { randomBytes } from 'node:crypto';
import type { GuardStateView } from '../src/api/contract';
import { BreakerClient } from '../src/client';
import { WorkerProcess } from '../tooling/crash/worker-process';
import { PERP_VENUE, SPOT_VENUE } from '../tooling/seed-scenario';
import { BenchContext, Results, Say, sleep } from './context';
import { percentile, round } from './stats';

const ROUNDS = Number(process.env.BENCH_DETECTION_ROUNDS ?? 10);
const GUARDS_PER_ROUND = 3;
const TIMER_GUARDS = Number(process.env.BENCH_DETECTION_TIMER_GUARDS ?? 20);

type Mode = 'streams' | 'polling' | 'timer';

export async function detectionLatency(ctx: BenchContext, results: Results, say: Say): Promise<void> {
  const taskQueue = `bench-detect-${randomBytes(3).toString('hex')}`;
  const worker = await WorkerProcess.start({ address: ctx.server.address, taskQueue, workflowBundle: ctx.workflowBundle, paperUrl: ctx.paper.url, credentials: ctx.credentials, timeoutMs: 10_000 });
  const breaker = new BreakerClient(ctx.client, taskQueue);
  const control = async (path: string, body?: unknown, method = body === undefined ? 'DELETE' : 'POST') => {
    const res = await fetch(`${ctx.paper.url}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  };
  const seed = () => ctx.paper.exchange.seed({ prices: { BTC: '50000' }, spotBalances: { USDT: '5000', BTC: '1' }, futuresBalances: { USDT: '5000' } });
  const waitAll = async (ids: string[], done: (s: GuardStateView) => boolean, what: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    const states = new Map<string, GuardStateView>();
    while (states.size < ids.length) {
      if (Date.now() > deadline) throw new Error(`detection bench: ${ids.length - states.size} guard(s) never ${what}`);
      for (const id of ids) {
        if (states.has(id)) continue;
        const s = await breaker.state(id);
        if (done(s)) states.set(id, s);
      }
      await sleep(100);
    }
    return ids.map((id) => states.get(id)!);
  };
  const ready: Record<Mode, (s: GuardStateView) => boolean> = {
    streams: (s) => s.lossPct === '0.00' && s.watcher?.spoke === true && [SPOT_VENUE, PERP_VENUE].every((v) => s.watcher!.feeds[v]?.mode === 'streaming'),
    polling: (s) => s.lossPct === '0.00' && s.watcher?.spoke === true && [SPOT_VENUE, PERP_VENUE].every((v) => s.watcher!.feeds[v]?.mode === 'polling'),
    timer: (s) => s.lossPct === '0.00',
  };
  const configOf = (mode: Mode) =>
    mode === 'timer'
      ? { valuationIntervalSeconds: 60, watch: { enabled: false } }
      : { valuationIntervalSeconds: 3600, watch: mode === 'polling' ? { pollIntervalSeconds: 1, streamSilenceSeconds: 1 } : {} };

  /** One price move seen by `guards` guards of one mode; returns each guard's latency in ms. */
  const measure = async (mode: Mode, guards: number, staggerMs = 0): Promise<number[]> => {
    seed();
    const ids: string[] = [];
    for (let i = 0; i < guards; i++) {
      const id = `bench-detect-${mode}-${randomBytes(3).toString('hex')}`;
      await breaker.startGuard({ accountId: id, initialCapital: '60000', venues: [SPOT_VENUE, PERP_VENUE], ...configOf(mode) });
      ids.push(id);
      if (staggerMs > 0) await sleep(staggerMs);
    }
    await waitAll(ids, ready[mode], 'became ready', 60_000);
    const movedAt = Date.now();
    // BTC 50,000 → 46,000: 4,000 of 60,000, a 6.67 % loss.
    await control('/control/prices', { BTC: '46000' });
    const tripped = await waitAll(ids, (s) => s.breaker.name === 'Triggered', 'tripped', 120_000);
    await Promise.all(ids.map((id) => breaker.handle(id).terminate('bench').catch(() => undefined)));
    return tripped.map((s) => Date.parse((s.breaker as { at: string }).at) - movedAt);
  };

  const figures: Partial<Record<Mode, number[]>> = {};
  try {
    figures.streams = [];
    for (let r = 0; r < ROUNDS; r++) figures.streams.push(...(await measure('streams', GUARDS_PER_ROUND)));
    await control('/control/streams/faults', { action: 'silence', streams: 'all' });
    figures.polling = [];
    for (let r = 0; r < ROUNDS; r++) figures.polling.push(...(await measure('polling', GUARDS_PER_ROUND)));
    await control('/control/streams/faults');
    // Started 60 s / TIMER_GUARDS apart, their timers cover the whole interval.
    figures.timer = await measure('timer', TIMER_GUARDS, 60_000 / TIMER_GUARDS);
  } finally {
    await control('/control/streams/faults').catch(() => undefined);
    await worker.kill();
  }
  const line: string[] = [];
  for (const mode of ['streams', 'polling', 'timer'] as const) {
    const samples = figures[mode] ?? [];
    results[`detection_${mode}_samples`] = samples.length;
    results[`detection_${mode}_p50_ms`] = round(percentile(samples, 50), 0);
    results[`detection_${mode}_p99_ms`] = round(percentile(samples, 99), 0);
    line.push(`${mode === 'polling' ? '1 s polling' : mode === 'timer' ? '60 s timer' : 'streams'} p50 ${results[`detection_${mode}_p50_ms`]} ms / p99 ${results[`detection_${mode}_p99_ms`]} ms (${samples.length} guards)`);
  }
  say(`detection latency (price move → Triggered, no bot report): ${line.join('; ')}`);
}
