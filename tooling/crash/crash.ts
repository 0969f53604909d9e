/**
 * Crash and fault scenarios for an emergency shutdown, shared by `npm test` (a representative subset) and
 * `npm run chaos` (the full seeded schedule). Each scenario has its own paper exchange, alert sink, task queue and
 * worker processes; it trips a guard, injects a crash or a fault at a chosen moment, and reports what was left.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Alert, GuardEvent } from '../../src/api/contract';
import { BreakerClient } from '../../src/client';
import { spreadOrders } from '../paper/exchange';
import type { FaultKind, FaultRuleInput } from '../paper/faults';
import { PaperServer, startPaperServer } from '../paper/server';
import { pollUntil } from '../poll';
import { freePort, startDevServer } from '../temporal/dev-server';
import { SPOT_VENUE, PERP_VENUE } from '../seed-scenario';
import { writeHistory } from './histories';
import { rehearsal } from '../rehearsal-trust';
import { WorkerProcess } from './worker-process';

export const KILL_POINTS = ['beforeFirstCancel', 'betweenCancels', 'duringVerify', 'duringClose'] as const;
export type KillPoint = (typeof KILL_POINTS)[number];

export interface ScenarioSpec {
  name: string;
  /** Open orders spread over spot, perp and perp conditional books and up to 20 symbols. */
  orders: number;
  autoClose: boolean;
  /** SIGKILL the worker when the request chosen by `hold` reaches the venue. */
  kill?: { point: KillPoint; index: number; releaseBeforeKill: boolean };
  /** Or stop the Temporal server there (restart on the same database is done by `restartServer`). */
  serverRestart?: { index: number; restart: () => Promise<void>; stop: () => Promise<void> };
  /** A fault injected into the venue during the shutdown. */
  fault?: FaultRuleInput;
  /** A bot keeps placing this many orders after the shutdown; they must be swept. */
  botOrdersAfterFlat?: number;
  /** ccxt timeout in the worker (short for `delay` faults). */
  timeoutMs?: number;
}

export interface ScenarioResult {
  name: string;
  ordersLeft: number;
  positionsLeft: number;
  triggers: number;
  shutdowns: number;
  timeToFlatMs: number;
  alerts: Alert[];
  events: GuardEvent[];
  faultsApplied: number;
  /** True if an API key or secret appeared in worker output. */
  secretLeaked: boolean;
  /** Failed venues seen in `state` while the fault lasted. */
  failedVenuesSeen: string[];
}

export interface CrashEnv {
  address: string;
  workflowBundle: string;
  client: Client;
}

function holdRule(point: KillPoint, index: number): FaultRuleInput {
  switch (point) {
    case 'beforeFirstCancel':
      return { endpoint: 'GET /api/v3/openOrders', kind: 'hold', count: 1 };
    case 'betweenCancels':
      return { endpoint: ['DELETE /api/v3/openOrders', 'DELETE /fapi/v1/allOpenOrders', 'DELETE /fapi/v1/algoOpenOrders'][index % 3]!, kind: 'hold', skip: Math.floor(index / 3), count: 1 };
    case 'duringVerify':
      return { endpoint: 'GET /fapi/v1/openAlgoOrders', kind: 'hold', skip: 1, count: 1 };
    case 'duringClose':
      return { endpoint: 'POST /fapi/v1/order', kind: 'hold', skip: index % 2, count: 1 };
  }
}

async function startAlertSink(): Promise<{ url: string; alerts: Alert[]; close: () => Promise<void> }> {
  const alerts: Alert[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      alerts.push(JSON.parse(body) as Alert);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/alerts`, alerts, close: () => new Promise((r) => server.close(() => r())) };
}

/** Server restarts make reads fail for a while: those count as "not yet". */
function until<T>(what: string, read: () => Promise<T> | T, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  return pollUntil(read, done, { what, timeoutMs, intervalMs: 50, tolerateErrors: true });
}

export async function runScenario(env: CrashEnv, spec: ScenarioSpec): Promise<ScenarioResult> {
  const credentials = { apiKey: randomBytes(16).toString('hex'), secret: randomBytes(32).toString('hex') };
  const paper: PaperServer = await startPaperServer({ credentials: [credentials] });
  const sink = await startAlertSink();
  const taskQueue = `crash-${randomBytes(4).toString('hex')}`;
  // One anchor and audit log for every worker of the scenario, as in a deployment; the client holds its operator keys.
  const trust = rehearsal();
  const breaker = new BreakerClient(env.client, taskQueue, { operatorKeys: trust.operatorKeys });
  const accountId = `crash-${spec.name.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
  const workers: WorkerProcess[] = [];
  const startWorker = async () => {
    const w = await WorkerProcess.start({
      address: env.address,
      taskQueue,
      workflowBundle: env.workflowBundle,
      paperUrl: paper.url,
      credentials,
      alertWebhookUrl: sink.url,
      timeoutMs: spec.timeoutMs,
      trust,
    });
    workers.push(w);
    return w;
  };
  try {
    paper.exchange.seed({
      spotBalances: { USDT: '6000' },
      futuresBalances: { USDT: '4000' },
      positions: spec.autoClose
        ? [
            { symbol: 'BTCUSDT', positionAmt: '0.1', entryPrice: '40000' },
            { symbol: 'ETHUSDT', positionAmt: '-2', entryPrice: '2000' },
          ]
        : [],
      orders: spreadOrders(spec.orders),
    });
    const first = await startWorker();
    await breaker.startGuard({
      accountId,
      initialCapital: '10000',
      venues: [SPOT_VENUE, PERP_VENUE],
      autoClosePositions: spec.autoClose,
      sweepIntervalSeconds: 1,
      valuationIntervalSeconds: 3600,
    });
    await until('the first valuation', () => breaker.state(accountId), (s) => s.lastValuationAt !== null, 30_000);

    if (spec.kill) paper.faults.add(holdRule(spec.kill.point, spec.kill.index));
    if (spec.serverRestart) paper.faults.add(holdRule('betweenCancels', spec.serverRestart.index));
    if (spec.fault) paper.faults.add(spec.fault);

    const flatNow = () => {
      const snap = paper.exchange.snapshot();
      return snap.openOrders.total === 0 && (!spec.autoClose || snap.positions.length === 0);
    };
    const t0 = Date.now();
    const answer = await breaker.report(accountId, { venue: SPOT_VENUE, seq: 1, balances: { USDT: '5000' } });
    if (answer.state !== 'Triggered') throw new Error(`expected the report to trip the breaker, got ${answer.state}`);
    let flatAt: number | undefined;
    const watcher = setInterval(() => {
      if (flatAt === undefined && flatNow()) flatAt = Date.now();
    }, 5);

    const failedVenuesSeen = new Set<string>();
    try {
      if (spec.kill) {
        // Only a request held at the venue pins the kill to the chosen moment; without orders in that book the
        // request may never come, and the scenario then kills at whatever moment the timeout finds.
        await until('the chosen request to reach the venue', () => paper.faults.held.size, (n) => n > 0, 20_000).catch(() => 0);
        if (spec.kill.releaseBeforeKill) paper.faults.releaseAll();
        await first.kill();
        paper.faults.releaseAll();
        await startWorker();
      }
      if (spec.serverRestart) {
        await until('a cancel to reach the venue', () => paper.faults.held.size, (n) => n > 0, 20_000).catch(() => 0);
        await spec.serverRestart.stop();
        paper.faults.releaseAll();
        await spec.serverRestart.restart();
      }
      await until(
        'the guard to confirm the shutdown',
        async () => {
          const s = await breaker.state(accountId);
          for (const [venue, p] of Object.entries(s.shutdown)) if (p.status === 'failed') failedVenuesSeen.add(venue);
          return s;
        },
        (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat',
        120_000,
      );
      await until('the paper exchange to be flat', () => flatNow(), (f) => f, 30_000);
      await until('the shutdown-complete alert', () => sink.alerts.length, () => sink.alerts.some((a) => a.kind === 'ShutdownComplete'), 15_000);
      if (spec.botOrdersAfterFlat) {
        // A bot that did not get the message keeps placing orders; the sweep must take them out.
        paper.exchange.seed({ orders: spreadOrders(spec.botOrdersAfterFlat, 1) });
        await until('the sweep to remove orders placed after the trigger', () => flatNow(), (f) => f, 30_000);
        await until('the sweep to be recorded', () => breaker.events(accountId), (e) => e.some((x) => x.type === 'OrdersSwept'), 10_000);
      }
    } finally {
      clearInterval(watcher);
    }
    const events = await breaker.events(accountId);
    if (process.env.RECORD_HISTORIES === '1') {
      writeHistory(path.resolve(__dirname, '../../test/histories', `${spec.name}.json`), await breaker.handle(accountId).fetchHistory());
    }
    const snap = paper.exchange.snapshot();
    const logs = workers.map((w) => w.log).join('\n');
    return {
      name: spec.name,
      ordersLeft: snap.openOrders.total,
      positionsLeft: snap.positions.length,
      triggers: events.filter((e) => e.type === 'CircuitBreakerTriggered').length,
      shutdowns: events.filter((e) => e.type === 'SystemShutdown').length,
      timeToFlatMs: (flatAt ?? Date.now()) - t0,
      alerts: [...sink.alerts],
      events,
      faultsApplied: paper.faults.applied.length,
      secretLeaked: logs.includes(credentials.secret) || logs.includes(credentials.apiKey),
      failedVenuesSeen: [...failedVenuesSeen],
    };
  } finally {
    await breaker.handle(accountId).terminate('scenario done').catch(() => undefined);
    await Promise.all(workers.map((w) => w.kill()));
    paper.faults.clear();
    await paper.close();
    await sink.close();
  }
}

/** One fault per kind, on the endpoint where it hurts most during a shutdown. */
export function faultScenarios(): { kind: FaultKind; fault: FaultRuleInput; timeoutMs?: number }[] {
  return [
    { kind: 'http429', fault: { endpoint: 'DELETE /api/v3/openOrders', kind: 'http429', count: 2 } },
    { kind: 'http418', fault: { endpoint: 'GET /fapi/v1/openOrders', kind: 'http418', count: 2 } },
    { kind: 'timestamp', fault: { endpoint: 'DELETE /fapi/v1/allOpenOrders', kind: 'timestamp', count: 2 } },
    { kind: 'http5xx', fault: { endpoint: '/fapi', kind: 'http5xx', count: 3 } },
    { kind: 'delay', fault: { endpoint: 'DELETE /fapi/v1/algoOpenOrders', kind: 'delay', delayMs: 2_500, count: 1 }, timeoutMs: 1_000 },
    { kind: 'drop', fault: { endpoint: 'GET /api/v3/openOrders', kind: 'drop', count: 2 } },
    { kind: 'malformed', fault: { endpoint: 'GET /fapi/v1/openAlgoOrders', kind: 'malformed', count: 2 } },
    { kind: 'unknownOrder', fault: { endpoint: 'DELETE /api/v3/openOrders', kind: 'unknownOrder', count: 2 } },
    { kind: 'auth', fault: { endpoint: 'DELETE /fapi/v1/allOpenOrders', kind: 'auth', count: 1 } },
  ];
}

/**
 * A Temporal dev server of its own, on a fixed port and SQLite file, that a scenario can SIGKILL and start again:
 * restarting the shared server would disturb every other scenario.
 */
export async function startRestartableServer(): Promise<{
  address: string;
  client: Client;
  restartAt: (index: number) => NonNullable<ScenarioSpec['serverRestart']>;
  stop: () => Promise<void>;
}> {
  const port = await freePort();
  const dbFilename = path.join(mkdtempSync(path.join(os.tmpdir(), 'breaker-restart-')), 'temporal.db');
  let server = await startDevServer({ port, dbFilename });
  const connection = await Connection.connect({ address: server.address });
  return {
    address: server.address,
    client: new Client({ connection }),
    restartAt: (index) => ({
      index,
      stop: async () => {
        const exited = new Promise((r) => server.process.once('exit', r));
        server.process.kill('SIGKILL');
        await exited;
      },
      restart: async () => {
        server = await startDevServer({ port, dbFilename });
      },
    }),
    stop: async () => {
      await connection.close();
      await server.stop();
    },
  };
}
