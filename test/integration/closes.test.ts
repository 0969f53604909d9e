/**
 * Position closes that the venue accepts (issue 8, item 2): Hedge Mode accounts, positions above the symbol's
 * MARKET_LOT_SIZE maxQty, and reduce-only closes that never flip; through createActivities and real ccxt classes
 * routed to the paper exchange, whose order validation follows Binance's (see PaperExchange.checkNewFuturesOrder).
 *
 * The first two describe blocks fail on the close before this change, which sent one reduce-only MARKET order for
 * the whole size without positionSide: in Hedge Mode the paper (like Binance) refuses it with -1106, and above maxQty
 * with -4005, at every pass.
 */
import { createHmac } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import ccxt from 'ccxt';
import { createActivities } from '../../src/activities';
import { Decimal } from '../../src/domain/money';
import { createVenueClient } from '../../src/exchanges/ccxt-factory';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import type { PaperOrder } from '../../tooling/paper/exchange';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';
import { TEST_CREDENTIALS } from './paper-fixture';

const credentials = TEST_CREDENTIALS;
let paper: PaperServer;
beforeEach(async () => {
  paper = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed({ prices: { BTC: '40000', ETH: '2000' }, futuresBalances: { USDT: '100000' } });
});
afterEach(async () => {
  await paper.close();
});

const perpClient = () =>
  createVenueClient({ id: 'perp', exchange: 'binanceusdm', routeTo: paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentials);

function closePositions() {
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const acts = createActivities({ venues: new Map([['perp', perpClient()]]) });
  return env.run(acts.closePositions, 'perp') as ReturnType<typeof acts.closePositions>;
}

const control = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${paper.url}${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

/** A signed request straight to the paper exchange (no ccxt), to see the venue's raw answer. */
async function signed(method: 'GET' | 'POST', path: string, params: Record<string, string> = {}) {
  const query = new URLSearchParams({ ...params, timestamp: String(Date.now()), recvWindow: '5000' }).toString();
  const signature = createHmac('sha256', credentials.secret).update(query).digest('hex');
  const res = await fetch(`${paper.url}${path}?${query}&signature=${signature}`, { method, headers: { 'X-MBX-APIKEY': credentials.apiKey } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const marketOrders = (): PaperOrder[] => paper.exchange.orderLog.filter((o) => o.market === 'futures' && o.type === 'MARKET');
const positions = () => paper.exchange.snapshot().positions.map((p) => ({ symbol: p.symbol, positionSide: p.positionSide, positionAmt: p.positionAmt }));

describe('Hedge Mode', () => {
  beforeEach(async () => {
    expect(await control('POST', '/control/positionMode', { dualSidePosition: true })).toEqual({ status: 200, body: { dualSidePosition: true } });
    paper.exchange.seed({
      positions: [
        { symbol: 'BTCUSDT', positionSide: 'LONG', positionAmt: '0.5', entryPrice: '40000' },
        { symbol: 'BTCUSDT', positionSide: 'SHORT', positionAmt: '-0.3', entryPrice: '41000' },
        { symbol: 'ETHUSDT', positionSide: 'SHORT', positionAmt: '-4', entryPrice: '2100' },
      ],
    });
  });

  it('closes a LONG and a SHORT on one symbol (and another SHORT) with positionSide and no reduceOnly; nothing flips', async () => {
    expect(await closePositions()).toEqual({ venue: 'perp', closed: 3, remaining: 0 });
    expect(positions()).toEqual([]);
    expect(marketOrders().map(({ symbol, side, positionSide, origQty, reduceOnly }) => ({ symbol, side, positionSide, origQty, reduceOnly }))).toEqual([
      { symbol: 'BTCUSDT', side: 'SELL', positionSide: 'LONG', origQty: '0.5', reduceOnly: false },
      { symbol: 'BTCUSDT', side: 'BUY', positionSide: 'SHORT', origQty: '0.3', reduceOnly: false },
      { symbol: 'ETHUSDT', side: 'BUY', positionSide: 'SHORT', origQty: '4', reduceOnly: false },
    ]);
    // A second pass finds nothing and sends nothing.
    expect(await closePositions()).toEqual({ venue: 'perp', closed: 0, remaining: 0 });
    expect(marketOrders()).toHaveLength(3);
  });

  it('reads both sides of a symbol as two positions', async () => {
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const acts = createActivities({ venues: new Map([['perp', perpClient()]]) });
    const reading = (await env.run(acts.readVenue, 'perp', 'USDT')) as Awaited<ReturnType<typeof acts.readVenue>>;
    expect(reading.positions.map((p) => `${p.symbol} ${p.side} ${p.contracts}`)).toEqual(['BTC/USDT:USDT long 0.5', 'BTC/USDT:USDT short 0.3', 'ETH/USDT:USDT short 4']);
  });

  it('splits a Hedge Mode close by MARKET_LOT_SIZE too', async () => {
    await control('POST', '/control/filters', { BTCUSDT: { MARKET_LOT_SIZE: { maxQty: '0.2' } } });
    expect(await closePositions()).toEqual({ venue: 'perp', closed: 3, remaining: 0 });
    expect(marketOrders().filter((o) => o.symbol === 'BTCUSDT').map((o) => `${o.side} ${o.positionSide} ${o.origQty}`)).toEqual([
      'SELL LONG 0.2', 'SELL LONG 0.2', 'SELL LONG 0.1', 'BUY SHORT 0.2', 'BUY SHORT 0.1',
    ]);
    expect(positions()).toEqual([]);
  });
});

describe('closes above MARKET_LOT_SIZE maxQty are split (One-way Mode)', () => {
  it('3 × maxQty + a bit: four reduce-only orders, each ≤ maxQty and on the step (maxQty set small through the control API)', async () => {
    const set = await control('POST', '/control/filters', { BTCUSDT: { MARKET_LOT_SIZE: { maxQty: '0.5' } } });
    expect(set.body.BTCUSDT).toMatchObject({ MARKET_LOT_SIZE: { minQty: '0.001', maxQty: '0.5', stepSize: '0.001' } });
    paper.exchange.seed({ positions: [{ symbol: 'BTCUSDT', positionAmt: '1.512', entryPrice: '40000' }] });

    expect(await closePositions()).toEqual({ venue: 'perp', closed: 1, remaining: 0 });
    const orders = marketOrders();
    expect(orders.map((o) => `${o.side} ${o.origQty} ${o.positionSide} reduceOnly=${o.reduceOnly}`)).toEqual([
      'SELL 0.5 BOTH reduceOnly=true', 'SELL 0.5 BOTH reduceOnly=true', 'SELL 0.5 BOTH reduceOnly=true', 'SELL 0.012 BOTH reduceOnly=true',
    ]);
    for (const o of orders) {
      expect(new Decimal(o.origQty).lte('0.5')).toBe(true);
      expect(new Decimal(o.origQty).mod('0.001').isZero()).toBe(true);
    }
    expect(positions()).toEqual([]);
  });

  it('a short above the realistic BTCUSDT maxQty (120, from exchangeInfo as ccxt loaded it) closes in lots of 120', async () => {
    paper.exchange.seed({ positions: [{ symbol: 'BTCUSDT', positionAmt: '-365.5', entryPrice: '40000' }] });
    expect(await closePositions()).toEqual({ venue: 'perp', closed: 1, remaining: 0 });
    expect(marketOrders().map((o) => `${o.side} ${o.origQty}`)).toEqual(['BUY 120', 'BUY 120', 'BUY 120', 'BUY 5.5']);
    expect(positions()).toEqual([]);
  });

  it('dust below the step is not closable: it is reported as remaining, with no order sent for it', async () => {
    paper.exchange.seed({ positions: [{ symbol: 'BTCUSDT', positionAmt: '0.2004', entryPrice: '40000' }] });
    // 0.2 closes; 0.0004 (below the 0.001 step and minQty) stays and keeps the venue "closing" in the guard.
    expect(await closePositions()).toEqual({ venue: 'perp', closed: 0, remaining: 1 });
    expect(positions()).toEqual([{ symbol: 'BTCUSDT', positionSide: 'BOTH', positionAmt: '0.0004' }]);
    expect(await closePositions()).toEqual({ venue: 'perp', closed: 0, remaining: 1 });
    expect(marketOrders().map((o) => o.origQty)).toEqual(['0.2']);
  });
});

describe('never a flip', () => {
  it('a reduce-only close sized from a stale fetch (larger than the position now) is refused and flips nothing', async () => {
    paper.exchange.seed({ positions: [{ symbol: 'BTCUSDT', positionAmt: '0.1', entryPrice: '40000' }] });
    const client = perpClient();
    const stale = (await client.books.positions())[0]!;
    // A bot's fill halves the position after the fetch.
    paper.exchange.placeOrder({ market: 'futures', symbol: 'BTCUSDT', side: 'SELL', type: 'MARKET', quantity: '0.05', reduceOnly: true });
    await expect(client.books.closePosition(stale, 'oneWay')).rejects.toBeInstanceOf(ccxt.InvalidOrder);
    expect(positions()).toEqual([{ symbol: 'BTCUSDT', positionSide: 'BOTH', positionAmt: '0.05' }]);
    // The activity re-fetches, so the next pass closes what is really there.
    expect(await closePositions()).toEqual({ venue: 'perp', closed: 1, remaining: 0 });
    expect(positions()).toEqual([]);
  });

  it('the paper refuses a reduce-only order that would flip (-2022) and one with nothing to reduce', async () => {
    paper.exchange.seed({ positions: [{ symbol: 'BTCUSDT', positionAmt: '0.1', entryPrice: '40000' }] });
    const order = { symbol: 'BTCUSDT', type: 'MARKET', reduceOnly: 'true' };
    expect(await signed('POST', '/fapi/v1/order', { ...order, side: 'SELL', quantity: '0.2' })).toEqual({ status: 400, body: { code: -2022, msg: 'ReduceOnly Order is rejected.' } });
    expect(await signed('POST', '/fapi/v1/order', { ...order, side: 'BUY', quantity: '0.05' })).toEqual({ status: 400, body: { code: -2022, msg: 'ReduceOnly Order is rejected.' } });
    expect(positions()).toEqual([{ symbol: 'BTCUSDT', positionSide: 'BOTH', positionAmt: '0.1' }]);
  });

  it('in Hedge Mode a close larger than its side is refused (-2022): a LONG never turns into a SHORT', async () => {
    paper.exchange.seed({ dualSidePosition: true, positions: [{ symbol: 'BTCUSDT', positionSide: 'LONG', positionAmt: '0.1', entryPrice: '40000' }] });
    expect(await signed('POST', '/fapi/v1/order', { symbol: 'BTCUSDT', side: 'SELL', positionSide: 'LONG', type: 'MARKET', quantity: '0.2' })).toMatchObject({ body: { code: -2022 } });
    expect(positions()).toEqual([{ symbol: 'BTCUSDT', positionSide: 'LONG', positionAmt: '0.1' }]);
  });
});

describe('the paper exchange validates orders as Binance does', () => {
  const market = { symbol: 'BTCUSDT', side: 'BUY', type: 'MARKET' };
  const limit = { symbol: 'BTCUSDT', side: 'BUY', type: 'LIMIT', timeInForce: 'GTC', quantity: '0.01' };

  it.each([
    ['One-way: positionSide LONG', false, { ...market, quantity: '0.01', positionSide: 'LONG' }, -4061],
    ['Hedge: no positionSide', true, { ...market, quantity: '0.01' }, -4061],
    ['Hedge: positionSide BOTH', true, { ...market, quantity: '0.01', positionSide: 'BOTH' }, -4061],
    ['Hedge: reduceOnly sent (even false)', true, { ...market, quantity: '0.01', positionSide: 'LONG', reduceOnly: 'false' }, -1106],
    ['MARKET above MARKET_LOT_SIZE maxQty (120)', false, { ...market, quantity: '120.001' }, -4005],
    ['MARKET with more decimals than the step', false, { ...market, quantity: '0.0005' }, -1111],
    ['quantity zero', false, { ...market, quantity: '0' }, -4003],
    ['LIMIT above LOT_SIZE maxQty (1000)', false, { ...limit, quantity: '1000.001', price: '30000' }, -4005],
    ['LIMIT with more price decimals than the tick', false, { ...limit, price: '30000.01' }, -1111],
    ['LIMIT below minPrice', false, { ...limit, price: '100' }, -4013],
    ['LIMIT above maxPrice', false, { ...limit, price: '900000' }, -4002],
    ['STOP_MARKET on the order endpoint', false, { ...market, type: 'STOP_MARKET', quantity: '0.01', stopPrice: '30000' }, -4120],
    ['TAKE_PROFIT on the order endpoint', false, { ...limit, type: 'TAKE_PROFIT', price: '50000', stopPrice: '50000' }, -4120],
    ['TRAILING_STOP_MARKET on the order endpoint', false, { ...market, type: 'TRAILING_STOP_MARKET', quantity: '0.01', callbackRate: '1' }, -4120],
  ] as const)('%s is refused', async (_name, hedge, params, code) => {
    paper.exchange.seed({ dualSidePosition: hedge });
    const answer = await signed('POST', '/fapi/v1/order', params as Record<string, string>);
    expect(answer).toMatchObject({ status: 400, body: { code } });
    expect(paper.exchange.orderLog).toEqual([]);
  });

  it('step, minQty and tick rules use the filters the control API sets', async () => {
    await control('POST', '/control/filters', { BTCUSDT: { MARKET_LOT_SIZE: { minQty: '0.01', stepSize: '0.005' }, PRICE_FILTER: { tickSize: '0.5' } } });
    expect(await signed('POST', '/fapi/v1/order', { ...market, quantity: '0.005' })).toMatchObject({ body: { code: -4004 } });
    expect(await signed('POST', '/fapi/v1/order', { ...market, quantity: '0.012' })).toMatchObject({ body: { code: -4023 } });
    expect(await signed('POST', '/fapi/v1/order', { ...market, quantity: '0.0125' })).toMatchObject({ body: { code: -1111 } });
    expect(await signed('POST', '/fapi/v1/order', { ...limit, price: '30000.3' })).toMatchObject({ body: { code: -4014 } });
    expect(await signed('POST', '/fapi/v1/order', { ...limit, price: '30000.6' })).toMatchObject({ status: 200, body: { status: 'NEW', positionSide: 'BOTH' } });
    expect(await signed('POST', '/fapi/v1/order', { ...market, quantity: '0.015' })).toMatchObject({ status: 200, body: { status: 'FILLED' } });
    // exchangeInfo lists them, which is where ccxt (and the close) reads them.
    const info = (await (await fetch(`${paper.url}/fapi/v1/exchangeInfo`)).json()) as { symbols: { symbol: string; filters: { filterType: string }[] }[] };
    expect(info.symbols.find((s) => s.symbol === 'BTCUSDT')!.filters).toEqual(
      expect.arrayContaining([
        { filterType: 'MARKET_LOT_SIZE', minQty: '0.01', maxQty: '120', stepSize: '0.005' },
        { filterType: 'LOT_SIZE', minQty: '0.001', maxQty: '1000', stepSize: '0.001' },
        { filterType: 'PRICE_FILTER', minPrice: '261.10', maxPrice: '809484', tickSize: '0.5' },
      ]),
    );
  });

  it('a valid Hedge Mode order opens the side it names', async () => {
    paper.exchange.seed({ dualSidePosition: true });
    expect(await signed('POST', '/fapi/v1/order', { ...market, quantity: '0.01', positionSide: 'LONG' })).toMatchObject({ status: 200, body: { positionSide: 'LONG', status: 'FILLED' } });
    expect(await signed('POST', '/fapi/v1/order', { symbol: 'BTCUSDT', side: 'SELL', type: 'MARKET', quantity: '0.02', positionSide: 'SHORT' })).toMatchObject({ status: 200 });
    expect(positions()).toEqual([
      { symbol: 'BTCUSDT', positionSide: 'LONG', positionAmt: '0.01' },
      { symbol: 'BTCUSDT', positionSide: 'SHORT', positionAmt: '-0.02' },
    ]);
  });

  it('position mode: GET and POST /fapi/v1/positionSide/dual with -4059 and -4068', async () => {
    expect(await signed('GET', '/fapi/v1/positionSide/dual')).toEqual({ status: 200, body: { dualSidePosition: false } });
    expect(await signed('POST', '/fapi/v1/positionSide/dual', { dualSidePosition: 'false' })).toMatchObject({ body: { code: -4059 } });
    expect(await signed('POST', '/fapi/v1/positionSide/dual', { dualSidePosition: 'true' })).toEqual({ status: 200, body: { code: 200, msg: 'success' } });
    expect(await signed('GET', '/fapi/v1/positionSide/dual')).toEqual({ status: 200, body: { dualSidePosition: true } });
    paper.exchange.seed({ positions: [{ symbol: 'ETHUSDT', positionAmt: '-1', entryPrice: '2000' }] });
    expect(positions()).toEqual([{ symbol: 'ETHUSDT', positionSide: 'SHORT', positionAmt: '-1' }]);
    expect(await signed('POST', '/fapi/v1/positionSide/dual', { dualSidePosition: 'false' })).toMatchObject({ body: { code: -4068 } });
    expect(await control('POST', '/control/positionMode', { dualSidePosition: false })).toMatchObject({ status: 400, body: { code: -4068 } });
  });
});
