/**
 * `npm run bench`: figures, not pass/fail. On the embedded Temporal dev server and the paper exchange, measures
 * the core check cost, report latency, trigger-to-flat against an in-process baseline, reports against a trivial
 * workflow's ceiling (A; the old section 4, guards per worker, is its guard/update rows), recovery with a standby
 * worker (B), and long life; prints a table and writes bench/results/latest.json (every key carries its unit).
 *
 * Knobs (defaults keep the whole run under 20 minutes on 2 cores):
 * - BENCH_SECTIONS: comma-separated, default 1,2,3,A,B,5,detection,watched; also 4 (guard/update rows of A only).
 * - BENCH_LOAD_SECONDS (A: window per row, default 20), BENCH_SCALES (A: accounts, default 100,1000),
 *   BENCH_SIGNAL_PROBES (A: accounts following their signals until visible, default 20).
 * - BENCH_RECOVERY_RUNS (B, default 10), BENCH_RECOVERY_ORDERS (default 100), BENCH_RECOVERY_DELAY_MS (default 1000).
 * - BENCH_LONG_REPORTS (5, default 10000), BENCH_LONG_CONCURRENCY (5, default 8).
 *
 * A quick look: BENCH_SECTIONS=A,B BENCH_LOAD_SECONDS=5 BENCH_SCALES=100 BENCH_RECOVERY_RUNS=3 npm run bench
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { BalanceReport } from '../src/api/contract';
import { BreakerClient } from '../src/client';
import { parseAccountConfig } from '../src/domain/config';
import { createVenueClient } from '../src/exchanges/ccxt-factory';
import { spreadOrders } from '../tooling/paper/exchange';
import { PaperServer, startPaperServer } from '../tooling/paper/server';
import { PERP_VENUE, SPOT_VENUE } from '../tooling/seed-scenario';
import { startDevServer } from '../tooling/temporal/dev-server';
import { bundleGuardWorkflows, createGuardWorker } from '../src/worker-factory';
import { rehearsal } from '../tooling/rehearsal-trust';
import { InProcessBreaker } from './baseline';
import { BenchContext } from './context';
import { runCoreCheck } from './core-check';
import { signatureChecks } from './signatures';
import { recoveryWithStandby } from './recovery';
import { bundleCeiling, reportsAgainstCeiling } from './reports-vs-ceiling';
import { median, percentile, round } from './stats';
import { detectionLatency, watchedScale } from './watcher-sections';

const LONG_REPORTS = Number(process.env.BENCH_LONG_REPORTS ?? 5_000);
/** Reports in flight at once to the long-lived guard, as several bots (or one pipelining bot) would send them. */
const LONG_CONCURRENCY = Number(process.env.BENCH_LONG_CONCURRENCY ?? 8); // the server admits at most 10 in-flight updates per workflow
/** Which sections to run, e.g. BENCH_SECTIONS=1,A (default all). */
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? '1,2,3,A,B,5,detection,watched,signatures').split(',').map((x) => x.trim()));
const results: Record<string, unknown> = {};
const wallBySection: Record<string, number> = {};
const say = (line = '') => process.stdout.write(`${line}\n`);
const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

// ---- 1. core check cost: bench/core-check.ts (the full check, and the watcher's per-tick check) -----------------
function section1(): void {
  Object.assign(results, runCoreCheck(say));
}

function report(venue: string, seq: number, usdt: string): BalanceReport {
  return { venue, seq, balances: { USDT: usdt } };
}

async function main(): Promise<void> {
  const started = Date.now();
  /** Wall time per section (to keep the whole run under 20 minutes): `sectionSeconds_<section>`, for sections that ran. */
  let lap = started;
  const mark = (section: string) => {
    const seconds = Math.round((Date.now() - lap) / 1_000);
    lap = Date.now();
    if (seconds > 0) wallBySection[`sectionSeconds_${section}`] = seconds;
  };
  say(`portfolio-breaker benchmark — ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
  results.machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version };
  if (SECTIONS.has('1')) section1();
  mark('1');

  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
  const server = await startDevServer();
  const { code } = await bundleGuardWorkflows({ logger: new DefaultLogger('ERROR') });
  const bundleDir = path.join(os.tmpdir(), `breaker-bench-${randomBytes(4).toString('hex')}`);
  mkdirSync(bundleDir, { recursive: true });
  const workflowBundle = path.join(bundleDir, 'workflow-bundle.js');
  writeFileSync(workflowBundle, code);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const credentials = { apiKey: randomBytes(16).toString('hex'), secret: randomBytes(32).toString('hex') };
  const paper: PaperServer = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed({ spotBalances: { USDT: '6000' }, futuresBalances: { USDT: '4000' } });
  // Unthrottled figures: rateLimitMs 1 (ccxt's limiter at 1 ms per weight) and the paper exchange's limits lifted;
  // guard and baseline use the same setting. Section 3 also measures under Binance's real limits (see there).
  const UNLIMITED = { spotWeightPerMinute: 1e9, futuresWeightPerMinute: 1e9 };
  paper.rateLimits.configure(UNLIMITED);
  /** Venue clients: `rateLimitMs` 1 (unthrottled), a number (ccxt's limiter at that rate), or none (the request budget alone). */
  const venueClients = (rateLimitMs: number | undefined = 1) =>
    new Map(
      [
        createVenueClient({ id: SPOT_VENUE, exchange: 'binance', routeTo: paper.url, timeoutMs: 10_000, rateLimitMs }, credentials),
        createVenueClient({ id: PERP_VENUE, exchange: 'binanceusdm', routeTo: paper.url, timeoutMs: 10_000, rateLimitMs }, credentials),
      ].map((v) => [v.id, v]),
    );

  // ---- 2. report latency, and 3. trigger-to-flat, with an in-process worker ------------------------------------
  /** Runs `work` with a guard worker in this process on a task queue of its own. */
  const withInProcessWorker = async (name: string, work: (breaker: BreakerClient) => Promise<void>, venues = venueClients()) => {
    const taskQueue = `bench-${name}-${randomBytes(3).toString('hex')}`;
    const native = await NativeConnection.connect({ address: server.address });
    const trust = rehearsal();
    const worker = await createGuardWorker({ connection: native, venues, taskQueue, workflowBundle: { codePath: workflowBundle }, trust: trust.anchor, auditDir: trust.auditDir });
    await worker.runUntil(() => work(new BreakerClient(client, taskQueue, { operatorKeys: trust.operatorKeys })));
    await native.close();
  };

  const flatAfter = async (t: bigint) => {
    while (paper.exchange.snapshot().openOrders.total > 0) await sleep(1);
    return ms(t);
  };
  /** Guard trigger-to-flat runs: a breaching report, then until the paper exchange holds no open order. */
  const guardFlattens = async (breaker: BreakerClient, orders: number, runs: number, label: string): Promise<number[]> => {
    const samples: number[] = [];
    for (let run = 0; run < runs; run++) {
      paper.exchange.seed({ orders: spreadOrders(orders) });
      const id = `bench-flat-${label}-${orders}-${run}-${randomBytes(2).toString('hex')}`;
      await breaker.startGuard({ accountId: id, initialCapital: '10000', venues: [SPOT_VENUE, PERP_VENUE], valuationIntervalSeconds: 3600 });
      await breaker.report(id, report(PERP_VENUE, 1, '4000'));
      await breaker.report(id, report(SPOT_VENUE, 1, '6000'));
      const t = process.hrtime.bigint();
      await breaker.report(id, report(SPOT_VENUE, 2, '5000'));
      samples.push(await flatAfter(t));
      await breaker.handle(id).terminate('bench');
    }
    return samples;
  };

  if (SECTIONS.has('2') || SECTIONS.has('3')) {
    await withInProcessWorker('latency', async (breaker) => {
      const accountId = `bench-latency-${randomBytes(3).toString('hex')}`;
      await breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT_VENUE, PERP_VENUE], valuationIntervalSeconds: 3600 });
      await breaker.report(accountId, report(PERP_VENUE, 1, '4000'));
      for (let i = 0; i < 50; i++) await breaker.report(accountId, report(SPOT_VENUE, i + 1, '6000')); // warm-up
      const updates: number[] = [];
      for (let i = 0; i < (SECTIONS.has('2') ? 1_000 : 0); i++) {
        const t = process.hrtime.bigint();
        await breaker.report(accountId, report(SPOT_VENUE, 100 + i, i % 2 ? '6000' : '5990'));
        updates.push(ms(t));
      }
      const signals: number[] = [];
      const handle = breaker.handle(accountId);
      for (let i = 0; i < (SECTIONS.has('2') ? 1_000 : 0); i++) {
        const seq = 2_000 + i;
        const t = process.hrtime.bigint();
        await breaker.signalReport(accountId, report(SPOT_VENUE, seq, '6000'));
        while ((await handle.query('state') as { lastSeq: Record<string, number> }).lastSeq[SPOT_VENUE]! < seq) {
          // poll until visible
        }
        signals.push(ms(t));
      }
      if (SECTIONS.has('2')) Object.assign(results, {
        reportUpdate_p50_ms: round(percentile(updates, 50)),
        reportUpdate_p99_ms: round(percentile(updates, 99)),
        reportUpdate_max_ms: round(Math.max(...updates)),
        reportSignalToQuery_p50_ms: round(percentile(signals, 50)),
        reportSignalToQuery_p99_ms: round(percentile(signals, 99)),
        reportSignalToQuery_max_ms: round(Math.max(...signals)),
      });
      if (SECTIONS.has('2')) say(`2. report latency over 1,000 reports: update p50 ${results.reportUpdate_p50_ms} ms, p99 ${results.reportUpdate_p99_ms} ms, max ${results.reportUpdate_max_ms} ms; signal→query p50 ${results.reportSignalToQuery_p50_ms} ms, p99 ${results.reportSignalToQuery_p99_ms} ms, max ${results.reportSignalToQuery_max_ms} ms`);
      await handle.terminate('bench');

      // 3. trigger-to-flat
      const config = parseAccountConfig({ accountId: 'baseline', initialCapital: '10000', venues: [SPOT_VENUE, PERP_VENUE] });
      if (!config.ok) throw new Error(config.error);
      for (const orders of SECTIONS.has('3') ? [10, 100, 1_000] : []) {
        const guardRuns: number[] = [];
        const baselineRuns: number[] = [];
        for (let run = 0; run < (orders === 1_000 ? 3 : 5); run++) {
          paper.exchange.seed({ orders: spreadOrders(orders) });
          const id = `bench-flat-${orders}-${run}-${randomBytes(2).toString('hex')}`;
          await breaker.startGuard({ accountId: id, initialCapital: '10000', venues: [SPOT_VENUE, PERP_VENUE], valuationIntervalSeconds: 3600 });
          await breaker.report(id, report(PERP_VENUE, 1, '4000'));
          await breaker.report(id, report(SPOT_VENUE, 1, '6000'));
          const t = process.hrtime.bigint();
          await breaker.report(id, report(SPOT_VENUE, 2, '5000'));
          guardRuns.push(await flatAfter(t));
          await breaker.handle(id).terminate('bench');

          paper.exchange.seed({ orders: spreadOrders(orders) });
          const baseline = new InProcessBreaker(config.value, [...venueClients().values()]);
          await baseline.report(PERP_VENUE, { balances: { USDT: '4000' }, positions: [], asOf: '', receivedAt: '', source: 'bot' });
          await baseline.report(SPOT_VENUE, { balances: { USDT: '6000' }, positions: [], asOf: '', receivedAt: '', source: 'bot' });
          const tb = process.hrtime.bigint();
          await baseline.report(SPOT_VENUE, { balances: { USDT: '5000' }, positions: [], asOf: '', receivedAt: '', source: 'bot' });
          baselineRuns.push(await flatAfter(tb));
        }
        const g = median(guardRuns);
        const b = median(baselineRuns);
        Object.assign(results, {
          [`triggerToFlat_${orders}orders_guard_p50_ms`]: round(g),
          [`triggerToFlat_${orders}orders_guard_max_ms`]: round(Math.max(...guardRuns)),
          [`triggerToFlat_${orders}orders_baseline_p50_ms`]: round(b),
          [`triggerToFlat_${orders}orders_baseline_max_ms`]: round(Math.max(...baselineRuns)),
          [`triggerToFlat_${orders}orders_guard_baseline_ratio`]: round(g / b),
        });
        say(`3. trigger-to-flat, ${orders} orders on 2 venues / 20 symbols: guard p50 ${round(g)} ms (max ${round(Math.max(...guardRuns))}), in-process baseline p50 ${round(b)} ms (max ${round(Math.max(...baselineRuns))}), ratio ${round(g / b)}`);
      }
    });
  }

  mark('2_3');

  // ---- 3b. trigger-to-flat under Binance's real limits -------------------------------------------------------------
  // The paper exchange at Binance's limits and weights (spot 6,000, USDⓈ-M 2,400 per minute); the guard's venue
  // clients with the request budget alone (no rateLimitMs), then with ccxt's own limiter at its Binance default
  // (rateLimit 50 ms per unit of weight) for comparison. 100 orders on 2 venues, as the unthrottled row.
  if (SECTIONS.has('3')) {
    const orders = 100;
    paper.rateLimits.configure({ spotWeightPerMinute: 6_000, futuresWeightPerMinute: 2_400 });
    let budgetRuns: number[] = [];
    let ccxtRuns: number[] = [];
    await withInProcessWorker('flat-budget', async (breaker) => void (budgetRuns = await guardFlattens(breaker, orders, 5, 'budget')), venueClients(undefined));
    await withInProcessWorker('flat-ccxt', async (breaker) => void (ccxtRuns = await guardFlattens(breaker, orders, 3, 'ccxt')), venueClients(50));
    const limits = await (await fetch(`${paper.url}/control/limits`)).json() as { used: { spot: number; futures: number } };
    Object.assign(results, {
      [`triggerToFlat_${orders}orders_realLimits_budget_p50_ms`]: round(median(budgetRuns)),
      [`triggerToFlat_${orders}orders_realLimits_budget_max_ms`]: round(Math.max(...budgetRuns)),
      [`triggerToFlat_${orders}orders_realLimits_ccxtDefaultLimiter_p50_ms`]: round(median(ccxtRuns)),
      [`triggerToFlat_${orders}orders_realLimits_ccxtDefaultLimiter_max_ms`]: round(Math.max(...ccxtRuns)),
      [`triggerToFlat_realLimits_venue_429s`]: paper.rateLimits.answered.tooMany,
      [`triggerToFlat_realLimits_venue_418s`]: paper.rateLimits.answered.banned,
    });
    say(`3b. trigger-to-flat, ${orders} orders on 2 venues under Binance's real limits (spot 6,000 / USDⓈ-M 2,400 weight per minute): guard with the request budget p50 ${round(median(budgetRuns))} ms (max ${round(Math.max(...budgetRuns))}), with ccxt's default limiter p50 ${round(median(ccxtRuns))} ms (max ${round(Math.max(...ccxtRuns))}); unthrottled p50 ${results[`triggerToFlat_${orders}orders_guard_p50_ms`] ?? 'n/a'} ms; venue answered ${paper.rateLimits.answered.tooMany} × 429, ${paper.rateLimits.answered.banned} × 418 (weight used this minute: spot ${limits.used.spot}, futures ${limits.used.futures})`);
    paper.rateLimits.configure(UNLIMITED);
  }

  mark('3b');

  // ---- A (and 4). reports against the ceiling -----------------------------------------------------------------
  const ctx: BenchContext = { server, paper, client, workflowBundle, ceilingBundle: '', credentials };
  if (SECTIONS.has('A') || SECTIONS.has('4')) {
    ctx.ceilingBundle = await bundleCeiling(bundleDir);
    // BENCH_SECTIONS=4 alone: the guard/update rows only, as section 4 measured them before section A existed.
    const rows = SECTIONS.has('A') ? undefined : [{ kind: 'guard' as const, mode: 'update' as const }];
    await reportsAgainstCeiling(ctx, results, say, rows);
  }
  mark('A');

  // ---- B. recovery with a standby worker -----------------------------------------------------------------------
  if (SECTIONS.has('B')) await recoveryWithStandby(ctx, results, say);
  mark('B');

  // ---- signatures: what authenticating operators and bots costs (bench/signatures.ts) ---------------------------
  if (SECTIONS.has('signatures')) {
    Object.assign(results, await signatureChecks({ client, address: server.address, workflowBundle, venues: venueClients, spot: SPOT_VENUE, say }));
    mark('signatures');
  }

  // ---- later: the streaming watcher's sections (hooks only) ----------------------------------------------------
  if (SECTIONS.has('detection')) await detectionLatency(ctx, results, say);
  if (SECTIONS.has('watched')) await watchedScale(ctx, results, say);

  // ---- 5. long life ---------------------------------------------------------------------------------------------
  if (SECTIONS.has('5')) {
    await withInProcessWorker('long', async (breaker) => {
      const accountId = `bench-long-${randomBytes(3).toString('hex')}`;
      await breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT_VENUE, PERP_VENUE], valuationIntervalSeconds: 3600 });
      await breaker.report(accountId, report(PERP_VENUE, 1, '4000'));
      const latencies: { at: number; ms: number }[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: LONG_CONCURRENCY }, async () => {
          for (let seq = ++next; seq <= LONG_REPORTS; seq = ++next) {
            const t = process.hrtime.bigint();
            await breaker.report(accountId, report(SPOT_VENUE, seq, seq % 2 ? '6000' : '5995'));
            latencies.push({ at: Date.now(), ms: ms(t) });
          }
        }),
      );
      const runs: { start: number; historyLength: number }[] = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId = 'guard-${accountId}'` })) {
        // Visibility may not have the running run's length yet; describe has it.
        const historyLength = wf.status.name === 'RUNNING' ? (await breaker.handle(accountId).describe()).historyLength : wf.historyLength;
        runs.push({ start: wf.startTime.getTime(), historyLength });
      }
      const events = runs.reduce((s, r) => s + r.historyLength, 0);
      const boundaries = runs.map((r) => r.start).sort((a, b) => a - b).slice(1);
      const near = latencies.filter((l) => boundaries.some((b) => l.at >= b - 250 && l.at <= b + 1_000)).map((l) => l.ms);
      const all = latencies.map((l) => l.ms);
      Object.assign(results, {
        longLife_reports: LONG_REPORTS,
        longLife_reports_in_flight: LONG_CONCURRENCY,
        longLife_reports_per_second: round(LONG_REPORTS / ((latencies.at(-1)!.at - latencies[0]!.at) / 1_000 || 1), 0),
        longLife_history_events_per_report: round(events / LONG_REPORTS, 2),
        longLife_continue_as_new_count: boundaries.length,
        longLife_reports_per_run: round(LONG_REPORTS / runs.length, 0),
        longLife_report_p99_ms: round(percentile(all, 99)),
        longLife_report_p99_near_continue_as_new_ms: round(percentile(near, 99)),
        longLife_report_max_ms: round(Math.max(...all)),
      });
      say(`5. long life, ${LONG_REPORTS} reports to one guard (${LONG_CONCURRENCY} in flight): ${results.longLife_history_events_per_report} history events per report, ${boundaries.length} continue-as-new (every ~${results.longLife_reports_per_run} reports), p99 ${results.longLife_report_p99_ms} ms overall vs ${results.longLife_report_p99_near_continue_as_new_ms} ms within 1 s of a continue-as-new (max ${results.longLife_report_max_ms} ms)`);
      await breaker.handle(accountId).terminate('bench');
    });
  }

  mark('5');
  Object.assign(results, wallBySection);
  results.wall_seconds = Math.round((Date.now() - started) / 1_000);
  summaryTable();
  const out = path.resolve(__dirname, 'results', 'latest.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  say(`\nwrote ${path.relative(process.cwd(), out)} (${results.wall_seconds} s)`);
  await connection.close();
  await paper.close();
  await server.stop();
}

/** Every figure, one per line, in the order measured: the plain-text summary at the end of a run. */
function summaryTable(): void {
  const rows = Object.entries(results).filter(([k]) => k !== 'machine');
  const width = Math.max(...rows.map(([k]) => k.length));
  say('\nsummary (units in the names; 100 % CPU = one core)');
  for (const [k, v] of rows) say(`  ${k.padEnd(width)}  ${String(v)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
