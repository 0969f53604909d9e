/**
 * Venue ownership: the worker's venue configuration binds each venue to one account, and no other guard can act on
 * it. Before, venue ids mapped to worker-wide keys: a second guard naming the same venues (with autoClosePositions)
 * cancelled every order and closed the real account's position while the real guard stayed Active.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { WORKFLOW_TYPE } from '../../src/api/contract';
import { BreakerClient } from '../../src/client';
import { createVenueClient } from '../../src/exchanges/ccxt-factory';
import { createGuardWorker } from '../../src/worker-factory';
import { rehearsal } from '../../tooling/rehearsal-trust';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import { seedPaperAccount } from '../../tooling/seed-scenario';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';

const OWNER = `owner-${randomBytes(3).toString('hex')}`;
let paper: PaperServer;
let worker: Worker;
let running: Promise<void>;
let connection: Connection;
let native: NativeConnection;
let breaker: BreakerClient;
let taskQueue: string;

beforeAll(async () => {
  const credentials = { apiKey: randomBytes(16).toString('hex'), secret: randomBytes(32).toString('hex') };
  paper = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed(seedPaperAccount());
  const spec = (id: string, exchange: 'binance' | 'binanceusdm') => ({ id, exchange, routeTo: paper.url, account: OWNER, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS });
  const venues = new Map([createVenueClient(spec('spot', 'binance'), credentials), createVenueClient(spec('perp', 'binanceusdm'), credentials)].map((v) => [v.id, v]));
  taskQueue = `ownership-${randomBytes(4).toString('hex')}`;
  native = await NativeConnection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! });
  const trust = rehearsal();
  worker = await createGuardWorker({ connection: native, venues, taskQueue, workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! }, trust: trust.anchor, auditDir: trust.auditDir });
  running = worker.run();
  connection = await Connection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! });
  breaker = new BreakerClient(new Client({ connection }), taskQueue);
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await connection?.close();
  await native?.close();
  await paper?.close();
});

const openOrders = () => paper.exchange.openOrders('spot', false).length + paper.exchange.openOrders('futures', false).length + paper.exchange.openOrders('futures', true).length;

async function failureOf(handle: { result(): Promise<unknown> }): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

it('the owner account guards its venues', async () => {
  await breaker.startGuard({ accountId: OWNER, initialCapital: '10000', venues: ['spot', 'perp'] });
  const state = await breaker.state(OWNER);
  expect(state.state).toBe('Active');
  await breaker.handle(OWNER).terminate('test done');
});

it('a guard of another account naming those venues fails at start and touches nothing', async () => {
  const before = openOrders();
  expect(before).toBeGreaterThan(0);
  const intruder = `intruder-${randomBytes(3).toString('hex')}`;
  const handle = await breaker.client.workflow.start(WORKFLOW_TYPE, {
    workflowId: `guard-${intruder}`,
    taskQueue,
    args: [{ config: { accountId: intruder, initialCapital: '1000000', venues: ['spot', 'perp'], autoClosePositions: true } }],
  });
  const cause = await failureOf(handle);
  expect(cause).toMatchObject({ type: 'VenueNotBound', nonRetryable: true });
  expect(cause.message).toMatch(new RegExp(`bound to account "${OWNER}"`));
  expect(openOrders()).toBe(before);
});

it('a second guard for the owner account under another workflow id cannot act either', async () => {
  const handle = await breaker.client.workflow.start(WORKFLOW_TYPE, {
    workflowId: `rogue-${randomBytes(3).toString('hex')}`,
    taskQueue,
    args: [{ config: { accountId: OWNER, initialCapital: '1000000', venues: ['spot'] } }],
  });
  expect(await failureOf(handle)).toMatchObject({ type: 'VenueNotBound' });
});

it('a venue no worker has is refused at start with the venues it has', async () => {
  const handle = await breaker.client.workflow.start(WORKFLOW_TYPE, {
    workflowId: `guard-${OWNER}`,
    taskQueue,
    args: [{ config: { accountId: OWNER, initialCapital: '10000', venues: ['spot', 'kraken'] } }],
  });
  const cause = await failureOf(handle);
  expect(cause.message).toMatch(/venue "kraken" is not configured on this worker \(it has: spot, perp\)/);
});
