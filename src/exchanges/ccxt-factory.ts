/**
 * Builds ccxt exchange instances for configured venues.
 */
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
 * accounts, or a fresh client per test) spend from the same minute.
 */
const budgets = new Map<string, RateBudget>();
function budgetFor(spec: VenueSpec, kind: VenueKind, mode: VenueMode): RateBudget {
  const key = `${kind} ${mode} ${spec.routeTo ?? ''}`;
  let budget = budgets.get(key);
  if (!budget) {
    budget = new RateBudget(spec.id, BINANCE_WEIGHT_PER_MINUTE[kind]);
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
 * Builds a venue's ccxt instance.
 * @throws Error when mode, routeTo and account do not fit together (see venueSpecProblems)
 */
export function createVenueClient(spec: VenueSpec, credentials: Credentials, paperHosts: readonly string[] = paperHostsFrom()): VenueClient {
  const problems = venueSpecProblems(spec, paperHosts);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const mode = modeOf(spec);
  const kind = SUPPORTED_EXCHANGES[spec.exchange];
  const ExchangeClass = ccxt[spec.exchange];
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
  if (mode === 'paper' && spec.routeTo) exchange.fetchImplementation = routedFetch(spec.routeTo);
  const budget = budgetFor(spec, kind, mode);
  installRateBudget(exchange, budget);
  return { id: spec.id, kind, mode, ...(spec.account ? { account: spec.account } : {}), exchange, books: new BinanceBooks(exchange, kind, spec.id), budget };
}
