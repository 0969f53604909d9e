/**
 * The activities through real ccxt classes against the paper exchange, and the paper exchange's signature checks.
 */
import { createHmac } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../../src/activities';
import { VenueFailureType } from '../../src/api/failures';
import { createVenueClient } from '../../src/exchanges/ccxt-factory';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import { seedPaperAccount } from '../../tooling/seed-scenario';

const credentials = { apiKey: 'test-key-0123456789', secret: 'test-secret-abcdefghijklmnopqrstuvwxyz' };
let paper: PaperServer;
beforeEach(async () => {
  paper = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed(seedPaperAccount());
});
afterEach(async () => {
  await paper.close();
});

/** An activity context whose logger keeps expected failures out of the test output; typed by the activity. */
function activityEnv(info?: ConstructorParameters<typeof MockActivityEnvironment>[0]) {
  const env = new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });
  return {
    on: env.on.bind(env),
    run: <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => env.run(fn, ...args) as Promise<R>,
  };
}

function activities(creds = credentials) {
  const venues = new Map(
    [
      createVenueClient({ id: 'spot', exchange: 'binance', routeTo: paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, creds),
      createVenueClient({ id: 'perp', exchange: 'binanceusdm', routeTo: paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, creds),
    ].map((v) => [v.id, v]),
  );
  return createActivities({ venues });
}

describe('readVenue', () => {
  it('reads spot balances with prices of held assets', async () => {
    const reading = await activityEnv().run(activities().readVenue, 'spot', 'USDT');
    expect(reading).toMatchObject({ venue: 'spot', balances: { USDT: '4000', BTC: '0.1' }, prices: { BTC: '40000' }, positions: [] });
  });

  it('reads the futures wallet balance and positions with unrealized P&L, as decimal strings', async () => {
    paper.exchange.setPrice('BTC', '38000.5');
    const reading = await activityEnv().run(activities().readVenue, 'perp', 'USDT');
    expect(reading.balances).toEqual({ USDT: '2000' });
    expect(reading.positions).toEqual([
      { symbol: 'BTC/USDT:USDT', side: 'long', contracts: '0.1', unrealizedPnl: '-199.95', entryPrice: '40000', markPrice: '38000.5' },
    ]);
  });

  it('raises a non-retryable auth failure for a bad key', async () => {
    const read = activityEnv().run(activities({ apiKey: 'wrong', secret: 'x' }).readVenue, 'spot', 'USDT');
    await expect(read).rejects.toBeInstanceOf(ApplicationFailure);
    await expect(read).rejects.toMatchObject({ type: VenueFailureType.AuthFailed, nonRetryable: true });
  });
});

describe('cancelAllOpenOrders', () => {
  it('cancels normal and conditional orders on every symbol and verifies zero', async () => {
    const acts = activities();
    const env = activityEnv();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    expect(await env.run(acts.cancelAllOpenOrders, 'spot')).toEqual({ venue: 'spot', cancelled: 3, openAfter: 0 });
    expect(await env.run(acts.cancelAllOpenOrders, 'perp')).toEqual({ venue: 'perp', cancelled: 4, openAfter: 0 });
    expect(paper.exchange.snapshot().openOrders.total).toBe(0);
    // At least one heartbeat per run, with the progress a retry resumes from.
    expect(heartbeats.length).toBeGreaterThanOrEqual(2);
    expect(heartbeats[0]).toEqual({ cancelled: 0, step: 'listing' });
    // Idempotent: a second pass finds nothing and cancels nothing.
    expect(await env.run(acts.cancelAllOpenOrders, 'perp')).toEqual({ venue: 'perp', cancelled: 0, openAfter: 0 });
  });

  it('resumes the count from heartbeat details after a retry', async () => {
    const env = activityEnv({ heartbeatDetails: { cancelled: 5 } });
    expect(await env.run(activities().cancelAllOpenOrders, 'spot')).toEqual({ venue: 'spot', cancelled: 8, openAfter: 0 });
  });

  it('fails a venue unknown to the worker clearly and without retry', async () => {
    const attempt = activityEnv().run(activities().cancelAllOpenOrders, 'kraken');
    await expect(attempt).rejects.toMatchObject({ type: VenueFailureType.Rejected, nonRetryable: true, message: expect.stringContaining('not configured on this worker') });
  });
});

describe('closePositions', () => {
  it('closes longs and shorts with reduce-only market orders and verifies zero, never flipping', async () => {
    paper.exchange.seed({ positions: [{ symbol: 'ETHUSDT', positionAmt: '-2.5', entryPrice: '2000' }] });
    const result = await activityEnv().run(activities().closePositions, 'perp');
    expect(result).toEqual({ venue: 'perp', closed: 2, remaining: 0 });
    expect(paper.exchange.snapshot().positions).toEqual([]);
    // Spot has no positions to close.
    expect(await activityEnv().run(activities().closePositions, 'spot')).toEqual({ venue: 'spot', closed: 0, remaining: 0 });
  });

  it('a reduce-only order larger than what is left (a bot closed part meanwhile) still cannot flip the position', async () => {
    const acts = activities();
    paper.exchange.seed({ orders: [] });
    // Simulate the race: shrink the position after the activity fetched it, by closing half first.
    paper.exchange.placeOrder({ market: 'futures', symbol: 'BTCUSDT', side: 'SELL', type: 'MARKET', quantity: '0.05', reduceOnly: true });
    expect(await activityEnv().run(acts.closePositions, 'perp')).toEqual({ venue: 'perp', closed: 1, remaining: 0 });
    expect(paper.exchange.positions.size).toBe(0);
  });
});

describe('malformed answers are never read as zero', () => {
  it.each([
    ['GET /api/v3/openOrders', 'cancelAllOpenOrders', 'spot'],
    ['GET /fapi/v1/openAlgoOrders', 'cancelAllOpenOrders', 'perp'],
    ['GET /api/v3/account', 'readVenue', 'spot'],
    ['GET /fapi/v3/positionRisk', 'closePositions', 'perp'],
  ] as const)('%s with a 200 of the wrong shape fails %s as a retryable malformed response', async (endpoint, activity, venue) => {
    paper.faults.add({ endpoint, kind: 'malformed', count: 1 });
    const acts = activities();
    const attempt: Promise<unknown> =
      activity === 'readVenue'
        ? activityEnv().run(acts.readVenue, venue, 'USDT')
        : activity === 'closePositions'
          ? activityEnv().run(acts.closePositions, venue)
          : activityEnv().run(acts.cancelAllOpenOrders, venue);
    await expect(attempt).rejects.toMatchObject({ type: VenueFailureType.MalformedResponse, nonRetryable: false });
    expect(paper.exchange.snapshot().openOrders.total).toBe(7);
  });
});

describe('paper exchange authentication', () => {
  const sign = (query: string, secret = credentials.secret) => createHmac('sha256', secret).update(query).digest('hex');
  const get = (query: string, key = credentials.apiKey) => fetch(`${paper.url}/api/v3/account?${query}`, { headers: { 'X-MBX-APIKEY': key } });

  it('accepts a correctly signed request', async () => {
    const query = `timestamp=${Date.now()}&recvWindow=5000`;
    const res = await get(`${query}&signature=${sign(query)}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { balances: unknown[] }).balances).toContainEqual({ asset: 'BTC', free: '0.1', locked: '0.00000000' });
  });

  it.each([
    ['a wrong signature', (q: string) => get(`${q}&signature=${sign(q, 'other')}`), 400, -1022],
    ['an unknown key', (q: string) => get(`${q}&signature=${sign(q)}`, 'nobody'), 401, -2015],
    ['no key', (q: string) => fetch(`${paper.url}/api/v3/account?${q}&signature=${sign(q)}`), 401, -2014],
    ['no signature', (q: string) => get(q), 400, -1102],
    ['a tampered query', (q: string) => get(`${q.replace('5000', '6000')}&signature=${sign(q)}`), 400, -1022],
  ])('refuses %s with Binance error codes', async (_label, send, status, code) => {
    const res = await send(`timestamp=${Date.now()}&recvWindow=5000`);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { code: number }).code).toBe(code);
  });

  it('refuses a timestamp outside recvWindow (-1021)', async () => {
    const query = `timestamp=${Date.now() - 60_000}&recvWindow=5000`;
    const res = await get(`${query}&signature=${sign(query)}`);
    expect(await res.json()).toMatchObject({ code: -1021 });
  });
});
