/**
 * What an integration test needs: the shared Temporal server, a paper exchange of its own, a real worker with real
 * ccxt clients routed to that paper exchange, and a typed client. Each test file gets its own task queue so that
 * files running in parallel never steal each other's tasks.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { BreakerClient } from '../../src/client';
import { createVenueClient } from '../../src/exchanges/ccxt-factory';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import { pollUntil } from '../../tooling/poll';
import { createGuardWorker } from '../../src/worker-factory';
import { Rehearsal, rehearsal } from '../../tooling/rehearsal-trust';

import { PERP_VENUE as PERP, SPOT_VENUE as SPOT } from '../../tooling/seed-scenario';

export { PERP, SPOT };

export interface Harness {
  paper: PaperServer;
  breaker: BreakerClient;
  client: Client;
  worker: Worker;
  address: string;
  taskQueue: string;
  credentials: { apiKey: string; secret: string };
  /** The operators (alice, bob) the worker's rehearsal anchor lists for every account; `breaker` signs with their keys. */
  trust: Rehearsal;
  stop(): Promise<void>;
}

let runtimeInstalled = false;

export async function startHarness(name: string): Promise<Harness> {
  if (!runtimeInstalled) {
    // Terminating a guard mid-shutdown makes core warn about activity completions nobody awaits; tests assert on
    // state instead, so only errors are printed.
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
    runtimeInstalled = true;
  }
  const address = process.env.TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is not set: run integration tests through jest (globalSetup)');
  const credentials = { apiKey: randomBytes(16).toString('hex'), secret: randomBytes(32).toString('hex') };
  const paper = await startPaperServer({ credentials: [credentials] });
  const venues = new Map(
    [
      createVenueClient({ id: SPOT, exchange: 'binance', routeTo: paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentials),
      createVenueClient({ id: PERP, exchange: 'binanceusdm', routeTo: paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentials),
    ].map((v) => [v.id, v]),
  );
  const taskQueue = `test-${name}-${randomBytes(4).toString('hex')}`;
  const nativeConnection = await NativeConnection.connect({ address });
  const trust = rehearsal();
  const worker = await createGuardWorker({
    connection: nativeConnection,
    venues,
    taskQueue,
    trust: trust.anchor,
    auditDir: trust.auditDir,
    workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
  });
  const running = worker.run();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  return {
    paper,
    breaker: new BreakerClient(client, taskQueue, { operatorKeys: trust.operatorKeys }),
    client,
    worker,
    address,
    taskQueue,
    credentials,
    trust,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
      await nativeConnection.close();
      // The watchers' WebSocket connections would keep the process alive.
      await Promise.all([...venues.values()].map((v) => v.exchange.close()));
      await paper.close();
    },
  };
}

export function uniqueAccount(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Polls until `done` holds; for state that changes asynchronously (a shutdown in progress). */
export function eventually<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  return pollUntil(read, done, { what: 'the condition', timeoutMs });
}
