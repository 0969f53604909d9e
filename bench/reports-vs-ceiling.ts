/**
 * Section A: reports against the ceiling. The guard and a trivial entity workflow (bench/ceiling-workflow.ts, the
 * most Temporal can do per report on this server) get the same load: N accounts (100 and 1,000 by default), each
 * reporting once per second, closed loop, first as signals then as updates, each workflow kind on its own worker
 * process and task queue, one after the other on the same server. Figures per kind × message × N: throughput
 * (reports/s completed), p50/p99 latency, worker CPU and RSS, server CPU; guard/ceiling ratios of throughput and
 * p99; history events per report at the smallest N.
 *
 * Knobs: BENCH_LOAD_SECONDS (window per row), BENCH_SCALES (e.g. "100,1000"), BENCH_SIGNAL_PROBES (accounts whose
 * signals are followed until visible, at most; default 20).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, bundleWorkflowCode } from '@temporalio/worker';
import { BalanceReport, guardWorkflowId } from '../src/api/contract';
import { parseAccountConfig } from '../src/domain/config';
import { BreakerClient } from '../src/client';
import { WORKER_TUNING } from '../src/worker-factory';
import { WorkerProcess } from '../tooling/crash/worker-process';
import { PERP_VENUE, SPOT_VENUE } from '../tooling/seed-scenario';
import { BenchContext, Results, Say, eachLimited, msSince, sleep } from './context';
import { percentile, processUsage, round } from './stats';

const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 20);
const SCALES = (process.env.BENCH_SCALES ?? '100,1000').split(',').map(Number);
/** At most this many accounts (and at most 10 % of them) follow each signal until the report is visible. */
const SIGNAL_PROBES = Number(process.env.BENCH_SIGNAL_PROBES ?? 20);

export type Kind = 'guard' | 'ceiling';
export type Mode = 'signal' | 'update';
export interface Row {
  kind: Kind;
  mode: Mode;
}
const ALL_ROWS: Row[] = [
  { kind: 'guard', mode: 'signal' },
  { kind: 'guard', mode: 'update' },
  { kind: 'ceiling', mode: 'signal' },
  { kind: 'ceiling', mode: 'update' },
];

/** Bundles bench/ceiling-workflow.ts on its own (default payload converter: it decodes nothing unusual). */
export async function bundleCeiling(dir: string): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('./ceiling-workflow'), logger: new DefaultLogger('ERROR') });
  const file = path.join(dir, 'ceiling-bundle.js');
  writeFileSync(file, code);
  return file;
}

const spot = (seq: number): BalanceReport => ({ venue: SPOT_VENUE, seq, balances: { USDT: seq % 2 ? '6000' : '5995' } });

/** The accounts of one kind on one worker process: how to start them, send to them and see what they processed. */
interface Fleet {
  worker: WorkerProcess;
  ids: string[];
  /** Workflows still starting when the load began (guards whose start-up reads had not come back in 3 minutes). */
  notReady: number;
  handle(id: string): WorkflowHandle;
  /** The highest spot `seq` the workflow has processed (its `state` query; both kinds answer `lastSeq`). */
  visible(id: string): Promise<number>;
}

async function startFleet(ctx: BenchContext, kind: Kind, n: number): Promise<Fleet> {
  const taskQueue = `bench-${kind}-${n}-${randomBytes(3).toString('hex')}`;
  const base = { address: ctx.server.address, taskQueue, paperUrl: ctx.paper.url, credentials: ctx.credentials, timeoutMs: 10_000 };
  const worker =
    kind === 'guard'
      ? await WorkerProcess.start({ ...base, workflowBundle: ctx.workflowBundle })
      : await WorkerProcess.start({
          ...base,
          workflowBundle: ctx.ceilingBundle,
          script: 'bench/ceiling-worker.ts',
          env: { BENCH_WORKER_TUNING: JSON.stringify(WORKER_TUNING) },
        });
  const tag = randomBytes(2).toString('hex');
  const ids = Array.from({ length: n }, (_, i) => `bench-${kind}-${n}-${i}-${tag}`);
  const client: Client = ctx.client;
  const breaker = new BreakerClient(client, taskQueue);
  if (kind === 'guard') {
    // The guard's start-up reads give it both venues' holdings, so every spot report below values the whole account.
    // BreakerClient.startGuard for the first (it checks the config and that the guard runs), a plain start for the
    // rest: startGuard's query doubles the RPCs, and 1,000 of them cost the run a minute.
    // No watcher: this section measures the bot-report path against the ceiling (each watcher holds one of the
    // worker's activity slots, 100 by default, so 1,000 watched guards on one worker starve their own activities;
    // that load is the "watched scale" section's, bench/watcher-sections.ts).
    const config = { accountId: ids[0]!, initialCapital: '10000', venues: [SPOT_VENUE, PERP_VENUE], valuationIntervalSeconds: 3600, watch: { enabled: false } };
    await breaker.startGuard(config);
    await eachLimited(ids.slice(1), 50, async (accountId) => {
      const parsed = parseAccountConfig({ ...config, accountId });
      if (!parsed.ok) throw new Error(parsed.error);
      await client.workflow.start('accountGuard', { workflowId: guardWorkflowId(accountId), taskQueue, args: [{ config: parsed.value }] });
    });
  } else {
    await eachLimited(ids, 50, async (id) => void (await client.workflow.start('ceilingEntity', { workflowId: `ceiling-${id}`, taskQueue, args: [] })));
  }
  const handle = (id: string) => client.workflow.getHandle(kind === 'guard' ? guardWorkflowId(id) : `ceiling-${id}`);
  // Load only once every workflow has finished starting (a guard: its start-up reads of both venues are in), so the
  // window measures steady state and not a start-up queue; how long that took, and how many never got there within
  // 3 minutes, are figures of their own.
  const readyBy = Date.now() + 180_000;
  let waiting = kind === 'guard' ? ids : [];
  while (waiting.length > 0 && Date.now() < readyBy) {
    const still: string[] = [];
    await eachLimited(waiting, 100, async (id) => {
      const view = await handle(id).query<{ venues: Record<string, { holdingsFrom: string | null }> }>('state').catch(() => undefined);
      if (!view || Object.values(view.venues).some((v) => v.holdingsFrom === null)) still.push(id);
    });
    waiting = still;
    if (waiting.length > 0) await sleep(1_000);
  }
  return {
    worker,
    ids,
    notReady: waiting.length,
    handle,
    visible: async (id) => ((await handle(id).query<{ lastSeq: Record<string, number | null> }>('state')).lastSeq[SPOT_VENUE] ?? 0),
  };
}

interface LoadFigures {
  throughput: number;
  p50: number;
  p99: number;
  failed: number;
  workerCpu: number;
  workerRss: number;
  serverCpu: number;
  /** Signals only: the send RPC's own latency, reports not yet processed at the window's end, probe queries/s. */
  rpcP99?: number;
  backlog?: number;
  probeQueriesPerSecond?: number;
  historyEventsPerReport?: number;
}

/**
 * One row: every account sends `mode` reports once per second for LOAD_SECONDS, closed loop (a report that comes
 * back late delays that account's next one, so a server or worker that cannot keep up shows as throughput below the
 * offered N/s, not as an unbounded queue).
 *
 * Latency of a signal: the RPC returns when the server has stored the signal, not when the workflow has processed
 * it, so the signal's latency is "sent → visible in the `state` query". Querying after every signal of every account
 * would be a second load as large as the first (a query is a round trip to the worker, as a report is), so only a
 * few probe accounts (BENCH_SIGNAL_PROBES, at most 10 % of N) follow each of their signals with queries, at growing
 * intervals (20 ms, then 20 % of the time waited, at most 250 ms: resolution ≤ 20 %), and send their next report
 * only once the last is visible; the queries they send are reported as probe queries/s, beside the N/s reports.
 * Every account's signal RPC latency is measured too. Signal throughput is what the workflows had *processed*,
 * not what the server had accepted: one `state` query per account right after the window (sum of lastSeq gained)
 * over the time from the window's start to the end of those queries; reports still queued then are the backlog,
 * which the row waits out (up to 60 s) before the next row so that it never runs into it.
 */
async function loadRow(fleet: Fleet, mode: Mode, seqs: Map<string, number>, serverPid: number, countHistory: boolean): Promise<LoadFigures> {
  const { ids } = fleet;
  const n = ids.length;
  const probes = new Set(ids.slice(0, Math.max(1, Math.min(SIGNAL_PROBES, Math.floor(n * 0.1)))));
  const startSeq = new Map(seqs);
  const historyBefore = countHistory ? await historyOf(fleet) : 0;
  const latencies: number[] = [];
  const rpc: number[] = [];
  let completed = 0;
  let failed = 0;
  let probeQueries = 0;
  const serverBefore = processUsage(serverPid);
  const workerBefore = processUsage(fleet.worker.child.pid!);
  const t0 = Date.now();
  const end = t0 + LOAD_SECONDS * 1_000;
  await Promise.all(
    ids.map(async (id, i) => {
      for (let second = 0; ; second++) {
        const due = t0 + (i / n) * 1_000 + second * 1_000; // spread each second's reports evenly
        if (Date.now() < due) await sleep(due - Date.now());
        if (Date.now() >= end) break;
        const seq = seqs.get(id)! + 1;
        seqs.set(id, seq);
        const t = process.hrtime.bigint();
        try {
          if (mode === 'update') {
            await fleet.handle(id).executeUpdate('reportBalances', { args: [spot(seq)] });
            latencies.push(msSince(t));
            completed += 1;
            continue;
          }
          await fleet.handle(id).signal('balanceReport', spot(seq));
          rpc.push(msSince(t));
          if (!probes.has(id)) continue;
          for (;;) {
            probeQueries += 1;
            if ((await fleet.visible(id)) >= seq) break;
            // A report never seen within 2 minutes counts as failed rather than hanging the row.
            if (msSince(t) > 120_000) throw new Error(`report ${seq} of ${id} not visible after 120 s`);
            await sleep(Math.min(250, Math.max(20, msSince(t) * 0.2)));
          }
          latencies.push(msSince(t));
        } catch {
          failed += 1;
        }
      }
    }),
  );
  const windowEnd = Date.now();
  const serverAfter = processUsage(serverPid);
  const workerAfter = processUsage(fleet.worker.child.pid!);
  const elapsed = (windowEnd - t0) / 1_000;
  const figures: LoadFigures = {
    throughput: 0,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    failed,
    workerCpu: ((workerAfter.cpuSeconds - workerBefore.cpuSeconds) / elapsed) * 100,
    workerRss: workerAfter.rssMb,
    serverCpu: ((serverAfter.cpuSeconds - serverBefore.cpuSeconds) / elapsed) * 100,
  };
  let processed = completed;
  if (mode === 'signal') {
    const seen = new Map<string, number>();
    await eachLimited(ids, 100, async (id) => void seen.set(id, await fleet.visible(id).catch(() => startSeq.get(id)!)));
    const queriedAt = Date.now();
    processed = ids.reduce((sum, id) => sum + seen.get(id)! - startSeq.get(id)!, 0);
    const sent = ids.reduce((sum, id) => sum + seqs.get(id)! - startSeq.get(id)!, 0);
    figures.throughput = processed / ((queriedAt - t0) / 1_000);
    figures.rpcP99 = percentile(rpc, 99);
    figures.backlog = sent - processed;
    figures.probeQueriesPerSecond = probeQueries / elapsed;
    // Wait the backlog out, so that the next row starts on an idle worker.
    const drainUntil = Date.now() + 60_000;
    let behind = ids.filter((id) => seen.get(id)! < seqs.get(id)!);
    while (behind.length > 0 && Date.now() < drainUntil) {
      await sleep(500);
      const still: string[] = [];
      await eachLimited(behind, 100, async (id) => void ((await fleet.visible(id).catch(() => 0)) < seqs.get(id)! && still.push(id)));
      behind = still;
    }
  } else {
    figures.throughput = completed / elapsed;
  }
  if (countHistory) figures.historyEventsPerReport = ((await historyOf(fleet)) - historyBefore) / processed;
  return figures;
}

/** Sum of the fleet's current history lengths (describe(): visibility may lag for a running workflow). */
async function historyOf(fleet: Fleet): Promise<number> {
  let events = 0;
  await eachLimited(fleet.ids, 20, async (id) => {
    const { historyLength } = await fleet.handle(id).describe(); // read first: `events += await` would add to a stale sum
    events += historyLength;
  });
  return events;
}

/**
 * Runs section A (or the given rows only: BENCH_SECTIONS=4 runs the guard/update rows, the old section 4) at each
 * scale, and records `reports_<N>accounts_<kind>_<mode>_*` figures and the guard/ceiling ratios.
 */
export async function reportsAgainstCeiling(ctx: BenchContext, results: Results, say: Say, rows: Row[] = ALL_ROWS): Promise<void> {
  const serverPid = ctx.server.process.pid!;
  const smallest = Math.min(...SCALES);
  for (const n of SCALES) {
    for (const kind of ['guard', 'ceiling'] as const) {
      const modes = rows.filter((r) => r.kind === kind).map((r) => r.mode);
      if (modes.length === 0) continue;
      const startedAt = Date.now();
      const fleet = await startFleet(ctx, kind, n);
      const readySeconds = round((Date.now() - startedAt) / 1_000, 1);
      Object.assign(results, { [`reports_${n}accounts_${kind}_fleet_ready_seconds`]: readySeconds, [`reports_${n}accounts_${kind}_fleet_not_ready_workflows`]: fleet.notReady });
      say(`A. ${n} ${kind} workflows started on their own worker process and ready in ${readySeconds} s (${fleet.notReady} not ready)`);
      const seqs = new Map(fleet.ids.map((id) => [id, 0]));
      try {
        for (const mode of modes) {
          const f = await loadRow(fleet, mode, seqs, serverPid, n === smallest);
          const key = `reports_${n}accounts_${kind}_${mode}`;
          Object.assign(results, {
            [`${key}_throughput_reports_per_second`]: round(f.throughput),
            [`${key}_p50_ms`]: round(f.p50),
            [`${key}_p99_ms`]: round(f.p99),
            [`${key}_failed_reports`]: f.failed,
            [`${key}_worker_cpu_percent`]: round(f.workerCpu, 0),
            [`${key}_worker_rss_mb`]: round(f.workerRss, 0),
            [`${key}_server_cpu_percent`]: round(f.serverCpu, 0),
            ...(f.rpcP99 !== undefined ? { [`${key}_signal_rpc_p99_ms`]: round(f.rpcP99) } : {}),
            ...(f.backlog !== undefined ? { [`${key}_backlog_at_window_end_reports`]: f.backlog } : {}),
            ...(f.probeQueriesPerSecond !== undefined ? { [`${key}_probe_queries_per_second`]: round(f.probeQueriesPerSecond, 1) } : {}),
            ...(f.historyEventsPerReport !== undefined ? { [`${key}_history_events_per_report`]: round(f.historyEventsPerReport) } : {}),
          });
          say(
            `A. ${n} accounts × 1 report/s, ${kind}, ${mode}s, ${LOAD_SECONDS} s: ${round(f.throughput)} reports/s completed (of ${n} offered, ${f.failed} failed), ` +
              `p50 ${round(f.p50)} ms, p99 ${round(f.p99)} ms${mode === 'signal' ? ` (sent → visible; send RPC p99 ${round(f.rpcP99!)} ms; backlog ${f.backlog}; probes ${round(f.probeQueriesPerSecond!, 1)} queries/s)` : ''}; ` +
              `worker ${round(f.workerCpu, 0)} % CPU, ${round(f.workerRss, 0)} MB RSS; server ${round(f.serverCpu, 0)} % CPU` +
              (f.historyEventsPerReport !== undefined ? `; ${round(f.historyEventsPerReport)} history events per report` : ''),
          );
          if (kind === 'guard' && mode === 'update') {
            // The old section 4's keys, from the same row, so that earlier results stay comparable.
            Object.assign(results, {
              [`guards${n}_reports_per_second`]: round(f.throughput),
              [`guards${n}_report_p99_ms`]: round(f.p99),
            });
          }
        }
      } finally {
        await eachLimited(fleet.ids, 50, async (id) => void (await fleet.handle(id).terminate('bench').catch(() => undefined)));
        await fleet.worker.kill();
      }
    }
    for (const mode of ['signal', 'update'] as const) {
      const g = `reports_${n}accounts_guard_${mode}`;
      const c = `reports_${n}accounts_ceiling_${mode}`;
      if (results[`${g}_p99_ms`] === undefined || results[`${c}_p99_ms`] === undefined) continue;
      const tput = round((results[`${g}_throughput_reports_per_second`] as number) / (results[`${c}_throughput_reports_per_second`] as number));
      const p99 = round((results[`${g}_p99_ms`] as number) / (results[`${c}_p99_ms`] as number));
      Object.assign(results, { [`reports_${n}accounts_${mode}_guard_over_ceiling_throughput_ratio`]: tput, [`reports_${n}accounts_${mode}_guard_over_ceiling_p99_ratio`]: p99 });
      say(`A. ${n} accounts, ${mode}s: guard/ceiling throughput ${tput} (target ≥ 0.8), p99 ${p99} (target ≤ 2)`);
    }
  }
}
