/**
 * `npm run chaos`: the crash suite at scale. A seeded schedule of worker SIGKILLs at different moments of an
 * emergency shutdown, every fault kind, Temporal server restarts and late bot orders, each on its own paper
 * exchange and task queue, a few at a time. Prints a table and exits non-zero if any order or position was left
 * open, any trigger was recorded twice, or any secret reached a log.
 *
 *   CHAOS_SEED=42 CHAOS_KILLS=52 CHAOS_CONCURRENCY=3 npm run chaos
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { seededRandom } from './paper/faults';
import { startDevServer } from './temporal/dev-server';
import { bundleGuardWorkflows } from '../src/worker-factory';
import { CrashEnv, KILL_POINTS, ScenarioResult, ScenarioSpec, faultScenarios, runScenario, startRestartableServer } from './crash/crash';

const seed = Number(process.env.CHAOS_SEED ?? 42);
const kills = Number(process.env.CHAOS_KILLS ?? 52);
const concurrency = Number(process.env.CHAOS_CONCURRENCY ?? 3);

interface Row {
  group: string;
  spec: ScenarioSpec;
  result?: ScenarioResult;
  error?: string;
}

function schedule(): Row[] {
  const random = seededRandom(seed);
  const rows: Row[] = [];
  for (let i = 0; i < kills; i++) {
    const point = KILL_POINTS[Math.floor(random() * KILL_POINTS.length)]!;
    const index = 1 + Math.floor(random() * 6);
    const releaseBeforeKill = random() < 0.5;
    const orders = 10 + Math.floor(random() * 40);
    rows.push({
      group: `kill ${point}`,
      spec: { name: `kill-${i + 1}-${point}-${index}`, orders, autoClose: point === 'duringClose' || random() < 0.3, kill: { point, index, releaseBeforeKill } },
    });
  }
  for (const f of faultScenarios()) {
    rows.push({ group: `fault ${f.kind}`, spec: { name: `fault-${f.kind}`, orders: 30, autoClose: false, fault: f.fault, timeoutMs: f.timeoutMs } });
  }
  rows.push({ group: 'late bot orders', spec: { name: 'bot-after-trigger', orders: 20, autoClose: false, botOrdersAfterFlat: 30 } });
  return rows;
}

async function pool<T>(items: T[], size: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: size }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<number> {
  const started = Date.now();
  console.log(`chaos: seed ${seed}, ${kills} kill points, ${faultScenarios().length} fault kinds, server restarts, concurrency ${concurrency}`);
  const server = await startDevServer({ log: (l) => console.log(l) });
  const { code } = await bundleGuardWorkflows();
  const workflowBundle = path.join(mkdtempSync(path.join(os.tmpdir(), 'chaos-')), 'workflow-bundle.js');
  writeFileSync(workflowBundle, code);
  const connection = await Connection.connect({ address: server.address });
  const env: CrashEnv = { address: server.address, workflowBundle, client: new Client({ connection }) };

  const rows = schedule();
  let done = 0;
  await pool(rows, concurrency, async (row) => {
    try {
      row.result = await runScenario(env, row.spec);
    } catch (err) {
      row.error = (err as Error).message.split('\n')[0];
    }
    done += 1;
    const r = row.result;
    console.log(`[${String(done).padStart(3)}/${rows.length}] ${row.spec.name.padEnd(36)} ${r ? `left ${r.ordersLeft} orders/${r.positionsLeft} positions, triggers ${r.triggers}, shutdowns ${r.shutdowns}, flat in ${r.timeToFlatMs} ms` : `ERROR ${row.error}`}`);
  });
  await connection.close();
  await server.stop();

  // Server restarts need a server of their own: restarting the shared one would disturb the other scenarios.
  const restartable = await startRestartableServer();
  for (let i = 0; i < 3; i++) {
    const row: Row = {
      group: 'server restart',
      spec: { name: `server-restart-${i + 1}`, orders: 20 + 10 * i, autoClose: i % 2 === 0, serverRestart: restartable.restartAt(i + 1) },
    };
    try {
      row.result = await runScenario({ address: restartable.address, workflowBundle, client: restartable.client }, row.spec);
    } catch (err) {
      row.error = (err as Error).message.split('\n')[0];
    }
    rows.push(row);
    const r = row.result;
    console.log(`[restart ${i + 1}/3] ${row.spec.name.padEnd(30)} ${r ? `left ${r.ordersLeft} orders/${r.positionsLeft} positions, triggers ${r.triggers}, shutdowns ${r.shutdowns}, flat in ${r.timeToFlatMs} ms` : `ERROR ${row.error}`}`);
  }
  await restartable.stop();

  // ---- report --------------------------------------------------------------------------------------------------
  const ok = rows.filter((r) => r.result);
  const ordersLeft = ok.reduce((s, r) => s + r.result!.ordersLeft, 0);
  const positionsLeft = ok.reduce((s, r) => s + (r.spec.autoClose ? r.result!.positionsLeft : 0), 0);
  const duplicateTriggers = ok.reduce((s, r) => s + Math.max(0, r.result!.triggers - 1), 0);
  const missingShutdowns = ok.filter((r) => r.result!.shutdowns !== 1).length;
  const leaks = ok.filter((r) => r.result!.secretLeaked).length;
  const errors = rows.filter((r) => r.error);
  const faultsInjected = ok.reduce((s, r) => s + (r.spec.kill || r.spec.serverRestart ? 0 : r.result!.faultsApplied), 0);

  console.log('\nTime to flat by scenario kind (from the breaching report accepted to zero open orders on the paper exchange)');
  console.log(`${'scenario'.padEnd(26)} ${'runs'.padStart(5)} ${'median ms'.padStart(10)} ${'max ms'.padStart(8)} ${'orders left'.padStart(12)} ${'dup triggers'.padStart(13)}`);
  const groups = [...new Set(rows.map((r) => r.group))];
  for (const group of groups) {
    const inGroup = rows.filter((r) => r.group === group && r.result).map((r) => r.result!);
    const times = inGroup.map((r) => r.timeToFlatMs);
    console.log(
      `${group.padEnd(26)} ${String(inGroup.length).padStart(5)} ${String(Math.round(median(times))).padStart(10)} ${String(Math.max(...times)).padStart(8)} ${String(inGroup.reduce((s, r) => s + r.ordersLeft, 0)).padStart(12)} ${String(inGroup.reduce((s, r) => s + Math.max(0, r.triggers - 1), 0)).padStart(13)}`,
    );
  }
  console.log('');
  console.log(`scenarios run            ${rows.length} (${errors.length} errored)`);
  console.log(`kill points              ${rows.filter((r) => r.spec.kill).length} worker SIGKILLs, ${rows.filter((r) => r.spec.serverRestart).length} server restarts`);
  console.log(`faults injected          ${faultsInjected} (${faultScenarios().length} kinds)`);
  console.log(`orders left open         ${ordersLeft}   (must be 0)`);
  console.log(`positions left open      ${positionsLeft}   (must be 0)`);
  console.log(`duplicate triggers       ${duplicateTriggers}   (must be 0)`);
  console.log(`shutdowns not recorded once ${missingShutdowns}   (must be 0)`);
  console.log(`secrets in worker logs   ${leaks}   (must be 0)`);
  console.log(`wall time                ${Math.round((Date.now() - started) / 1000)} s`);
  for (const e of errors) console.log(`ERROR ${e.spec.name}: ${e.error}`);
  return ordersLeft + positionsLeft + duplicateTriggers + missingShutdowns + leaks + errors.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
