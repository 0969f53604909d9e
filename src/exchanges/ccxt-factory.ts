/**
 * Builds ccxt exchange instances for configured venues.
 */
import { Agent as HttpAgent } from 'node:http';
import ccxt, { Exchange } from 'ccxt';
import { BinanceBooks } from './binance-books';
import { BINANCE_WEIGHT_PER_MINUTE, RateBudget, installRateBudget } from './rate-budget';
import { Credentials, SUPPORTED_EXCHANGES, VenueKind, VenueMode, VenueSpec, modeOf, paperHostsFrom, venueSpecProblems } from './venues';

/** A venue as the activities see it: its id, what it trades, and a ready ccxt instance. */
export interface VenueClient {
  id: string;
  kind: VenueKind;
  mode: VenueMode;
  /** The one account allowed to act on this venue; undefined only for a paper venue that serves any account. */
  account?: string;
  exchange: Exchange;
  /** Shape-checked access to the venue's order books, positions and balances. */
  books: BinanceBooks;
  /** The request budget this venue's requests are admitted by (shared by every client of the same host and API). */
  budget: RateBudget;
}

/**
 * One budget per API host in this process: Binance counts weight per IP, so two clients of the same host (two
 * accounts, or a fresh client per test) spend from the same minute. It starts from Binance's limit, or from a paper
 * venue's declared `weightPerMinute` (the first client of the host sets it; venueSpecProblems allows it only in paper
 * mode).
 */
const budgets = new Map<string, RateBudget>();
function budgetFor(spec: VenueSpec, kind: VenueKind, mode: VenueMode): RateBudget {
  const key = `${kind} ${mode} ${spec.routeTo ?? ''}`;
  let budget = budgets.get(key);
  if (!budget) {
    budget = new RateBudget(spec.id, spec.weightPerMinute ?? BINANCE_WEIGHT_PER_MINUTE[kind]);
    budgets.set(key, budget);
  }
  return budget;
}

/**
 * A fetch that sends every request to `origin` instead of the venue's host, keeping path and query. We keep the
 * venue's real URLs in ccxt (rather than rewriting `urls`) because ccxt picks error classes by URL.
 */
export function routedFetch(origin: string): typeof fetch {
  const target = new URL(origin);
  return (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    url.protocol = target.protocol;
    url.host = target.host;
    return fetch(url, init);
  };
}

/**
 * A Binance WebSocket URL as the paper exchange serves it: `wss://stream.binance.com:9443/ws` becomes
 * `ws://<paper host>/stream.binance.com/ws`. The paper has one port for every Binance host, so the host moves into
 * the path and the rest of the path stays Binance's (tooling/paper/streams.ts).
 */
export function paperWsUrl(url: string, origin: string): string {
  const real = new URL(url);
  const target = new URL(origin);
  const scheme = target.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${target.host}/${real.hostname}${real.pathname}${real.search}`;
}

/** Every WebSocket URL of a ccxt `urls.api.ws` tree (ws-api nested), pointed at the paper exchange. */
function paperWsUrls(tree: unknown, origin: string): unknown {
  if (typeof tree === 'string') return /^wss?:\/\//.test(tree) ? paperWsUrl(tree, origin) : tree;
  if (typeof tree !== 'object' || tree === null) return tree;
  return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, paperWsUrls(v, origin)]));
}

/**
 * ccxt schedules listenKey keep-alives with a bare 20-minute setTimeout (Exchange.delay, used by pro binance.js
 * `authenticate` and `keepAliveListenKey`) that `close()` does not clear: a closed client would keep its process
 * alive for up to 20 minutes. Such timers are tracked, unref'd (they never hold a process up on their own), and
 * cleared by `close()`.
 */
function closeableDelays(exchange: Exchange): void {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  exchange.delay = (timeout: number, method: unknown, ...args: unknown[]) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      void exchange.spawn(method, ...args);
    }, timeout);
    timer.unref();
    timers.add(timer);
  };
  const close = exchange.close.bind(exchange);
  exchange.close = async (cleanInstanceCache?: boolean) => {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    return close(cleanInstanceCache);
  };
}

/**
 * ccxt pro binance.js `ensureUserDataStreamWsSubscribeSignature` creates a future ('authenticate:signature:spot')
 * that only concurrent callers await, and rejects it when the subscribe is refused (a bad secret: -1022): with no
 * concurrent caller nobody handles that rejection, and Node's default `--unhandled-rejections=throw` ends the worker.
 * Every WebSocket client's futures get a no-op handler here; whoever awaits a future still gets its rejection.
 */
function handledWsFutures(exchange: Exchange): void {
  type WsClient = ReturnType<Exchange['client']>;
  const patched = new WeakSet<WsClient>();
  const client = exchange.client.bind(exchange);
  exchange.client = (url: string) => {
    const c = client(url);
    if (!patched.has(c)) {
      patched.add(c);
      const future = c.future.bind(c);
      c.future = (messageHash: string) => {
        const f = future(messageHash);
        (f as unknown as Promise<unknown>).catch(() => undefined);
        return f;
      };
    }
    return c;
  };
}

/**
 * Builds a venue's ccxt instance.
 * @throws Error when mode, routeTo and account do not fit together (see venueSpecProblems)
 */
export function createVenueClient(spec: VenueSpec, credentials: Credentials, paperHosts: readonly string[] = paperHostsFrom()): VenueClient {
  const problems = venueSpecProblems(spec, paperHosts);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const mode = modeOf(spec);
  const kind = SUPPORTED_EXCHANGES[spec.exchange];
  // The pro class: it extends the REST one (every REST call works as before) and adds the watch* methods.
  const ExchangeClass = ccxt.pro[spec.exchange];
  const exchange: Exchange = new ExchangeClass({
    apiKey: credentials.apiKey,
    secret: credentials.secret,
    // The request budget (below) paces by Binance's real weights and limits; ccxt's own limiter only where the spec
    // asks for it (rateLimitMs).
    enableRateLimit: spec.rateLimitMs !== undefined,
    timeout: spec.timeoutMs,
    ...(spec.rateLimitMs !== undefined ? { rateLimit: spec.rateLimitMs } : {}),
    options: {
      defaultType: kind === 'spot' ? 'spot' : 'swap',
      fetchMarkets: { types: [kind === 'spot' ? 'spot' : 'linear'] },
      // sapi currency listings need extra permissions and add nothing to valuation
      fetchCurrencies: false,
      fetchMargins: false,
      // sweeping every symbol is the point of an emergency cancel; we accept the heavier rate-limit weight
      warnOnFetchOpenOrdersWithoutSymbol: false,
      // The watcher reads only the last trade of each symbol; ccxt keeps 1,000 per symbol by default (per client).
      tradesLimit: 10,
      fetchOpenOrders: { warnWithoutSymbol: false },
      // Sign with the venue's clock, not ours: Binance refuses timestamps >= its server time + 1000 ms whatever the
      // recvWindow. ccxt re-measures the offset (GET /api/v3/time, /fapi/v1/time) whenever markets load; the
      // activities also measure it at first use and after a -1021 (src/activities/venue-clock.ts).
      adjustForTimeDifference: true,
    },
  });
  // Amounts come back as strings so that they reach decimal.js without passing through a double.
  exchange.number = String as unknown as typeof Number;
  // Binance demo trading: ccxt switches every URL to the venue's demo hosts (demo-api.binance.com, demo-fapi...).
  if (mode === 'demo') exchange.enableDemoTrading(true);
  if (mode === 'paper' && spec.routeTo) {
    exchange.fetchImplementation = routedFetch(spec.routeTo);
    // WebSockets do not go through fetch: point every stream URL (market streams, USDⓈ-M user data, the spot
    // WebSocket API) at the paper server, each with Binance's path.
    const api = exchange.urls.api as Record<string, unknown>;
    exchange.urls = { ...exchange.urls, api: { ...api, ws: paperWsUrls(api.ws, spec.routeTo) } } as typeof exchange.urls;
    // ccxt refuses a plain ws:// URL unless the instance has an http Agent (Exchange.getHttpAgentIfNeeded, which
    // otherwise asks for `await loadHttpProxyAgent()`); the paper server speaks plain HTTP.
    if (new URL(spec.routeTo).protocol === 'http:') exchange.httpAgent = new HttpAgent();
  }
  closeableDelays(exchange);
  handledWsFutures(exchange);
  const budget = budgetFor(spec, kind, mode);
  installRateBudget(exchange, budget);
  return { id: spec.id, kind, mode, ...(spec.account ? { account: spec.account } : {}), exchange, books: new BinanceBooks(exchange, kind, spec.id), budget };
}
