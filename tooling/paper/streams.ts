/**
 * The paper exchange's WebSocket face: what ccxt 4.5.84's Binance *pro* watch methods connect to and consume, served
 * on the paper HTTP server's port (its `upgrade` event), with Binance's paths behind a host prefix:
 *
 * - `/stream.binance.com/ws[/<anything>]`, `/stream.binance.com/stream?streams=a/b`: spot market streams;
 * - `/fstream.binance.com/{public,market}/ws[/...]` (and `/fstream.binance.com/ws`, `/stream?streams=`): USDⓈ-M
 *   market streams;
 * - `/fstream.binance.com/private/ws?listenKey=<key>` (and `/fstream.binance.com/ws/<key>`): USDⓈ-M user data;
 * - `/ws-api.binance.com/ws-api/v3`: the spot WebSocket API, for `userDataStream.subscribe.signature`.
 *
 * The host prefix is needed because Binance serves these from different hosts and the paper has one port; keeping
 * the host's name in the path also keeps ccxt's own URL tests true (ccxt pro binance.js `isSpotUrl` looks for
 * "/stream" in the URL to tell a spot trade from a contract one; `getWsUrl('future', category)` rewrites a URL
 * ending in "/ws" into ".../public/ws" or ".../market/ws").
 *
 * Events come from {@link PaperExchange.onChange}: prices → trade/aggTrade at once, 24hrTicker/24hrMiniTicker at
 * the next 1000 ms tick; spot balances → outboundAccountPosition; futures wallet/positions → ACCOUNT_UPDATE; orders
 * → executionReport (spot), ORDER_TRADE_UPDATE (USDⓈ-M), ALGO_UPDATE (USDⓈ-M conditional). Faults (drop, silence,
 * delay) and counters are driven by the control API (server.ts, docs/paper-exchange.md).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { Decimal, toDecimalString } from '../../src/domain/money';
import { PaperChange, PaperExchange, PaperOrder, PaperPosition } from './exchange';

/** The Binance hosts whose paths the paper serves under `/<host>/...`. */
export const PAPER_WS_HOSTS = { spot: 'stream.binance.com', futures: 'fstream.binance.com', wsApi: 'ws-api.binance.com' } as const;

export type PaperVenue = 'spot' | 'futures';
/** Which connections a fault applies to: market streams, user streams (ws-api and listenKey), or both. */
export const STREAM_GROUPS = ['all', 'market', 'user'] as const;
export type StreamGroup = (typeof STREAM_GROUPS)[number];

/** A refused signed request, in Binance's terms (the same answers as the REST signature check in server.ts). */
export interface PaperAuthError {
  status: number;
  code: number;
  msg: string;
}

export interface PaperStreamsOptions {
  server: Server;
  /** The book that owns markets and prices: its price changes become trades and tickers. */
  markets: PaperExchange;
  /** Each account's book and the API keys that act on it (one book for every key unless accounts are separate). */
  accounts: { book: PaperExchange; apiKeys: string[] }[];
  /**
   * Verifies a signed WebSocket API request: the key, its status, the HMAC over the sorted `key=value` pairs and the
   * timestamp window, exactly as the REST check does (server.ts `verifySigned`).
   */
  verifySigned(apiKey: string | undefined, payload: string): { ok: true } | ({ ok: false } & PaperAuthError);
  /** The paper venue's clock (server.ts `serverTime`), for event times. */
  now(): number;
  timings?: Partial<PaperStreamTimings>;
}

/** Every period the streams keep, with Binance's values by default (sources at {@link DEFAULT_STREAM_TIMINGS}). */
export interface PaperStreamTimings {
  /** Spot market streams and the WebSocket API ping every 20 s. */
  spotPingMs: number;
  /** A spot / ws-api connection with no pong this long after a ping is disconnected (one minute). */
  spotPongTimeoutMs: number;
  /** USDⓈ-M streams ping every 3 minutes. */
  futuresPingMs: number;
  /** A USDⓈ-M connection with no pong for 10 minutes is disconnected. */
  futuresPongTimeoutMs: number;
  /** 24hrTicker / 24hrMiniTicker cadence. */
  tickerMs: number;
  /** A listenKey lives this long after its creation or last keepalive. */
  listenKeyValidityMs: number;
  /** Every connection is closed at this age. */
  maxConnectionMs: number;
}

/**
 * - ping 20 s, pong within a minute, 24-hour connections: spot "WebSocket Streams" → "General WSS information"
 *   (binance-spot-api-docs web-socket-streams.md) and "WebSocket API" → "General API Information" (web-socket-api.md);
 * - ping every 3 minutes, pong within 10 minutes, 24 hours: USDⓈ-M "Websocket Market Streams" → "Connect"
 *   (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams);
 * - `<symbol>@ticker` / `@miniTicker` "Update Speed: 1000ms" (web-socket-streams.md, "Individual Symbol Ticker
 *   Streams"); trade and aggTrade streams are "Real-time";
 * - "A User Data Stream listenKey is valid for 60 minutes after creation. Doing a PUT on a listenKey will extend its
 *   validity for 60 minutes." (USDⓈ-M "User Data Streams" → "Connect").
 */
export const DEFAULT_STREAM_TIMINGS: PaperStreamTimings = {
  spotPingMs: 20_000,
  spotPongTimeoutMs: 60_000,
  futuresPingMs: 180_000,
  futuresPongTimeoutMs: 600_000,
  tickerMs: 1_000,
  listenKeyValidityMs: 3_600_000,
  maxConnectionMs: 24 * 3_600_000,
};

/** One WebSocket connection. Kept small: a benchmark opens two per account for a thousand accounts. */
interface Conn {
  ws: WebSocket;
  venue: PaperVenue;
  group: 'market' | 'user';
  /** `/stream?streams=` connections wrap each event as {"stream": name, "data": event}. */
  combined: boolean;
  openedAt: number;
  /** When the unanswered ping was sent; undefined once the pong came. */
  pingSentAt?: number;
  /** Market: subscribed stream names. */
  streams?: Set<string>;
  /** WebSocket API: API key → subscriptionId of each `userDataStream.subscribe.signature`. */
  subscriptions?: Map<string, number>;
  nextSubscriptionId?: number;
  /** USDⓈ-M user stream: the listenKey it was opened with, and whose key that is. */
  listenKey?: string;
  apiKey?: string;
}

interface ListenKey {
  apiKey: string;
  expiresAt: number;
}

export interface PaperStreamStats {
  connections: { spotMarket: number; futuresMarket: number; wsApi: number; futuresUser: number; total: number };
  subscriptions: { market: number; user: number };
  /** Connections per market stream, "spot|btcusdt@trade" → n. */
  byStream: Record<string, number>;
  /** User-stream connections per account, "spot|<apiKey>" / "futures|<apiKey>" → n. */
  byAccount: Record<string, number>;
  listenKeys: number;
  /** Events written, dropped by a silence, and waiting out a delay. */
  events: { sent: number; silenced: number; delayed: number };
  /** Ping frames sent and pong frames received. */
  pings: { sent: number; pongs: number };
  faults: { silencedUntil: Partial<Record<'market' | 'user', number | 'untilCleared'>>; delayMs: number };
}

export interface PaperStreams {
  /** POST /fapi/v1/listenKey: the key's active listenKey (its validity extended), or a new one. */
  createListenKey(apiKey: string): string;
  /** PUT /fapi/v1/listenKey: extends the key's listenKey; undefined when it has none (Binance -1125). */
  keepAliveListenKey(apiKey: string): string | undefined;
  /** DELETE /fapi/v1/listenKey: closes the stream and forgets the listenKey. */
  deleteListenKey(apiKey: string): void;
  /** Closes every connection of the group abruptly (no close frame: the client sees code 1006). */
  drop(group: StreamGroup): number;
  /** Connections stay open and pings flow, but events of the group are not sent; for `ms`, or until cleared. */
  silence(group: StreamGroup, ms?: number): void;
  /** Sends every event `ms` late (0 clears it). */
  delay(ms: number): void;
  clearFaults(): void;
  stats(): PaperStreamStats;
  close(): void;
}

/** Binance prints balances with 8 decimals; more digits are kept. */
function eightDecimals(amount: string): string {
  const d = new Decimal(amount);
  return toDecimalString(d, Math.max(8, d.decimalPlaces()));
}

type Route =
  | { kind: 'market'; venue: PaperVenue; combined: boolean; streams: string[] }
  | { kind: 'wsApi' }
  | { kind: 'futuresUser'; listenKey: string; combined: boolean };

export function attachPaperStreams(options: PaperStreamsOptions): PaperStreams {
  const timings: PaperStreamTimings = { ...DEFAULT_STREAM_TIMINGS, ...options.timings };
  const { markets, now } = options;
  const wss = new WebSocketServer({ noServer: true });
  const conns = new Set<Conn>();
  /** `${venue}|${stream}` → connections subscribed to it. */
  const marketSubs = new Map<string, Set<Conn>>();
  /** `${venue}|${apiKey}` → user-stream connections receiving that key's events. */
  const userSubs = new Map<string, Set<Conn>>();
  const listenKeys = new Map<string, ListenKey>();
  const listenKeyOf = new Map<string, string>();
  /** Markets whose price changed since the last ticker tick, `${venue}|${symbol}` (for the `!…@arr` streams). */
  const changedSinceTick = new Set<string>();
  const silencedUntil: Partial<Record<'market' | 'user', number>> = {};
  let delayMs = 0;
  let sent = 0;
  let silencedCount = 0;
  let delayedCount = 0;
  let pingsSent = 0;
  let pongs = 0;
  let tradeId = 1;
  let closed = false;

  const keyOf = (venue: PaperVenue, name: string) => `${venue}|${name}`;
  const add = (index: Map<string, Set<Conn>>, key: string, conn: Conn) => {
    let set = index.get(key);
    if (!set) index.set(key, (set = new Set()));
    set.add(conn);
  };
  const remove = (index: Map<string, Set<Conn>>, key: string, conn: Conn) => {
    const set = index.get(key);
    if (!set) return;
    set.delete(conn);
    if (set.size === 0) index.delete(key);
  };

  function isSilenced(group: 'market' | 'user'): boolean {
    const until = silencedUntil[group];
    if (until === undefined) return false;
    if (until <= Date.now()) {
      delete silencedUntil[group];
      return false;
    }
    return true;
  }

  /** Sends an event (not an answer) to one connection, through the silence and delay faults. */
  function sendEvent(conn: Conn, raw: string): void {
    if (isSilenced(conn.group)) {
      silencedCount += 1;
      return;
    }
    const write = () => {
      if (conn.ws.readyState !== WebSocket.OPEN) return;
      conn.ws.send(raw);
      sent += 1;
    };
    if (delayMs > 0) {
      delayedCount += 1;
      setTimeout(() => {
        delayedCount -= 1;
        write();
      }, delayMs).unref();
    } else write();
  }

  function answer(conn: Conn, body: unknown): void {
    if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(body));
  }

  /** Fans one market event out; serialized once, wrapped per connection only for combined streams. */
  function publishMarket(venue: PaperVenue, stream: string, event: () => unknown): void {
    const subscribers = marketSubs.get(keyOf(venue, stream));
    if (!subscribers) return;
    const raw = JSON.stringify(event());
    let wrapped: string | undefined;
    for (const conn of subscribers) {
      if (conn.combined) sendEvent(conn, (wrapped ??= `{"stream":${JSON.stringify(stream)},"data":${raw}}`));
      else sendEvent(conn, raw);
    }
  }

  /**
   * Spot user data arrives on the WebSocket API wrapped as {"subscriptionId": n, "event": {...}} (spot
   * user-data-stream.md, every payload); USDⓈ-M user data is the bare event on the listenKey connection.
   */
  function publishUser(venue: PaperVenue, apiKeys: string[], event: unknown): void {
    let raw: string | undefined;
    for (const apiKey of apiKeys) {
      const subscribers = userSubs.get(keyOf(venue, apiKey));
      if (!subscribers) continue;
      raw ??= JSON.stringify(event);
      for (const conn of subscribers) {
        if (venue === 'spot') sendEvent(conn, `{"subscriptionId":${conn.subscriptions?.get(apiKey) ?? 0},"event":${raw}}`);
        else if (conn.combined) sendEvent(conn, `{"stream":${JSON.stringify(conn.listenKey)},"data":${raw}}`);
        else sendEvent(conn, raw);
      }
    }
  }

  // ---- market events ------------------------------------------------------------------------------------------
  function onPrices(assets: string[]): void {
    const moved = new Set(assets);
    for (const listing of markets.markets()) {
      if (!moved.has(listing.base) && !moved.has(listing.quote)) continue;
      for (const venue of ['spot', 'futures'] as const) {
        if (!listing[venue]) continue;
        changedSinceTick.add(keyOf(venue, listing.symbol));
        const lower = listing.symbol.toLowerCase();
        const price = () => toDecimalString(markets.priceOfSymbol(listing.symbol, venue));
        // "Trade Streams" / "Aggregate Trade Streams", Update Speed: Real-time (web-socket-streams.md; USDⓈ-M
        // "Aggregate Trade Streams" alike): one trade of 1 unit at the new price, pushed at once.
        publishMarket(venue, `${lower}@trade`, () => {
          const t = now();
          return { e: 'trade', E: t, s: listing.symbol, t: tradeId++, p: price(), q: '1', T: t, m: false, ...(venue === 'spot' ? { M: true } : { X: 'MARKET' }) };
        });
        publishMarket(venue, `${lower}@aggTrade`, () => {
          const t = now();
          const id = tradeId++;
          return { e: 'aggTrade', E: t, s: listing.symbol, a: id, p: price(), q: '1', f: id, l: id, T: t, m: false, ...(venue === 'spot' ? { M: true } : {}) };
        });
      }
    }
  }

  /** A 24hrTicker or 24hrMiniTicker event; the paper keeps no history, so open = high = low = last (as REST). */
  function tickerEvent(venue: PaperVenue, symbol: string, mini: boolean) {
    const last = toDecimalString(markets.priceOfSymbol(symbol, venue));
    const t = now();
    if (mini) return { e: '24hrMiniTicker', E: t, s: symbol, c: last, o: last, h: last, l: last, v: '1000', q: '1000' };
    return {
      e: '24hrTicker', E: t, s: symbol, p: '0', P: '0', w: last, ...(venue === 'spot' ? { x: last } : {}), c: last, Q: '1',
      ...(venue === 'spot' ? { b: last, B: '1', a: last, A: '1' } : {}), o: last, h: last, l: last, v: '1000', q: '1000',
      O: t - 86_400_000, C: t, F: 1, L: 2, n: 1,
    };
  }

  /**
   * Every 1000 ms ("Update Speed: 1000ms", web-socket-streams.md "Individual Symbol Ticker Streams" and "Individual
   * Symbol Mini Ticker Stream"): each subscribed `<symbol>@ticker` / `@miniTicker`, and for `!ticker@arr` /
   * `!miniTicker@arr` the markets that changed ("only tickers that have changed will be present in the array").
   */
  function tickerTick(): void {
    const changed = [...changedSinceTick];
    changedSinceTick.clear();
    for (const key of marketSubs.keys()) {
      const bar = key.indexOf('|');
      const venue = key.slice(0, bar) as PaperVenue;
      const stream = key.slice(bar + 1);
      if (stream === '!ticker@arr' || stream === '!miniTicker@arr') {
        if (changed.length === 0) continue;
        const mini = stream === '!miniTicker@arr';
        const symbols = changed.filter((k) => k.startsWith(`${venue}|`)).map((k) => k.slice(venue.length + 1));
        const live = symbols.filter((s) => markets.listings.get(s)?.[venue]);
        if (live.length > 0) publishMarket(venue, stream, () => live.map((s) => tickerEvent(venue, s, mini)));
        continue;
      }
      const at = stream.indexOf('@');
      const channel = stream.slice(at + 1);
      if (at <= 0 || (channel !== 'ticker' && channel !== 'miniTicker')) continue;
      const symbol = stream.slice(0, at).toUpperCase();
      if (!markets.listings.get(symbol)?.[venue]) continue;
      publishMarket(venue, stream, () => tickerEvent(venue, symbol, channel === 'miniTicker'));
    }
  }

  // ---- user events --------------------------------------------------------------------------------------------
  /** executionReport (spot user-data-stream.md "Order Update"). */
  function executionReport(o: PaperOrder, status: 'NEW' | 'FILLED' | 'CANCELED', fillPrice?: string) {
    const t = now();
    const filled = status === 'FILLED';
    const quoteQty = filled && fillPrice ? toDecimalString(new Decimal(fillPrice).times(o.origQty)) : '0';
    return {
      e: 'executionReport', E: t, s: o.symbol, c: o.clientOrderId, S: o.side, o: o.type, f: 'GTC', q: o.origQty,
      p: o.price, P: o.stopPrice, F: '0.00000000', g: -1, C: status === 'CANCELED' ? o.clientOrderId : '',
      x: filled ? 'TRADE' : status, X: status, r: 'NONE', i: o.orderId, l: filled ? o.origQty : '0', z: filled ? o.origQty : '0',
      L: filled ? (fillPrice ?? '0') : '0', n: '0', N: null, T: t, t: filled ? tradeId++ : -1, I: tradeId++, w: status === 'NEW' && o.type !== 'MARKET',
      m: false, M: false, O: o.time, Z: quoteQty, Y: quoteQty, Q: '0', W: o.time, V: 'EXPIRE_MAKER',
    };
  }

  /** ORDER_TRADE_UPDATE (USDⓈ-M "Event: Order Update"), or ALGO_UPDATE for a conditional (algo) order. */
  function futuresOrderEvent(o: PaperOrder, status: 'NEW' | 'FILLED' | 'CANCELED', fillPrice?: string) {
    const t = now();
    if (o.algo) {
      // ALGO_UPDATE, as ccxt pro binance.js handleOrderUpdate documents it (caid, aid, X, tp, ...).
      return {
        e: 'ALGO_UPDATE', T: t, E: t,
        o: {
          caid: o.clientOrderId, aid: o.orderId, at: 'CONDITIONAL', o: o.type, s: o.symbol, S: o.side, ps: o.positionSide,
          f: 'GTC', q: o.origQty, X: status, ai: '', ap: '0', aq: '0', act: '0', tp: o.stopPrice, p: o.price,
          V: 'EXPIRE_MAKER', wt: 'CONTRACT_PRICE', pm: 'NONE', cp: false, pP: false, R: o.reduceOnly, tt: 0, gtd: 0,
        },
      };
    }
    const filled = status === 'FILLED';
    return {
      e: 'ORDER_TRADE_UPDATE', E: t, T: t,
      o: {
        s: o.symbol, c: o.clientOrderId, S: o.side, o: o.type, f: 'GTC', q: o.origQty, p: o.price,
        ap: filled ? (fillPrice ?? '0') : '0', sp: o.stopPrice, x: filled ? 'TRADE' : status, X: status, i: o.orderId,
        l: filled ? o.origQty : '0', z: filled ? o.origQty : '0', L: filled ? (fillPrice ?? '0') : '0', n: '0', N: 'USDT',
        T: t, t: filled ? tradeId++ : 0, b: '0', a: '0', m: false, R: o.reduceOnly, wt: 'CONTRACT_PRICE', ot: o.type,
        ps: o.positionSide, cp: false, rp: '0', pP: false, si: 0, ss: 0, V: 'EXPIRE_MAKER', pm: 'NONE', gtd: 0,
      },
    };
  }

  /**
   * ACCOUNT_UPDATE (USDⓈ-M "Event: Balance and Position Update"): the changed assets' wallet balances and the changed
   * positions ("Only symbols of changed positions will be pushed"), a closed one with "pa": "0".
   */
  function accountUpdate(book: PaperExchange, assets: string[], positions: PaperPosition[], reason: string) {
    const t = now();
    return {
      e: 'ACCOUNT_UPDATE', E: t, T: t,
      a: {
        m: reason,
        B: assets.map((a) => {
          const wallet = book.futuresBalances.get(a) ?? '0';
          return { a, wb: wallet, cw: wallet, bc: '0' };
        }),
        P: positions.map((p) => ({
          s: p.symbol, pa: p.positionAmt, ep: p.entryPrice, bep: p.entryPrice, cr: '0',
          up: new Decimal(p.positionAmt).isZero() ? '0' : toDecimalString(book.unrealizedPnl(p)), mt: 'cross', iw: '0',
          ps: p.positionSide ?? 'BOTH',
        })),
      },
    };
  }

  function onAccountChange(book: PaperExchange, apiKeys: string[], change: PaperChange): void {
    switch (change.kind) {
      case 'prices':
        return;
      case 'spotBalances': {
        // outboundAccountPosition: "sent any time an account balance has changed and contains the assets that were
        // possibly changed" (spot user-data-stream.md "Account Update"), absolute free and locked.
        if (!userSubs.size) return;
        const t = now();
        publishUser('spot', apiKeys, {
          e: 'outboundAccountPosition', E: t, u: t,
          B: change.assets.map((a) => ({ a, f: eightDecimals(book.spotBalances.get(a) ?? '0'), l: '0.00000000' })),
        });
        return;
      }
      case 'futuresAccount':
        if (!userSubs.size) return;
        publishUser('futures', apiKeys, accountUpdate(book, change.assets, change.positions, change.reason));
        return;
      case 'order':
        if (!userSubs.size) return;
        if (change.order.market === 'spot') publishUser('spot', apiKeys, executionReport(change.order, change.status, change.fillPrice));
        else publishUser('futures', apiKeys, futuresOrderEvent(change.order, change.status, change.fillPrice));
        return;
      default: {
        const never: never = change;
        return never;
      }
    }
  }

  const unsubscribes: (() => void)[] = [];
  unsubscribes.push(markets.onChange((c) => (c.kind === 'prices' ? onPrices(c.assets) : undefined)));
  for (const { book, apiKeys } of options.accounts) unsubscribes.push(book.onChange((c) => onAccountChange(book, apiKeys, c)));

  // ---- connections --------------------------------------------------------------------------------------------
  function routeOf(rawUrl: string): Route | undefined {
    const url = new URL(rawUrl, 'http://paper');
    const parts = url.pathname.split('/').filter((p) => p.length > 0);
    const [host, ...rest] = parts;
    const streamsParam = () => (url.searchParams.get('streams') ?? '').split('/').filter((s) => s.length > 0);
    if (host === PAPER_WS_HOSTS.wsApi) return rest.join('/') === 'ws-api/v3' ? { kind: 'wsApi' } : undefined;
    if (host === PAPER_WS_HOSTS.spot) {
      // "Raw streams are accessed at /ws/<streamName>"; "Combined streams are accessed at /stream?streams=…"
      // (web-socket-streams.md "General WSS information"). ccxt connects to /ws/<n> and SUBSCRIBEs.
      if (rest[0] === 'ws') return { kind: 'market', venue: 'spot', combined: false, streams: rest.slice(1).filter((s) => s.includes('@')) };
      if (rest[0] === 'stream' && rest.length === 1) return { kind: 'market', venue: 'spot', combined: true, streams: streamsParam() };
      return undefined;
    }
    if (host === PAPER_WS_HOSTS.futures) {
      // USDⓈ-M since 2025: /public and /market for market data, /private for user data (ccxt pro binance.js
      // getWsUrl / getFutureWsCategory / getPrivateWsUrl: "/private/ws?listenKey=<key>"); the plain /ws path too.
      let path = rest;
      const category = ['public', 'market', 'private'].includes(path[0] ?? '') ? path[0] : undefined;
      if (category) path = path.slice(1);
      const combined = path[0] === 'stream' && path.length === 1;
      if (path[0] !== 'ws' && !combined) return undefined;
      const named = combined ? streamsParam() : path.slice(1);
      const key = url.searchParams.get('listenKey') ?? named.find((s) => listenKeys.has(s));
      if (category === 'private' || (key !== undefined && !named.some((s) => s.includes('@')))) {
        return key === undefined ? undefined : { kind: 'futuresUser', listenKey: key, combined };
      }
      return { kind: 'market', venue: 'futures', combined, streams: named.filter((s) => s.includes('@')) };
    }
    return undefined;
  }

  function refuse(socket: Duplex, status: string, body: unknown): void {
    const text = JSON.stringify(body);
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (closed) return void socket.destroy();
    const route = routeOf(req.url ?? '/');
    if (!route) return refuse(socket, '404 Not Found', { code: -1000, msg: `paper exchange: no stream endpoint ${(req.url ?? '').split('?')[0]}` });
    if (route.kind === 'futuresUser') {
      const entry = listenKeys.get(route.listenKey);
      // An unknown or expired listenKey: Binance's "-1125 This listenKey does not exist." (USDⓈ-M error codes).
      if (!entry || entry.expiresAt <= Date.now()) return refuse(socket, '400 Bad Request', { code: -1125, msg: 'This listenKey does not exist.' });
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, route));
  }

  function onConnection(ws: WebSocket, route: Route): void {
    const conn: Conn =
      route.kind === 'market'
        ? { ws, venue: route.venue, group: 'market', combined: route.combined, openedAt: Date.now(), streams: new Set() }
        : route.kind === 'wsApi'
          ? { ws, venue: 'spot', group: 'user', combined: false, openedAt: Date.now(), subscriptions: new Map(), nextSubscriptionId: 0 }
          : { ws, venue: 'futures', group: 'user', combined: route.combined, openedAt: Date.now(), listenKey: route.listenKey, apiKey: listenKeys.get(route.listenKey)!.apiKey };
    conns.add(conn);
    if (route.kind === 'market') for (const s of route.streams) subscribe(conn, s);
    if (route.kind === 'futuresUser') add(userSubs, keyOf('futures', conn.apiKey!), conn);
    ws.on('pong', () => {
      conn.pingSentAt = undefined;
      pongs += 1;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString();
      if (route.kind === 'market') onMarketRequest(conn, text);
      else if (route.kind === 'wsApi') onWsApiRequest(conn, text);
    });
    ws.on('error', () => undefined);
    ws.on('close', () => forget(conn));
  }

  function subscribe(conn: Conn, stream: string): void {
    conn.streams!.add(stream);
    add(marketSubs, keyOf(conn.venue, stream), conn);
  }

  function forget(conn: Conn): void {
    conns.delete(conn);
    for (const s of conn.streams ?? []) remove(marketSubs, keyOf(conn.venue, s), conn);
    for (const apiKey of conn.subscriptions?.keys() ?? []) remove(userSubs, keyOf('spot', apiKey), conn);
    if (conn.apiKey !== undefined) remove(userSubs, keyOf('futures', conn.apiKey), conn);
  }

  /**
   * Live subscribing: {"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": n}
   * answered {"result": null, "id": n} (or the list), errors as the table in web-socket-streams.md "Live Subscribing/
   * Unsubscribing to streams" ({"code": 2, "msg": "Invalid request: ..."}, {"code": 3, "msg": "Invalid JSON: ..."}).
   */
  function onMarketRequest(conn: Conn, text: string): void {
    let msg: { method?: unknown; params?: unknown; id?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return answer(conn, { code: 3, msg: 'Invalid JSON: expected value at line 1 column 1' });
    }
    const id = msg.id;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      return answer(conn, { code: 2, msg: 'Invalid request: request ID must be an unsigned integer', id: id ?? null });
    }
    if (msg.method === undefined) return answer(conn, { code: 2, msg: 'Invalid request: missing field `method`', id });
    const params = Array.isArray(msg.params) ? msg.params.filter((p): p is string => typeof p === 'string') : [];
    switch (msg.method) {
      case 'SUBSCRIBE':
        for (const s of params) subscribe(conn, s);
        return answer(conn, { result: null, id });
      case 'UNSUBSCRIBE':
        for (const s of params) {
          conn.streams!.delete(s);
          remove(marketSubs, keyOf(conn.venue, s), conn);
        }
        return answer(conn, { result: null, id });
      case 'LIST_SUBSCRIPTIONS':
        return answer(conn, { result: [...conn.streams!], id });
      default:
        return answer(conn, {
          code: 2,
          msg: `Invalid request: unknown variant ${JSON.stringify(msg.method)}, expected one of \`SUBSCRIBE\`, \`UNSUBSCRIBE\`, \`LIST_SUBSCRIPTIONS\`, \`SET_PROPERTY\`, \`GET_PROPERTY\``,
          id,
        });
    }
  }

  /**
   * The spot WebSocket API, the requests ccxt sends for user data: `userDataStream.subscribe.signature` (params
   * apiKey, timestamp, signature, optional recvWindow; "sort them in alphabetical order by parameter name", "Format
   * parameters as parameter=value pairs separated by &" and HMAC-SHA256 them: web-socket-api.md "SIGNED request
   * example (HMAC)"), answered {"id", "status": 200, "result": {"subscriptionId": n}}; failures as
   * {"id", "status": 400 | 401, "error": {"code", "msg"}} (web-socket-api.md "Response format"). Also
   * `userDataStream.unsubscribe`, `session.subscriptions`, `ping`, `time`.
   */
  function onWsApiRequest(conn: Conn, text: string): void {
    let msg: { id?: unknown; method?: unknown; params?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return answer(conn, { id: null, status: 400, error: { code: -1100, msg: 'Illegal characters found in request: not valid JSON.' } });
    }
    const id = msg.id ?? null;
    const params = (typeof msg.params === 'object' && msg.params !== null ? msg.params : {}) as Record<string, unknown>;
    const fail = (status: number, code: number, text2: string) => answer(conn, { id, status, error: { code, msg: text2 } });
    switch (msg.method) {
      case 'userDataStream.subscribe.signature': {
        const apiKey = typeof params.apiKey === 'string' ? params.apiKey : undefined;
        const signed = Object.keys(params)
          .filter((k) => k !== 'signature')
          .sort()
          .map((k) => `${k}=${String(params[k])}`)
          .join('&');
        const payload = params.signature === undefined ? signed : `${signed}&signature=${String(params.signature)}`;
        const verdict = options.verifySigned(apiKey, payload);
        if (!verdict.ok) return fail(verdict.status, verdict.code, verdict.msg);
        const subscriptions = conn.subscriptions!;
        let subscriptionId = subscriptions.get(apiKey!);
        if (subscriptionId === undefined) {
          subscriptionId = conn.nextSubscriptionId!;
          conn.nextSubscriptionId = subscriptionId + 1;
          subscriptions.set(apiKey!, subscriptionId);
          add(userSubs, keyOf('spot', apiKey!), conn);
        }
        return answer(conn, { id, status: 200, result: { subscriptionId } });
      }
      case 'userDataStream.unsubscribe': {
        const wanted = params.subscriptionId;
        for (const [apiKey, sid] of [...conn.subscriptions!]) {
          if (wanted === undefined || wanted === sid) {
            conn.subscriptions!.delete(apiKey);
            remove(userSubs, keyOf('spot', apiKey), conn);
          }
        }
        return answer(conn, { id, status: 200, result: {} });
      }
      case 'session.subscriptions':
        return answer(conn, { id, status: 200, result: [...conn.subscriptions!.values()].map((subscriptionId) => ({ subscriptionId })) });
      case 'ping':
        return answer(conn, { id, status: 200, result: {} });
      case 'time':
        return answer(conn, { id, status: 200, result: { serverTime: now() } });
      default:
        return fail(400, -1000, `paper exchange: the WebSocket API method ${JSON.stringify(msg.method)} is not modelled`);
    }
  }

  // ---- keep-alive, age and listenKey expiry -------------------------------------------------------------------
  /** One sweep per ping period for all connections of a kind, rather than timers per connection. */
  function sweep(spotSide: boolean): void {
    const at = Date.now();
    const pongTimeout = spotSide ? timings.spotPongTimeoutMs : timings.futuresPongTimeoutMs;
    if (!spotSide) {
      for (const [key, entry] of listenKeys) {
        if (entry.expiresAt > at) continue;
        // "listenKeyExpired" is pushed when the listenKey used by the connection expires (USDⓈ-M "Event: User Data
        // Stream Expired"); the stream then ends.
        expireListenKey(key, entry);
      }
    }
    for (const conn of conns) {
      if ((conn.venue === 'spot') !== spotSide) continue;
      if (at - conn.openedAt >= timings.maxConnectionMs) {
        conn.ws.close(1000, 'connection reached its 24-hour limit');
        continue;
      }
      if (conn.pingSentAt !== undefined && at - conn.pingSentAt > pongTimeout) {
        conn.ws.terminate();
        continue;
      }
      if (conn.pingSentAt === undefined) conn.pingSentAt = at;
      conn.ws.ping();
      pingsSent += 1;
    }
  }

  function expireListenKey(key: string, entry: ListenKey): void {
    listenKeys.delete(key);
    if (listenKeyOf.get(entry.apiKey) === key) listenKeyOf.delete(entry.apiKey);
    for (const conn of [...(userSubs.get(keyOf('futures', entry.apiKey)) ?? [])]) {
      if (conn.listenKey !== key) continue;
      answer(conn, { e: 'listenKeyExpired', E: now(), listenKey: key });
      conn.ws.close(1000, 'listenKey expired');
    }
  }

  const timers = [
    setInterval(() => sweep(true), timings.spotPingMs),
    setInterval(() => sweep(false), timings.futuresPingMs),
    setInterval(tickerTick, timings.tickerMs),
  ];
  for (const t of timers) t.unref();

  options.server.on('upgrade', onUpgrade);

  function groupConns(group: StreamGroup): Conn[] {
    return [...conns].filter((c) => group === 'all' || c.group === group);
  }

  return {
    createListenKey(apiKey) {
      // "Doing a POST on an account with an active listenKey will return the currently active listenKey and extend
      // its validity for 60 minutes" (USDⓈ-M "User Data Streams" → "Connect").
      const existing = listenKeyOf.get(apiKey);
      const entry = existing === undefined ? undefined : listenKeys.get(existing);
      if (existing !== undefined && entry && entry.expiresAt > Date.now()) {
        entry.expiresAt = Date.now() + timings.listenKeyValidityMs;
        return existing;
      }
      const key = randomBytes(32).toString('hex');
      listenKeys.set(key, { apiKey, expiresAt: Date.now() + timings.listenKeyValidityMs });
      listenKeyOf.set(apiKey, key);
      return key;
    },
    keepAliveListenKey(apiKey) {
      const key = listenKeyOf.get(apiKey);
      const entry = key === undefined ? undefined : listenKeys.get(key);
      if (key === undefined || !entry || entry.expiresAt <= Date.now()) return undefined;
      entry.expiresAt = Date.now() + timings.listenKeyValidityMs;
      return key;
    },
    deleteListenKey(apiKey) {
      const key = listenKeyOf.get(apiKey);
      if (key === undefined) return;
      listenKeys.delete(key);
      listenKeyOf.delete(apiKey);
      // "Doing a DELETE on a listenKey will close the stream and invalidate the listenKey."
      for (const conn of [...(userSubs.get(keyOf('futures', apiKey)) ?? [])]) if (conn.listenKey === key) conn.ws.close(1000, 'listenKey deleted');
    },
    drop(group) {
      const victims = groupConns(group);
      for (const c of victims) c.ws.terminate();
      return victims.length;
    },
    silence(group, ms) {
      const until = ms === undefined ? Number.POSITIVE_INFINITY : Date.now() + ms;
      for (const g of group === 'all' ? (['market', 'user'] as const) : [group]) silencedUntil[g] = until;
    },
    delay(ms) {
      delayMs = ms;
    },
    clearFaults() {
      delete silencedUntil.market;
      delete silencedUntil.user;
      delayMs = 0;
    },
    stats() {
      let spotMarket = 0, futuresMarket = 0, wsApi = 0, futuresUser = 0, market = 0, user = 0;
      for (const c of conns) {
        if (c.group === 'market') {
          if (c.venue === 'spot') spotMarket += 1;
          else futuresMarket += 1;
          market += c.streams!.size;
        } else if (c.venue === 'spot') {
          wsApi += 1;
          user += c.subscriptions!.size;
        } else {
          futuresUser += 1;
          user += 1;
        }
      }
      const shown = (g: 'market' | 'user') => {
        const until = silencedUntil[g];
        return until === undefined || until <= Date.now() ? undefined : until === Number.POSITIVE_INFINITY ? ('untilCleared' as const) : until;
      };
      const silenced: PaperStreamStats['faults']['silencedUntil'] = {};
      for (const g of ['market', 'user'] as const) {
        const v = shown(g);
        if (v !== undefined) silenced[g] = v;
      }
      return {
        connections: { spotMarket, futuresMarket, wsApi, futuresUser, total: conns.size },
        subscriptions: { market, user },
        byStream: Object.fromEntries([...marketSubs].map(([k, set]) => [k, set.size])),
        byAccount: Object.fromEntries([...userSubs].map(([k, set]) => [k, set.size])),
        listenKeys: listenKeys.size,
        events: { sent, silenced: silencedCount, delayed: delayedCount },
        pings: { sent: pingsSent, pongs },
        faults: { silencedUntil: silenced, delayMs },
      };
    },
    close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      for (const u of unsubscribes) u();
      options.server.off('upgrade', onUpgrade);
      for (const c of conns) c.ws.terminate();
      conns.clear();
      wss.close();
    },
  };
}
