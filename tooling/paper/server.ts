/**
 * The paper exchange's HTTP face: Binance spot (`/api/v3`) and USDⓈ-M futures (`/fapi`) REST endpoints, as ccxt's
 * `binance` and `binanceusdm` classes call them, signed and verified like the real venue, plus a JSON control API
 * (`/control/...`) for tests, demos and rehearsals.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import Fastify, { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZERO, toDecimalString } from '../../src/domain/money';
import { Decimal } from '../../src/domain/money';
import { NewPaperListing, NewPaperOrder, PaperBookError, PaperExchange, PaperFiltersInput, PaperListing, PaperMarket, PaperOrder, PaperSeed, QUOTE } from './exchange';
import { FaultInjector, FaultRuleInput } from './faults';
import { PaperApi, PaperRateLimiter, PaperRateLimits, apiOf, requestWeight } from './rate-limits';
import { PaperAuthError, PaperStreamTimings, PaperStreams, STREAM_GROUPS, StreamGroup, attachPaperStreams } from './streams';

export interface PaperCredentials {
  apiKey: string;
  secret: string;
}

export interface PaperServerOptions {
  /** Keys the venue accepts; requests signed with anything else get Binance's -2015. */
  credentials: PaperCredentials[];
  host?: string;
  port?: number;
  /** Binance's default recvWindow is 5000 ms. */
  maxRecvWindowMs?: number;
  /** Seed for probabilistic faults. */
  faultSeed?: number;
  /** Request-weight limits (tooling/paper/rate-limits.ts); Binance's own by default. */
  rateLimits?: Partial<PaperRateLimits>;
  /**
   * One account per API key (spot balances, futures wallet, positions, orders, position mode), markets and prices
   * shared; the control API's `account` picks one (default: the first credential's). Default false: every key acts
   * on the one account.
   */
  separateAccounts?: boolean;
  /** WebSocket periods (ping, ticker cadence, listenKey validity...); Binance's own by default (streams.ts). */
  streamTimings?: Partial<PaperStreamTimings>;
}

export interface PaperServer {
  url: string;
  port: number;
  /** The first credential's account (the only one unless `separateAccounts`); it owns markets and prices. */
  exchange: PaperExchange;
  /** Each API key's account: the same book for every key unless `separateAccounts`. */
  accounts: Map<string, PaperExchange>;
  faults: FaultInjector;
  /** Venue requests received, by "METHOD /path" (control requests not counted): e.g. how often markets were loaded. */
  requests: Map<string, number>;
  /** IP request-weight windows, 429s and bans, as Binance applies them (tooling/paper/rate-limits.ts). */
  rateLimits: PaperRateLimiter;
  /** The WebSocket streams on the same port (tooling/paper/streams.ts). */
  streams: PaperStreams;
  app: FastifyInstance;
  close(): Promise<void>;
}

type Params = Record<string, string>;

/** What a key may do (POST /control/keys): `readOnly` keys read but cannot place or cancel orders. */
export const PAPER_KEY_STATUSES = ['ok', 'revoked', 'readOnly'] as const;
export type PaperKeyStatus = (typeof PAPER_KEY_STATUSES)[number];

/** Binance's answer from a restricted location, with HTTP 451 (fault kind `http451`). */
const RESTRICTED_LOCATION_MSG =
  "Service unavailable from a restricted location according to 'b. Eligibility' in https://www.binance.com/en/terms. Please contact customer service if you believe you received this message in error.";

const binanceError = (reply: FastifyReply, status: number, code: number, msg: string) => reply.code(status).send({ code, msg });

function parseParams(raw: string): Params {
  return Object.fromEntries(new URLSearchParams(raw));
}

function rawQuery(req: FastifyRequest): string {
  const url = req.raw.url ?? '';
  const i = url.indexOf('?');
  return i === -1 ? '' : url.slice(i + 1);
}

/** Binance prints amounts with 8 decimals ("0.00000000", "0.10000000"); more digits are kept as they are. */
function eightDecimals(amount: string): string {
  const d = new Decimal(amount);
  return toDecimalString(d, Math.max(8, d.decimalPlaces()));
}

export async function startPaperServer(options: PaperServerOptions): Promise<PaperServer> {
  const exchange = new PaperExchange();
  const app = Fastify({ logger: false });
  const secrets = new Map(options.credentials.map((c) => [c.apiKey, c.secret]));
  const accounts = new Map<string, PaperExchange>(
    options.credentials.map((c, i) => [c.apiKey, options.separateAccounts && i > 0 ? new PaperExchange(exchange) : exchange]),
  );
  const books = [...new Set(accounts.values())];
  /** The book a verified key acts on. */
  const bookOf = (apiKey: string) => accounts.get(apiKey) ?? exchange;
  /** The control API's `account` (an API key; default the first credential's), or a 404 answer. */
  const controlBook = (account: unknown, reply: FastifyReply): PaperExchange | undefined => {
    if (account === undefined) return exchange;
    const book = typeof account === 'string' ? accounts.get(account) : undefined;
    if (!book) void reply.code(404).send({ error: `no account with API key ${JSON.stringify(account)}` });
    return book;
  };
  const maxRecvWindow = options.maxRecvWindowMs ?? 60_000;
  const faults = new FaultInjector(options.faultSeed ?? 1);
  const requests = new Map<string, number>();
  const rateLimits = new PaperRateLimiter();
  if (options.rateLimits) rateLimits.configure(options.rateLimits);
  /** The paper venue's clock is the local clock plus this (POST /control/clock): -5000 makes the worker 5 s fast. */
  let clockOffsetMs = 0;
  const serverTime = () => Date.now() + clockOffsetMs;
  /** Keys whose permissions changed after they worked (POST /control/keys); absent means "ok". */
  const keyStatus = new Map<string, PaperKeyStatus>();

  // Faults apply to the venue endpoints only, never to the control API.
  app.addHook('onRequest', async (req, reply) => {
    const path = (req.raw.url ?? '').split('?')[0]!;
    if (path.startsWith('/control')) return;
    const key = `${req.method} ${path}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
    // IP request weight per minute, 429 with Retry-After, 418 for a client that keeps sending during a 429's
    // Retry-After (Binance "LIMITS" → "IP Limits"; the rules and sources are in tooling/paper/rate-limits.ts).
    const api = apiOf(path);
    if (api !== undefined) {
      const decision = rateLimits.admit(api, requestWeight(req.method, path, rawQuery(req)), Date.now());
      if (decision.kind === 'tooMany') {
        reply.header('retry-after', String(decision.retryAfterSeconds));
        return binanceError(reply, 429, -1003, `Too many requests; current limit of IP(127.0.0.1) is ${decision.limit} requests per minute. Please use the websocket for live updates to avoid polling the API.`);
      }
      if (decision.kind === 'banned') {
        reply.header('retry-after', String(decision.retryAfterSeconds));
        return binanceError(reply, 418, -1003, `Way too many requests; IP(127.0.0.1) banned until ${decision.until}. Please use the websocket for live updates to avoid bans.`);
      }
    }
    const rule = faults.match(req.method, path);
    if (!rule) return;
    switch (rule.kind) {
      // Injected rate-limit answers carry Retry-After as Binance's do ("A Retry-After header is sent with a 418 or 429
      // responses", "IP Limits"); 1 s, so that a test's fault costs a second, not a ban.
      case 'http429':
        reply.header('retry-after', '1');
        return binanceError(reply, 429, -1003, 'Too many requests; current limit is 6000 request weight per 1 MINUTE.');
      case 'http418':
        reply.header('retry-after', '1');
        return binanceError(reply, 418, -1003, `Way too many requests; IP banned until ${Date.now() + 1_000}.`);
      case 'timestamp':
        return binanceError(reply, 400, -1021, 'Timestamp for this request is outside of the recvWindow.');
      case 'http5xx':
        return reply.code(503).type('text/html').send('<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>');
      case 'unknownOrder':
        return binanceError(reply, 400, -2011, 'Unknown order sent.');
      case 'auth':
        return binanceError(reply, 401, -2015, 'Invalid API-key, IP, or permissions for action.');
      case 'malformed':
        return reply.code(200).send({ unexpected: 'shape', rows: null });
      case 'http403':
        // Binance's WAF answers with an HTML page, not a JSON error (http-return-codes page cited in faults.ts).
        return reply.code(403).type('text/html').send('<html><head><title>403 Forbidden</title></head><body><h1>403 ERROR</h1><p>The request could not be satisfied. Request blocked.</p></body></html>');
      case 'http451':
        return binanceError(reply, 451, 0, RESTRICTED_LOCATION_MSG);
      case 'drop':
        req.raw.socket.destroy();
        return reply;
      case 'delay':
        await new Promise((r) => setTimeout(r, rule.delayMs ?? 30_000));
        return;
      case 'hold':
        await faults.hold(rule, req.method, path);
        return;
      default:
        return;
    }
  });

  // "Every request will contain X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter) in the response headers which has the
  // current used weight for the IP" (spot "IP Limits"; USDⓈ-M "Limits" alike): on every venue answer, errors included.
  app.addHook('onSend', async (req, reply) => {
    const api = apiOf((req.raw.url ?? '').split('?')[0]!);
    if (api !== undefined) reply.header('x-mbx-used-weight-1m', String(rateLimits.used(api, Date.now())));
  });

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  /**
   * Verifies key, HMAC-SHA256 signature over the raw parameter string (`...&signature=<hex>` last), and
   * timestamp/recvWindow; REST requests and the WebSocket API's signed requests (streams.ts) share it.
   * @param trade whether the request places or cancels orders (a readOnly key is refused then)
   */
  function verifySigned(apiKey: string | undefined, payload: string, trade: boolean): { ok: true; params: Params } | ({ ok: false } & PaperAuthError) {
    const refuse = (status: number, code: number, msg: string) => ({ ok: false as const, status, code, msg });
    if (typeof apiKey !== 'string' || apiKey.length === 0) return refuse(401, -2014, 'API-key format invalid.');
    const secret = secrets.get(apiKey);
    // -2015 REJECTED_MBX_KEY "Invalid API-key, IP, or permissions for action." with 401 "Unauthorized Request"
    // (https://developers.binance.com/docs/binance-spot-api-docs/errors; spot_api.yaml responses '401'): for an unknown
    // or revoked key on every signed call, and for a key without trading permission on TRADE endpoints (placing and
    // cancelling orders, our only signed non-GET routes): "API keys can be configured to allow access only to certain
    // types of secure methods" (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security).
    const status = keyStatus.get(apiKey) ?? 'ok';
    if (secret === undefined || status === 'revoked' || (status === 'readOnly' && trade)) {
      return refuse(401, -2015, 'Invalid API-key, IP, or permissions for action.');
    }
    const at = payload.lastIndexOf('&signature=');
    if (at === -1) return refuse(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.");
    const signed = payload.slice(0, at);
    const given = Buffer.from(payload.slice(at + '&signature='.length), 'utf8');
    const expected = Buffer.from(createHmac('sha256', secret).update(signed).digest('hex'), 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return refuse(400, -1022, 'Signature for this request is not valid.');
    const params = parseParams(signed);
    const timestamp = Number(params.timestamp);
    const recvWindow = params.recvWindow !== undefined ? Number(params.recvWindow) : 5_000;
    // recvWindow "cannot be greater than 60000" (spot_api.yaml parameter recvWindow); Binance answers -1131
    // (ccxt binance.js exceptions: '-1131': {"code":-1131,"msg":"recvWindow must be less than 60000"}).
    if (!Number.isFinite(recvWindow) || recvWindow > maxRecvWindow) return refuse(400, -1131, `recvWindow must be less than ${maxRecvWindow}`);
    // "Timing security" (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security; USDⓈ-M
    // futures' general info states the same rule): serve only if timestamp < serverTime + 1000 and
    // serverTime - timestamp <= recvWindow. Asymmetric: a client 1 s fast fails whatever its recvWindow.
    const now = serverTime();
    if (!Number.isFinite(timestamp) || timestamp >= now + 1_000) return refuse(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.");
    if (now - timestamp > recvWindow) return refuse(400, -1021, 'Timestamp for this request is outside of the recvWindow.');
    return { ok: true, params };
  }

  /** A signed REST request's parameters, or undefined after answering Binance's error. */
  function authenticate(req: FastifyRequest, reply: FastifyReply): Params | undefined {
    const payload = typeof req.body === 'string' && req.body.length > 0 ? req.body : rawQuery(req);
    const apiKey = req.headers['x-mbx-apikey'];
    const verdict = verifySigned(typeof apiKey === 'string' ? apiKey : undefined, payload, req.method !== 'GET');
    if (!verdict.ok) {
      binanceError(reply, verdict.status, verdict.code, verdict.msg);
      return undefined;
    }
    return verdict.params;
  }

  /**
   * USER_STREAM endpoints take the API key only, no signature ("USER_STREAM: Endpoint requires sending a valid
   * API-Key", USDⓈ-M "General Info" → "Endpoint Security Type"; ccxt binance.js sign() sends only X-MBX-APIKEY for
   * `listenKey`): a key is refused when unknown or revoked (-2015), whatever the secret the client holds.
   */
  function apiKeyOnly(req: FastifyRequest, reply: FastifyReply): string | undefined {
    const apiKey = req.headers['x-mbx-apikey'];
    if (typeof apiKey !== 'string' || apiKey.length === 0) {
      binanceError(reply, 401, -2014, 'API-key format invalid.');
      return undefined;
    }
    if (!secrets.has(apiKey) || keyStatus.get(apiKey) === 'revoked') {
      binanceError(reply, 401, -2015, 'Invalid API-key, IP, or permissions for action.');
      return undefined;
    }
    return apiKey;
  }

  /** Registers a signed endpoint; book errors become Binance error bodies. */
  function signed(method: 'GET' | 'POST' | 'DELETE', url: string, handler: (p: Params, book: PaperExchange) => unknown) {
    app.route({
      method,
      url,
      handler: async (req, reply) => {
        const params = authenticate(req, reply);
        if (params === undefined) return reply;
        return handler(params, bookOf(req.headers['x-mbx-apikey'] as string));
      },
    });
  }

  function requireParam(p: Params, name: string): string {
    const value = p[name];
    if (value === undefined || value === '') {
      throw new PaperBookError(-1102, `Mandatory parameter '${name}' was not sent, was empty/null, or malformed.`);
    }
    return value;
  }

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof PaperBookError) return binanceError(reply, err.httpStatus, err.code, err.message);
    return binanceError(reply, 500, -1000, `An unknown error occurred while processing the request. (${(err as Error).message})`);
  });
  app.setNotFoundHandler((req, reply) => binanceError(reply, 404, -1000, `paper exchange: no endpoint ${req.method} ${req.url.split('?')[0]}`));

  // ---- public market data --------------------------------------------------------------------------------------
  // Markets quoted in a coin (XYZBTC) need a finer tick than USDT markets, as on Binance (e.g. ETHBTC ticks 0.00001,
  // small caps against BTC 0.00000001).
  const filters = (market: PaperMarket, quote = QUOTE) => [
    quote === QUOTE
      ? { filterType: 'PRICE_FILTER', minPrice: '0.00001', maxPrice: '1000000', tickSize: '0.00001' }
      : { filterType: 'PRICE_FILTER', minPrice: '0.00000001', maxPrice: '1000', tickSize: '0.00000001' },
    { filterType: 'LOT_SIZE', minQty: '0.001', maxQty: '9000000', stepSize: '0.001' },
    { filterType: 'MARKET_LOT_SIZE', minQty: '0.001', maxQty: '9000000', stepSize: '0.001' },
    market === 'spot'
      ? { filterType: 'NOTIONAL', minNotional: '1', applyMinToMarket: true, maxNotional: '9000000', applyMaxToMarket: false, avgPriceMins: 5 }
      : { filterType: 'MIN_NOTIONAL', notional: '5' },
    { filterType: 'MAX_NUM_ORDERS', maxNumOrders: market === 'spot' ? 200 : 200, limit: 200 },
  ];
  // A futures symbol's PRICE_FILTER, LOT_SIZE and MARKET_LOT_SIZE are its own (realistic for BTCUSDT and ETHUSDT,
  // changeable with POST /control/filters; see PaperExchange.futuresFilters), and POST /fapi/v1/order enforces them.
  const futuresFilters = (symbol: string) => {
    const own = exchange.futuresFilters(symbol);
    return [
      { filterType: 'PRICE_FILTER', ...own.PRICE_FILTER },
      { filterType: 'LOT_SIZE', ...own.LOT_SIZE },
      { filterType: 'MARKET_LOT_SIZE', ...own.MARKET_LOT_SIZE },
      ...filters('futures').filter((f) => !['PRICE_FILTER', 'LOT_SIZE', 'MARKET_LOT_SIZE'].includes(f.filterType)),
    ];
  };

  app.get('/api/v3/ping', async () => ({}));
  // "Check server time": { "serverTime": 1499827319559 } (spot_api.yaml /api/v3/time; USDⓈ-M /fapi/v1/time alike),
  // on the paper venue's own clock, which ccxt's loadTimeDifference() reads.
  app.get('/api/v3/time', async () => ({ serverTime: serverTime() }));
  app.get('/fapi/v1/ping', async () => ({}));
  app.get('/fapi/v1/time', async () => ({ serverTime: serverTime() }));

  /**
   * The spot listings a request asks for: `symbol=XYZBTC`, `symbols=["BTCUSDT","XYZBTC"]` (a JSON array), or all.
   * "If any symbol provided in either symbol or symbols do not exist, the endpoint will throw an error" (-1121):
   * https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints "Exchange information" and
   * .../market-data-endpoints "24hr ticker price change statistics"; the `symbols` parameter format is the OpenAPI
   * description's `arraySymbols` (example '["BTCUSDT","BNBBTC"]').
   */
  function requestedSpotListings(req: FastifyRequest): PaperListing[] {
    const p = parseParams(rawQuery(req));
    if (p.symbol !== undefined) return [exchange.requireListing(p.symbol, 'spot')];
    if (p.symbols === undefined) return exchange.markets('spot');
    let names: unknown;
    try {
      names = JSON.parse(p.symbols);
    } catch {
      names = undefined;
    }
    if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
      throw new PaperBookError(-1100, "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.");
    }
    return (names as string[]).map((n) => exchange.requireListing(n, 'spot'));
  }

  // Every listed spot market, whatever its quote (XYZBTC lists quoteAsset BTC): a coin listed later through the
  // control API appears here from then on, which is how a client that reloads its markets finds it.
  app.get('/api/v3/exchangeInfo', async (req) => ({
    timezone: 'UTC',
    serverTime: Date.now(),
    rateLimits: [{ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: rateLimits.limitOf('spot') }],
    exchangeFilters: [],
    symbols: requestedSpotListings(req).map(({ symbol, base, quote }) => ({
      symbol, status: 'TRADING', baseAsset: base, baseAssetPrecision: 8, quoteAsset: quote, quotePrecision: 8,
      quoteAssetPrecision: 8, baseCommissionPrecision: 8, quoteCommissionPrecision: 8,
      orderTypes: ['LIMIT', 'LIMIT_MAKER', 'MARKET', 'STOP_LOSS_LIMIT', 'TAKE_PROFIT_LIMIT'],
      icebergAllowed: true, ocoAllowed: true, otoAllowed: true, quoteOrderQtyMarketAllowed: true, allowTrailingStop: true,
      cancelReplaceAllowed: true, isSpotTradingAllowed: true, isMarginTradingAllowed: false, filters: filters('spot', quote),
      permissions: [], permissionSets: [['SPOT']], defaultSelfTradePreventionMode: 'EXPIRE_MAKER',
      allowedSelfTradePreventionModes: ['EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH'],
    })),
  }));

  app.get('/fapi/v1/exchangeInfo', async () => ({
    timezone: 'UTC',
    serverTime: Date.now(),
    futuresType: 'U_MARGINED',
    rateLimits: [{ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: rateLimits.limitOf('futures') }],
    exchangeFilters: [],
    assets: [...new Set([QUOTE, ...exchange.markets('futures').map((l) => l.quote)])].map((asset) => ({ asset, marginAvailable: true, autoAssetExchange: '-10000' })),
    symbols: exchange.markets('futures').map(({ symbol, base, quote }) => ({
      symbol, pair: symbol, contractType: 'PERPETUAL', deliveryDate: 4133404800000, onboardDate: 1569398400000,
      status: 'TRADING', maintMarginPercent: '2.5000', requiredMarginPercent: '5.0000', baseAsset: base,
      quoteAsset: quote, marginAsset: quote, pricePrecision: 5, quantityPrecision: 3, baseAssetPrecision: 8,
      quotePrecision: 8, underlyingType: 'COIN', underlyingSubType: [], triggerProtect: '0.0500',
      liquidationFee: '0.012500', marketTakeBound: '0.05', maxMoveOrderLimit: 10000, filters: futuresFilters(symbol),
      orderTypes: ['LIMIT', 'MARKET', 'STOP', 'STOP_MARKET', 'TAKE_PROFIT', 'TAKE_PROFIT_MARKET', 'TRAILING_STOP_MARKET'],
      timeInForce: ['GTC', 'IOC', 'FOK', 'GTX', 'GTD'], permissionSets: ['GRID', 'COPY'],
    })),
  }));

  const ticker = (symbol: string, market: PaperMarket) => {
    const last = toDecimalString(exchange.priceOfSymbol(symbol, market));
    const now = Date.now();
    return {
      symbol, priceChange: '0', priceChangePercent: '0', weightedAvgPrice: last, lastPrice: last, lastQty: '1',
      openPrice: last, highPrice: last, lowPrice: last, volume: '1000', quoteVolume: '1000', openTime: now - 86_400_000,
      closeTime: now, firstId: 1, lastId: 2, count: 1,
      ...(market === 'spot' ? { prevClosePrice: last, bidPrice: last, bidQty: '1', askPrice: last, askQty: '1' } : {}),
    };
  };
  // Tickers for every listed market of the side, BTC-quoted ones included, priced from what the control API set.
  // Spot takes `symbol` (one object) or `symbols` (a JSON array: only those) or neither (all); USDⓈ-M futures takes
  // `symbol` or nothing (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/24hr-Ticker-Price-Change-Statistics).
  app.get('/api/v3/ticker/24hr', async (req) => {
    const p = parseParams(rawQuery(req));
    if (p.symbol !== undefined) return ticker(exchange.requireListing(p.symbol, 'spot').symbol, 'spot');
    return requestedSpotListings(req).map((l) => ticker(l.symbol, 'spot'));
  });
  app.get('/fapi/v1/ticker/24hr', async (req) => {
    const symbol = parseParams(rawQuery(req)).symbol;
    if (symbol !== undefined) return ticker(exchange.requireListing(symbol, 'futures').symbol, 'futures');
    return exchange.markets('futures').map((l) => ticker(l.symbol, 'futures'));
  });
  app.get('/api/v3/ticker/price', async (req) => {
    const p = parseParams(rawQuery(req));
    const price = (l: PaperListing) => ({ symbol: l.symbol, price: toDecimalString(exchange.priceOfSymbol(l.symbol, 'spot')) });
    if (p.symbol !== undefined) return price(exchange.requireListing(p.symbol, 'spot'));
    return requestedSpotListings(req).map(price);
  });
  app.get('/fapi/v1/premiumIndex', async () =>
    exchange.markets('futures').map((s) => {
      const mark = toDecimalString(exchange.priceOfSymbol(s.symbol, 'futures'));
      return { symbol: s.symbol, markPrice: mark, indexPrice: mark, estimatedSettlePrice: mark, lastFundingRate: '0.0001', interestRate: '0.0001', nextFundingTime: Date.now() + 3_600_000, time: Date.now() };
    }),
  );

  // ---- spot account and orders ----------------------------------------------------------------------------------
  const spotOrder = (o: PaperOrder, status = 'NEW') => ({
    symbol: o.symbol, orderId: o.orderId, orderListId: -1, clientOrderId: o.clientOrderId, price: o.price,
    origQty: o.origQty, executedQty: status === 'FILLED' ? o.origQty : '0', cummulativeQuoteQty: '0', status,
    timeInForce: 'GTC', type: o.type, side: o.side, stopPrice: o.stopPrice, icebergQty: '0', time: o.time,
    updateTime: o.time, isWorking: true, workingTime: o.time, origQuoteOrderQty: '0', selfTradePreventionMode: 'EXPIRE_MAKER',
  });

  /**
   * The full balance list, zero rows included, as Binance answers: every asset the exchange knows, with
   * `"free":"0.00000000","locked":"0.00000000"` for those the account does not hold, unless `omitZeroBalances=true`
   * ("When set to true, emits only the non-zero balances of an account. Default value: false":
   * https://developers.binance.com/docs/binance-spot-api-docs/rest-api/account-endpoints "Account information
   * (USER_DATA)"). Amounts have 8 decimals. Assets without any market (dust of a delisted coin) and Simple Earn
   * flexible tokens (`LDBTC`, `LDUSDT`: Binance shows Simple Earn flexible positions in this list under `LD`-prefixed
   * names) appear like any other asset.
   */
  const balanceRows = (book: PaperExchange, omitZero: boolean) =>
    exchange
      .spotAssets()
      .map((asset) => ({ asset, free: eightDecimals(book.spotBalances.get(asset) ?? '0'), locked: '0.00000000' }))
      .filter((row) => !omitZero || !new Decimal(row.free).isZero());

  signed('GET', '/api/v3/account', (p, book) => ({
    makerCommission: 10, takerCommission: 10, buyerCommission: 0, sellerCommission: 0,
    commissionRates: { maker: '0.00100000', taker: '0.00100000', buyer: '0.00000000', seller: '0.00000000' },
    canTrade: true, canWithdraw: true, canDeposit: true, brokered: false, requireSelfTradePrevention: false, preventSor: false,
    updateTime: Date.now(), accountType: 'SPOT',
    balances: balanceRows(book, p.omitZeroBalances === 'true'),
    permissions: ['SPOT'], uid: 1,
  }));
  signed('GET', '/api/v3/openOrders', (p, book) => book.openOrders('spot', false, p.symbol).map((o) => spotOrder(o)));
  signed('DELETE', '/api/v3/openOrders', (p, book) => {
    const cancelled = book.cancelAll('spot', false, requireParam(p, 'symbol'));
    // Binance answers -2011 when the symbol has no open orders.
    if (cancelled.length === 0) throw new PaperBookError(-2011, 'Unknown order sent.');
    return cancelled.map((o) => ({ ...spotOrder(o, 'CANCELED'), origClientOrderId: o.clientOrderId, transactTime: Date.now() }));
  });
  signed('POST', '/api/v3/order', (p, book) => {
    const order = book.placeOrder(newOrder('spot', p));
    return { ...spotOrder(order, order.type === 'MARKET' ? 'FILLED' : 'NEW'), transactTime: order.time, fills: [] };
  });
  signed('DELETE', '/api/v3/order', (p, book) => {
    const o = book.cancelOrder('spot', false, requireParam(p, 'symbol'), orderRef(p, 'orderId', 'origClientOrderId'));
    return { ...spotOrder(o, 'CANCELED'), origClientOrderId: o.clientOrderId, transactTime: Date.now() };
  });

  // ---- futures account, positions and orders --------------------------------------------------------------------
  const futuresOrder = (o: PaperOrder, status = 'NEW') => ({
    orderId: o.orderId, symbol: o.symbol, status, clientOrderId: o.clientOrderId, price: o.price, avgPrice: '0',
    origQty: o.origQty, executedQty: status === 'FILLED' ? o.origQty : '0', cumQuote: '0', timeInForce: 'GTC',
    type: o.type, reduceOnly: o.reduceOnly, closePosition: false, side: o.side, positionSide: o.positionSide,
    stopPrice: o.stopPrice, workingType: 'CONTRACT_PRICE', priceProtect: false, origType: o.type, priceMatch: 'NONE',
    selfTradePreventionMode: 'EXPIRE_MAKER', goodTillDate: 0, time: o.time, updateTime: o.time,
  });
  const algoOrder = (o: PaperOrder, status = 'NEW') => ({
    algoId: o.orderId, clientAlgoId: o.clientOrderId, algoType: 'CONDITIONAL', orderType: o.type, symbol: o.symbol,
    side: o.side, positionSide: o.positionSide, timeInForce: 'GTC', quantity: o.origQty, algoStatus: status,
    triggerPrice: o.stopPrice, price: o.price, icebergQuantity: null, selfTradePreventionMode: 'EXPIRE_MAKER',
    workingType: 'CONTRACT_PRICE', priceMatch: 'NONE', closePosition: false, priceProtect: false, reduceOnly: o.reduceOnly,
    createTime: o.time, updateTime: o.time, triggerTime: 0, goodTillDate: 0,
  });
  const positionRisk = (book: PaperExchange) =>
    [...book.positions.values()].map((p) => {
      const mark = book.priceOfSymbol(p.symbol, 'futures');
      const notional = mark.times(p.positionAmt);
      return {
        symbol: p.symbol, positionSide: p.positionSide ?? 'BOTH', positionAmt: p.positionAmt, entryPrice: p.entryPrice, breakEvenPrice: p.entryPrice,
        markPrice: toDecimalString(mark), unRealizedProfit: toDecimalString(book.unrealizedPnl(p)), liquidationPrice: '0',
        isolatedMargin: '0', notional: toDecimalString(notional), marginAsset: book.requireListing(p.symbol, 'futures').quote, isolatedWallet: '0',
        initialMargin: toDecimalString(notional.abs().div(10)), maintMargin: toDecimalString(notional.abs().div(100)),
        positionInitialMargin: toDecimalString(notional.abs().div(10)), openOrderInitialMargin: '0', adl: 0,
        bidNotional: '0', askNotional: '0', updateTime: Date.now(), leverage: '10', marginType: 'cross',
      };
    });
  const futuresAccount = (book: PaperExchange) => {
    const positions = positionRisk(book);
    const unrealizedBy = (asset: string) =>
      positions.filter((p) => p.marginAsset === asset).reduce((sum, p) => sum.plus(p.unRealizedProfit), ZERO);
    const assets = [...book.futuresBalances].map(([asset, wallet]) => {
      const upnl = unrealizedBy(asset);
      const margin = upnl.plus(wallet);
      return {
        asset, walletBalance: wallet, unrealizedProfit: toDecimalString(upnl), marginBalance: toDecimalString(margin),
        maintMargin: '0', initialMargin: '0', positionInitialMargin: '0', openOrderInitialMargin: '0',
        crossWalletBalance: wallet, crossUnPnl: toDecimalString(upnl), availableBalance: toDecimalString(margin),
        maxWithdrawAmount: wallet, updateTime: Date.now(),
      };
    });
    const total = (key: 'walletBalance' | 'unrealizedProfit' | 'marginBalance') =>
      toDecimalString(assets.filter((a) => a.asset === QUOTE).reduce((s, a) => s.plus(a[key]), ZERO));
    return {
      totalInitialMargin: '0', totalMaintMargin: '0', totalWalletBalance: total('walletBalance'),
      totalUnrealizedProfit: total('unrealizedProfit'), totalMarginBalance: total('marginBalance'),
      totalPositionInitialMargin: '0', totalOpenOrderInitialMargin: '0', totalCrossWalletBalance: total('walletBalance'),
      totalCrossUnPnl: total('unrealizedProfit'), availableBalance: total('marginBalance'), maxWithdrawAmount: total('walletBalance'),
      assets,
      positions: positions.map((p) => ({
        symbol: p.symbol, positionSide: p.positionSide, positionAmt: p.positionAmt, unrealizedProfit: p.unRealizedProfit,
        isolatedMargin: '0', notional: p.notional, isolatedWallet: '0', initialMargin: p.initialMargin, maintMargin: p.maintMargin, updateTime: p.updateTime,
      })),
    };
  };

  signed('GET', '/fapi/v3/account', (_p, book) => futuresAccount(book));
  signed('GET', '/fapi/v2/account', (_p, book) => futuresAccount(book));
  signed('GET', '/fapi/v3/positionRisk', (_p, book) => positionRisk(book));
  signed('GET', '/fapi/v2/positionRisk', (_p, book) => positionRisk(book));
  signed('GET', '/fapi/v1/leverageBracket', (_p, book) =>
    book.markets('futures').map(({ symbol }) => ({
      symbol, notionalCoef: 1,
      brackets: [{ bracket: 1, initialLeverage: 125, notionalCap: 9_000_000, notionalFloor: 0, maintMarginRatio: 0.004, cum: 0 }],
    })),
  );
  signed('GET', '/fapi/v1/openOrders', (p, book) => book.openOrders('futures', false, p.symbol).map((o) => futuresOrder(o)));
  signed('GET', '/fapi/v1/openAlgoOrders', (p, book) => book.openOrders('futures', true, p.symbol).map((o) => algoOrder(o)));
  signed('DELETE', '/fapi/v1/allOpenOrders', (p, book) => {
    book.cancelAll('futures', false, requireParam(p, 'symbol'));
    return { code: 200, msg: 'The operation of cancel all open order is done.' };
  });
  signed('DELETE', '/fapi/v1/algoOpenOrders', (p, book) => {
    book.cancelAll('futures', true, requireParam(p, 'symbol'));
    return { code: 200, msg: 'The operation of cancel all open order is done.' };
  });
  // USDⓈ-M "New Order (TRADE)": checked as Binance does before it reaches the book (position side against the
  // account's mode, LOT_SIZE / MARKET_LOT_SIZE / PRICE_FILTER, conditional types -4120): see checkNewFuturesOrder.
  signed('POST', '/fapi/v1/order', (p, book) => {
    const request = newOrder('futures', p);
    book.checkNewFuturesOrder(request);
    const order = book.placeOrder(request);
    return futuresOrder(order, order.type === 'MARKET' ? 'FILLED' : 'NEW');
  });
  // "Get Current Position Mode (USER_DATA)" GET /fapi/v1/positionSide/dual: {"dualSidePosition": true} = Hedge Mode.
  signed('GET', '/fapi/v1/positionSide/dual', (_p, book) => ({ dualSidePosition: book.dualSidePosition }));
  // "Change Position Mode (TRADE)" POST /fapi/v1/positionSide/dual, dualSidePosition "true" | "false"; refused with
  // -4059 / -4067 / -4068 (PaperExchange.setPositionMode).
  signed('POST', '/fapi/v1/positionSide/dual', (p, book) => {
    const value = requireParam(p, 'dualSidePosition');
    if (value !== 'true' && value !== 'false') throw new PaperBookError(-1100, "Illegal characters found in parameter 'dualSidePosition'; legal range is 'true, false'.");
    book.setPositionMode(value === 'true');
    return { code: 200, msg: 'success' };
  });
  signed('POST', '/fapi/v1/algoOrder', (p, book) => algoOrder(book.placeOrder({ ...newOrder('futures', p), stopPrice: requireParam(p, 'triggerPrice') })));
  signed('DELETE', '/fapi/v1/order', (p, book) =>
    futuresOrder(book.cancelOrder('futures', false, requireParam(p, 'symbol'), orderRef(p, 'orderId', 'origClientOrderId')), 'CANCELED'),
  );
  signed('DELETE', '/fapi/v1/algoOrder', (p, book) =>
    algoOrder(book.cancelOrder('futures', true, requireParam(p, 'symbol'), orderRef(p, 'algoId', 'clientAlgoId')), 'CANCELED'),
  );

  function newOrder(market: PaperMarket, p: Params): NewPaperOrder {
    const side = requireParam(p, 'side');
    if (side !== 'BUY' && side !== 'SELL') throw new PaperBookError(-1117, 'Invalid side.');
    return {
      market,
      symbol: requireParam(p, 'symbol'),
      side,
      type: requireParam(p, market === 'futures' && p.orderType ? 'orderType' : 'type'),
      quantity: requireParam(p, 'quantity'),
      price: p.price,
      stopPrice: p.stopPrice,
      // Absent stays absent: Hedge Mode refuses the parameter whenever it is sent (-1106), even "false".
      reduceOnly: p.reduceOnly === undefined ? undefined : p.reduceOnly === 'true',
      positionSide: p.positionSide,
      clientOrderId: p.newClientOrderId ?? p.clientAlgoId,
    };
  }

  function orderRef(p: Params, idKey: string, clientKey: string): { orderId?: number; clientOrderId?: string } {
    if (p[idKey] !== undefined) return { orderId: Number(p[idKey]) };
    if (p[clientKey] !== undefined) return { clientOrderId: p[clientKey] };
    throw new PaperBookError(-1102, `Param '${idKey}' or '${clientKey}' must be sent, but both were empty/null!`);
  }

  // ---- WebSocket streams (tooling/paper/streams.ts) ------------------------------------------------------------
  const streams = attachPaperStreams({
    server: app.server,
    markets: exchange,
    accounts: books.map((book) => ({ book, apiKeys: [...accounts].filter(([, b]) => b === book).map(([k]) => k) })),
    verifySigned: (apiKey, payload) => {
      const verdict = verifySigned(apiKey, payload, false);
      return verdict.ok ? { ok: true } : verdict;
    },
    now: serverTime,
    timings: options.streamTimings,
  });
  // Close the sockets before fastify waits for its connections to end (an open WebSocket would hold it).
  app.addHook('preClose', async () => streams.close());
  // USDⓈ-M "Start User Data Stream (USER_STREAM)" POST /fapi/v1/listenKey → {"listenKey": "..."}; "Keepalive User
  // Data Stream" PUT (extends by 60 minutes; -1125 "This listenKey does not exist." when there is none); "Close User
  // Data Stream" DELETE → {} (https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams).
  app.post('/fapi/v1/listenKey', async (req, reply) => {
    const apiKey = apiKeyOnly(req, reply);
    if (apiKey === undefined) return reply;
    return { listenKey: streams.createListenKey(apiKey) };
  });
  app.put('/fapi/v1/listenKey', async (req, reply) => {
    const apiKey = apiKeyOnly(req, reply);
    if (apiKey === undefined) return reply;
    const listenKey = streams.keepAliveListenKey(apiKey);
    if (listenKey === undefined) return binanceError(reply, 400, -1125, 'This listenKey does not exist.');
    return { listenKey };
  });
  app.delete('/fapi/v1/listenKey', async (req, reply) => {
    const apiKey = apiKeyOnly(req, reply);
    if (apiKey === undefined) return reply;
    streams.deleteListenKey(apiKey);
    return {};
  });

  // ---- control API ----------------------------------------------------------------------------------------------
  app.post('/control/reset', async () => {
    for (const book of books) book.reset();
    requests.clear();
    rateLimits.reset();
    return exchange.snapshot();
  });
  // Request-weight limits: { "spotWeightPerMinute": 6000, "futuresWeightPerMinute": 2400, "banAfterIgnored": 10,
  // "firstBanSeconds": 120 } (any subset; Binance's values by default). Starts fresh windows and lifts bans.
  app.get('/control/limits', async () => ({ ...rateLimits.config, used: { spot: rateLimits.used('spot', Date.now()), futures: rateLimits.used('futures', Date.now()) } }));
  app.post<{ Body: Partial<PaperRateLimits> }>('/control/limits', async (req, reply) => {
    try {
      return rateLimits.configure(req.body ?? {});
    } catch (err) {
      return reply.code(400).send({ error: (err as Error).message });
    }
  });
  // Weight spent from the same IP by someone else (the account's bots): { "api": "futures", "weight": 500 }.
  app.post<{ Body: { api?: unknown; weight?: unknown } }>('/control/limits/spend', async (req, reply) => {
    const { api, weight } = req.body ?? {};
    if ((api !== 'spot' && api !== 'futures') || typeof weight !== 'number' || !(weight >= 0)) {
      return reply.code(400).send({ error: 'expected { "api": "spot" | "futures", "weight": <number> }' });
    }
    return { used: rateLimits.spend(api as PaperApi, weight, Date.now()) };
  });
  // Lists a market (one object or an array), e.g. a coin listed after a worker loaded its markets:
  // { "base": "NEWCOIN", "quote": "USDT", "price": "2.5", "futures": true }. Posting a listed market again changes
  // its price and sides.
  app.post<{ Body: NewPaperListing | NewPaperListing[] }>('/control/markets', async (req) => {
    const body = req.body;
    if (Array.isArray(body)) return body.map((m) => exchange.listMarket(m));
    if (typeof body !== 'object' || body === null) throw new PaperBookError(-1100, 'expected a market { base, quote?, price?, spot?, futures? } or an array of them');
    return exchange.listMarket(body);
  });
  app.get('/control/markets', async () => exchange.snapshot().markets);
  app.delete<{ Params: { symbol: string } }>('/control/markets/:symbol', async (req) => exchange.delistMarket(req.params.symbol));
  app.get('/control/requests', async () => Object.fromEntries(requests));
  // `account` (an API key) picks the account with separateAccounts; markets and prices in a seed are everyone's.
  app.post<{ Body: PaperSeed & { account?: string } }>('/control/seed', async (req, reply) => {
    const { account, ...seed } = req.body ?? {};
    const book = controlBook(account, reply);
    if (!book) return reply;
    book.seed(seed);
    return book.snapshot();
  });
  app.post<{ Body: Record<string, string> }>('/control/prices', async (req) => {
    for (const [asset, price] of Object.entries(req.body ?? {})) exchange.setPrice(asset, price);
    return exchange.snapshot();
  });
  app.post<{ Body: NewPaperOrder & { account?: string } }>('/control/orders', async (req, reply) => {
    const { account, ...order } = req.body ?? ({} as NewPaperOrder);
    const book = controlBook(account, reply);
    if (!book) return reply;
    return book.placeOrder(order);
  });
  app.get<{ Querystring: { account?: string } }>('/control/orders', async (req, reply) => {
    const book = controlBook(req.query.account, reply);
    return book ? [...book.orders.values()] : reply;
  });
  // Every order the book accepted (market orders included, which fill at once and never rest), oldest first.
  app.get<{ Querystring: { account?: string } }>('/control/orderLog', async (req, reply) => {
    const book = controlBook(req.query.account, reply);
    return book ? book.orderLog : reply;
  });
  // The account's position mode: { "dualSidePosition": true } for Hedge Mode. Same rules as the venue endpoint
  // (no change while a futures position or order is open), except that setting the current mode again is fine.
  app.post<{ Body: { dualSidePosition?: unknown; account?: string } }>('/control/positionMode', async (req, reply) => {
    const dual = req.body?.dualSidePosition;
    if (typeof dual !== 'boolean') throw new PaperBookError(-1100, 'expected { "dualSidePosition": true | false }');
    const book = controlBook(req.body?.account, reply);
    if (!book) return reply;
    book.setPositionMode(dual, { control: true });
    return { dualSidePosition: book.dualSidePosition };
  });
  app.get<{ Querystring: { account?: string } }>('/control/positionMode', async (req, reply) => {
    const book = controlBook(req.query.account, reply);
    return book ? { dualSidePosition: book.dualSidePosition } : reply;
  });
  // Changes futures filters per symbol: { "BTCUSDT": { "MARKET_LOT_SIZE": { "maxQty": "0.5" } } }; answers the
  // resulting filters of the symbols named.
  app.post<{ Body: Record<string, PaperFiltersInput> }>('/control/filters', async (req) => {
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new PaperBookError(-1100, 'expected { "SYMBOL": { "MARKET_LOT_SIZE": { "maxQty": "..." } } }');
    return Object.fromEntries(Object.entries(body).map(([symbol, input]) => [symbol, exchange.setFilters(symbol, input)]));
  });
  app.get<{ Params: { symbol: string } }>('/control/filters/:symbol', async (req) => exchange.futuresFilters(exchange.requireListing(req.params.symbol, 'futures').symbol));
  app.get<{ Querystring: { account?: string } }>('/control/state', async (req, reply) => {
    const book = controlBook(req.query.account, reply);
    return book ? book.snapshot() : reply;
  });
  app.post<{ Body: FaultRuleInput }>('/control/faults', async (req, reply) => {
    try {
      return faults.add(req.body);
    } catch (err) {
      return reply.code(400).send({ error: (err as Error).message });
    }
  });
  app.get('/control/faults', async () => ({ rules: faults.list(), applied: faults.applied.length }));
  app.delete('/control/faults', async () => {
    faults.clear();
    return { rules: [] };
  });
  // Shifts the paper venue's clock: { "offsetMs": -5000 } puts it 5 s behind the local clock (a worker 5 s fast).
  app.post<{ Body: { offsetMs?: unknown } }>('/control/clock', async (req, reply) => {
    const offset = req.body?.offsetMs;
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset)) return reply.code(400).send({ error: 'expected { "offsetMs": <integer> }' });
    clockOffsetMs = offset;
    return { offsetMs: clockOffsetMs, serverTime: serverTime() };
  });
  app.get('/control/clock', async () => ({ offsetMs: clockOffsetMs, serverTime: serverTime() }));
  // Changes a key's permissions after it has worked: { "apiKey": "...", "status": "revoked" | "readOnly" | "ok" }.
  app.post<{ Body: { apiKey?: unknown; status?: unknown } }>('/control/keys', async (req, reply) => {
    const { apiKey, status } = req.body ?? {};
    if (typeof apiKey !== 'string' || !secrets.has(apiKey)) return reply.code(404).send({ error: 'no such API key' });
    if (typeof status !== 'string' || !(PAPER_KEY_STATUSES as readonly string[]).includes(status)) {
      return reply.code(400).send({ error: `status must be one of ${PAPER_KEY_STATUSES.join(', ')}` });
    }
    keyStatus.set(apiKey, status as PaperKeyStatus);
    return { status };
  });
  // Stream connections, subscriptions, listenKeys, events sent and the stream faults in force.
  app.get('/control/streams', async () => streams.stats());
  // Stream faults: { "action": "drop", "streams": "all" | "market" | "user" } closes those connections at once (no
  // close frame); { "action": "silence", "streams": ..., "ms"?: N } keeps them open, pinging, but sends no event (for N
  // ms, or until DELETE); { "action": "delay", "ms": N } sends every event N ms late.
  app.post<{ Body: { action?: unknown; streams?: unknown; ms?: unknown } }>('/control/streams/faults', async (req, reply) => {
    const { action, ms } = req.body ?? {};
    const group = (req.body?.streams ?? 'all') as StreamGroup;
    if (!(STREAM_GROUPS as readonly unknown[]).includes(group)) return reply.code(400).send({ error: `streams must be one of ${STREAM_GROUPS.join(', ')}` });
    if (ms !== undefined && (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0)) return reply.code(400).send({ error: 'ms must be a non-negative integer' });
    switch (action) {
      case 'drop':
        return { dropped: streams.drop(group) };
      case 'silence':
        streams.silence(group, ms as number | undefined);
        return streams.stats().faults;
      case 'delay':
        if (ms === undefined) return reply.code(400).send({ error: 'delay needs "ms"' });
        streams.delay(ms as number);
        return streams.stats().faults;
      default:
        return reply.code(400).send({ error: 'action must be one of drop, silence, delay' });
    }
  });
  app.delete('/control/streams/faults', async () => {
    streams.clearFaults();
    return streams.stats().faults;
  });
  app.get('/control/holds', async () => [...faults.held.values()].map(({ release: _release, ...h }) => h));
  app.post<{ Params: { id: string } }>('/control/holds/:id/release', async (req, reply) =>
    faults.release(Number(req.params.id)) ? { released: true } : reply.code(404).send({ error: 'no such held request' }),
  );

  const address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  const port = (app.server.address() as { port: number }).port;
  return {
    url: address,
    port,
    exchange,
    accounts,
    faults,
    requests,
    rateLimits,
    streams,
    app,
    close: async () => {
      faults.clear();
      await app.close();
    },
  };
}
