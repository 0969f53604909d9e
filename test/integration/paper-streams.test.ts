/**
 * The paper exchange's WebSocket streams as real ccxt pro clients see them: clients built by createVenueClient (the
 * product's factory, paper mode) watch trades, tickers, balances, orders and positions on a paper server on a free
 * port; the control API moves prices, balances and orders and injects the stream faults (drop, silence, delay).
 */
import { AuthenticationError, Exchange, NetworkError } from 'ccxt';
import { VenueClient, createVenueClient } from '../../src/exchanges/ccxt-factory';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import type { PaperStreamStats } from '../../tooling/paper/streams';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';
import { TEST_CREDENTIALS } from './paper-fixture';

const OTHER = { apiKey: 'other-key-0123456789', secret: 'other-secret-abcdefghijklmnopqrstuvwxyz' };

const servers: PaperServer[] = [];
const clients: Exchange[] = [];

async function paper(options: { separateAccounts?: boolean } = {}): Promise<PaperServer> {
  // Pings every 250 ms so that the silence test sees them flow; Binance's own periods otherwise.
  const server = await startPaperServer({ credentials: [TEST_CREDENTIALS, OTHER], streamTimings: { spotPingMs: 250, futuresPingMs: 250 }, ...options });
  servers.push(server);
  return server;
}

function venue(server: PaperServer, exchange: 'binance' | 'binanceusdm', credentials = TEST_CREDENTIALS): VenueClient {
  const client = createVenueClient(
    { id: exchange === 'binance' ? 'spot' : 'perp', exchange, routeTo: server.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS },
    credentials,
  );
  clients.push(client.exchange);
  return client;
}

async function control(server: PaperServer, path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST'): Promise<unknown> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

const stats = (server: PaperServer) => control(server, '/control/streams') as Promise<PaperStreamStats>;

/** Polls the stream counters until `ready` holds (a subscription is in place before the test moves anything). */
async function until(server: PaperServer, ready: (s: PaperStreamStats) => boolean, what: string): Promise<PaperStreamStats> {
  for (let i = 0; i < 200; i++) {
    const s = await stats(server);
    if (ready(s)) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await stats(server))}`);
}

/** A promise with a flag saying whether it has settled, and its rejection handled (asserted later). */
function tracked<T>(promise: Promise<T>) {
  const state = { settled: false, promise };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

describe('market streams', () => {
  let server: PaperServer;
  beforeAll(async () => {
    server = await paper();
  });

  test('watchTradesForSymbols sees a /control/prices move on spot and on USDⓈ-M', async () => {
    const spot = venue(server, 'binance').exchange;
    const perp = venue(server, 'binanceusdm').exchange;
    const spotTrades = spot.watchTradesForSymbols(['BTC/USDT']);
    const perpTrades = perp.watchTradesForSymbols(['ETH/USDT:USDT']);
    await until(server, (s) => s.byStream['spot|btcusdt@trade'] === 1 && s.byStream['futures|ethusdt@trade'] === 1, 'trade subscriptions');
    await control(server, '/control/prices', { BTC: '41234.5', ETH: '2100' });
    const [s, p] = await Promise.all([spotTrades, perpTrades]);
    expect(s.at(-1)).toMatchObject({ symbol: 'BTC/USDT' });
    expect(Number(s.at(-1)!.price)).toBe(41234.5);
    expect(p.at(-1)).toMatchObject({ symbol: 'ETH/USDT:USDT' });
    expect(Number(p.at(-1)!.price)).toBe(2100);
  });

  test('watchTickers gets the 24hrTicker cadence with the moved price', async () => {
    const spot = venue(server, 'binance').exchange;
    const first = await spot.watchTickers(['SOL/USDT'], { name: 'ticker' });
    expect(Number(first['SOL/USDT']!.last)).toBe(100);
    await control(server, '/control/prices', { SOL: '123' });
    // The next 1000 ms tick carries the new price.
    let last = first['SOL/USDT']!.last;
    for (let i = 0; i < 5 && Number(last) !== 123; i++) last = (await spot.watchTickers(['SOL/USDT'], { name: 'ticker' }))['SOL/USDT']!.last;
    expect(Number(last)).toBe(123);
  });
});

describe('user data streams', () => {
  let server: PaperServer;
  beforeAll(async () => {
    server = await paper();
  });

  test('watchBalance on spot (WebSocket API signature subscription) sees a balance change', async () => {
    const spot = venue(server, 'binance').exchange;
    const balance = spot.watchBalance();
    await until(server, (s) => s.byAccount[`spot|${TEST_CREDENTIALS.apiKey}`] === 1, 'the ws-api subscription');
    await control(server, '/control/seed', { spotBalances: { USDT: '1234.5' } });
    expect(Number((await balance).USDT!.free)).toBe(1234.5);
  });

  test('watchBalance on USDⓈ-M (listenKey) sees a wallet change', async () => {
    const perp = venue(server, 'binanceusdm').exchange;
    const balance = perp.watchBalance();
    await until(server, (s) => s.byAccount[`futures|${TEST_CREDENTIALS.apiKey}`] === 1 && s.listenKeys === 1, 'the listenKey stream');
    await control(server, '/control/seed', { futuresBalances: { USDT: '5000' } });
    expect(Number((await balance).USDT!.total)).toBe(5000);
  });

  test('watchOrders sees orders placed through /control/orders (executionReport, ORDER_TRADE_UPDATE)', async () => {
    const spot = venue(server, 'binance').exchange;
    const perp = venue(server, 'binanceusdm').exchange;
    const spotOrders = spot.watchOrders();
    const perpOrders = perp.watchOrders();
    await until(
      server,
      (s) => s.byAccount[`spot|${TEST_CREDENTIALS.apiKey}`] === 2 && s.byAccount[`futures|${TEST_CREDENTIALS.apiKey}`] === 2,
      'the user streams of the second clients',
    );
    const placedSpot = (await control(server, '/control/orders', { market: 'spot', symbol: 'BTCUSDT', side: 'BUY', price: '100', quantity: '1' })) as { orderId: number };
    const placedPerp = (await control(server, '/control/orders', { market: 'futures', symbol: 'ETHUSDT', side: 'SELL', price: '9999', quantity: '2' })) as { orderId: number };
    const s = (await spotOrders).at(-1)!;
    expect(s).toMatchObject({ id: String(placedSpot.orderId), symbol: 'BTC/USDT', side: 'buy', status: 'open' });
    const p = (await perpOrders).at(-1)!;
    expect(p).toMatchObject({ id: String(placedPerp.orderId), symbol: 'ETH/USDT:USDT', side: 'sell', status: 'open' });
    // A cancel comes through too.
    const cancelled = spot.watchOrders();
    await perp.cancelOrder(String(placedPerp.orderId), 'ETH/USDT:USDT');
    await spot.cancelOrder(String(placedSpot.orderId), 'BTC/USDT');
    expect((await cancelled).find((o) => o.id === String(placedSpot.orderId))).toMatchObject({ status: 'canceled' });
  });

  test('watchPositions sees a position opened by a market order (ACCOUNT_UPDATE)', async () => {
    const perp = venue(server, 'binanceusdm').exchange;
    // The first call answers ccxt's REST snapshot (fetchPositionsSnapshot); the second waits for an event.
    expect((await perp.watchPositions()).filter((p) => p.symbol === 'BNB/USDT:USDT')).toHaveLength(0);
    // ccxt answers that snapshot before it connects: the second call opens the user stream.
    const key = `futures|${TEST_CREDENTIALS.apiKey}`;
    const before = (await stats(server)).byAccount[key] ?? 0;
    const next = perp.watchPositions();
    await until(server, (s) => (s.byAccount[key] ?? 0) === before + 1, 'the positions stream');
    await control(server, '/control/orders', { market: 'futures', symbol: 'BNBUSDT', side: 'BUY', type: 'MARKET', quantity: '3' });
    const position = (await next).find((p) => p.symbol === 'BNB/USDT:USDT');
    expect(Number(position?.contracts)).toBe(3);
    expect(position?.side).toBe('long');
  });

  test('a bad secret is refused on the spot ws-api subscribe (-1022), an unknown key on listenKey (-2015)', async () => {
    const spotKey = `spot|${TEST_CREDENTIALS.apiKey}`;
    const subscribed = (await stats(server)).byAccount[spotKey];
    const badSpot = venue(server, 'binance', { ...TEST_CREDENTIALS, secret: 'not-the-secret' }).exchange;
    await expect(badSpot.watchBalance()).rejects.toThrow(/-1022|Signature for this request is not valid/);
    const unknownPerp = venue(server, 'binanceusdm', { apiKey: 'nobody-0123456789', secret: 'x' }).exchange;
    await expect(unknownPerp.watchBalance()).rejects.toThrow(AuthenticationError);
    await expect(unknownPerp.watchBalance()).rejects.toThrow(/-2015/);
    // Neither got a subscription (the refused ws-api session stays open, as Binance's does).
    const s = await stats(server);
    expect(s.byAccount['futures|nobody-0123456789']).toBeUndefined();
    expect(s.byAccount[spotKey]).toBe(subscribed);
  });
});

describe('stream faults', () => {
  let server: PaperServer;
  beforeAll(async () => {
    server = await paper();
  });

  test('drop: every market connection closes, the pending watch fails, and the next watch reconnects', async () => {
    const spot = venue(server, 'binance').exchange;
    const pending = spot.watchTradesForSymbols(['XRP/USDT']);
    pending.catch(() => undefined);
    await until(server, (s) => s.byStream['spot|xrpusdt@trade'] === 1, 'the trade subscription');
    const dropped = (await control(server, '/control/streams/faults', { action: 'drop', streams: 'market' })) as { dropped: number };
    expect(dropped.dropped).toBeGreaterThanOrEqual(1);
    await expect(pending).rejects.toThrow(NetworkError);
    const again = spot.watchTradesForSymbols(['XRP/USDT']);
    await until(server, (s) => s.byStream['spot|xrpusdt@trade'] === 1, 'the re-subscription');
    await control(server, '/control/prices', { XRP: '0.75' });
    expect(Number((await again).at(-1)!.price)).toBe(0.75);
  });

  test('drop of user streams only leaves market streams open', async () => {
    const perp = venue(server, 'binanceusdm').exchange;
    const spot = venue(server, 'binance').exchange;
    const balance = perp.watchBalance();
    balance.catch(() => undefined);
    const trades = tracked(spot.watchTradesForSymbols(['ADA/USDT']));
    await until(server, (s) => s.connections.futuresUser >= 1 && s.byStream['spot|adausdt@trade'] === 1, 'both streams');
    await control(server, '/control/streams/faults', { action: 'drop', streams: 'user' });
    await expect(balance).rejects.toThrow(NetworkError);
    expect((await stats(server)).byStream['spot|adausdt@trade']).toBe(1);
    await control(server, '/control/prices', { ADA: '0.5' });
    expect(Number((await trades.promise).at(-1)!.price)).toBe(0.5);
    // The user stream comes back on the next watch.
    const again = perp.watchBalance();
    await until(server, (s) => s.byAccount[`futures|${TEST_CREDENTIALS.apiKey}`] === 1, 'the user stream again');
    await control(server, '/control/seed', { futuresBalances: { USDT: '777' } });
    expect(Number((await again).USDT!.total)).toBe(777);
  });

  test('silence: the connection stays open and pings flow, but no event arrives until the silence is cleared', async () => {
    const spot = venue(server, 'binance').exchange;
    const first = spot.watchBalance();
    await until(server, (s) => s.byAccount[`spot|${TEST_CREDENTIALS.apiKey}`] === 1, 'the ws-api subscription');
    await control(server, '/control/seed', { spotBalances: { BTC: '1' } });
    expect(Number((await first).BTC!.free)).toBe(1);

    await control(server, '/control/streams/faults', { action: 'silence', streams: 'user' });
    const silenced = tracked(spot.watchBalance());
    const before = await stats(server);
    await control(server, '/control/seed', { spotBalances: { BTC: '2' } });
    const during = await stats(server);
    // The server dropped the event (counted before the seed call answered) and kept the connection.
    expect(during.events.silenced).toBeGreaterThan(before.events.silenced);
    expect(during.connections.wsApi).toBe(before.connections.wsApi);
    await until(server, (s) => s.pings.pongs > during.pings.pongs, 'a ping answered while silenced');
    expect(silenced.settled).toBe(false);

    await control(server, '/control/streams/faults', undefined, 'DELETE');
    await control(server, '/control/seed', { spotBalances: { BTC: '3' } });
    // The silenced value never arrived: the pending watch resolves with the one sent after the silence.
    expect(Number((await silenced.promise).BTC!.free)).toBe(3);
  });

  test('delay: events arrive, late; clearing the fault restores prompt delivery', async () => {
    const spot = venue(server, 'binance').exchange;
    await control(server, '/control/streams/faults', { action: 'delay', ms: 1_500 });
    const trades = tracked(spot.watchTradesForSymbols(['DOT/USDT']));
    await until(server, (s) => s.byStream['spot|dotusdt@trade'] === 1, 'the trade subscription');
    await control(server, '/control/prices', { DOT: '6.5' });
    const s = await stats(server);
    expect(s.events.delayed).toBeGreaterThanOrEqual(1);
    expect(s.faults.delayMs).toBe(1_500);
    expect(Number((await trades.promise).at(-1)!.price)).toBe(6.5);
    await control(server, '/control/streams/faults', undefined, 'DELETE');
    expect((await stats(server)).faults.delayMs).toBe(0);
  });
});

describe('separate accounts', () => {
  let server: PaperServer;
  beforeAll(async () => {
    server = await paper({ separateAccounts: true });
  });

  test("one key's user streams do not see another's changes; markets and prices stay shared", async () => {
    const mine = { spot: venue(server, 'binance').exchange, perp: venue(server, 'binanceusdm').exchange };
    const theirs = { spot: venue(server, 'binance', OTHER).exchange, perp: venue(server, 'binanceusdm', OTHER).exchange };
    const mySpot = tracked(mine.spot.watchBalance());
    const myPerp = tracked(mine.perp.watchBalance());
    const theirSpot = theirs.spot.watchBalance();
    const theirPerp = theirs.perp.watchBalance();
    await until(
      server,
      (s) => [TEST_CREDENTIALS, OTHER].every((c) => s.byAccount[`spot|${c.apiKey}`] === 1 && s.byAccount[`futures|${c.apiKey}`] === 1),
      'both accounts on both venues',
    );
    await control(server, '/control/seed', { account: OTHER.apiKey, spotBalances: { ETH: '7' }, futuresBalances: { USDT: '900' } });
    expect(Number((await theirSpot).ETH!.free)).toBe(7);
    expect(Number((await theirPerp).USDT!.total)).toBe(900);
    expect(mySpot.settled).toBe(false);
    expect(myPerp.settled).toBe(false);
    // The REST books are apart too, and the default account is the first credential's.
    expect((await control(server, `/control/state?account=${OTHER.apiKey}`)) as { spotBalances: object }).toMatchObject({ spotBalances: { ETH: '7' } });
    expect(((await control(server, '/control/state')) as { spotBalances: object }).spotBalances).toEqual({});
    expect(Number((await mine.spot.fetchBalance()).ETH?.free ?? 0)).toBe(0);

    await control(server, '/control/seed', { spotBalances: { ETH: '1' }, futuresBalances: { USDT: '100' } });
    expect(Number((await mySpot.promise).ETH!.free)).toBe(1);
    expect(Number((await myPerp.promise).USDT!.total)).toBe(100);

    // Orders: theirs reach their stream only; prices reach everyone's market streams.
    const theirOrders = theirs.spot.watchOrders();
    const myOrders = tracked(mine.spot.watchOrders());
    const placed = (await control(server, '/control/orders', { account: OTHER.apiKey, market: 'spot', symbol: 'ETHUSDT', side: 'SELL', price: '5000', quantity: '1' })) as { orderId: number };
    expect((await theirOrders).at(-1)).toMatchObject({ id: String(placed.orderId), status: 'open' });
    expect(myOrders.settled).toBe(false);
    expect(await mine.spot.fetchOpenOrders('ETH/USDT')).toHaveLength(0);
    const myTrades = mine.spot.watchTradesForSymbols(['LINK/USDT']);
    const theirTrades = theirs.spot.watchTradesForSymbols(['LINK/USDT']);
    await until(server, (s) => s.byStream['spot|linkusdt@trade'] === 2, 'both trade subscriptions');
    await control(server, '/control/prices', { LINK: '16' });
    expect(Number((await myTrades).at(-1)!.price)).toBe(16);
    expect(Number((await theirTrades).at(-1)!.price)).toBe(16);
  });

  test('an unknown account in the control API is a 404', async () => {
    const res = await fetch(`${server.url}/control/state?account=nobody`);
    expect(res.status).toBe(404);
  });
});
