/**
 * The paper exchange's IP request-weight limits, as Binance states them. Loopback has one client IP, so there is one
 * window per API (spot `/api`, USDⓈ-M `/fapi`) per paper exchange.
 *
 * Sources:
 * - spot "LIMITS" → "IP Limits" (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits):
 *   "Every request will contain X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter) in the response headers which has the
 *   current used weight for the IP for all request rate limiters defined"; "When a 429 is received, it's your
 *   obligation as an API to back off and not spam the API"; "Repeatedly violating rate limits and/or failing to back
 *   off after receiving 429s will result in an automated IP ban (HTTP status 418)"; "IP bans are tracked and scale in
 *   duration for repeat offenders, from 2 minutes to 3 days"; "A Retry-After header is sent with a 418 or 429
 *   responses and will give the number of seconds required to wait, in the case of a 429, to prevent a ban, or, in the
 *   case of a 418, until the ban is over". REQUEST_WEIGHT 6,000 per minute (the `rateLimits` of GET
 *   /api/v3/exchangeInfo).
 * - USDⓈ-M "General Info" → "Limits" (https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info):
 *   the same headers, 429 and 418 rules; "The limits on the API are based on the IPs, not the API keys"; REQUEST_WEIGHT
 *   2,400 per minute.
 * - Per-endpoint weights: the spot OpenAPI description (binance/binance-api-swagger `spot_api.yaml`, "Weight(IP)") and
 *   the USDⓈ-M endpoint pages (cited per row below); ccxt 4.5.84's cost table (binance.js `api`) agrees except where
 *   noted.
 * Binance counts per clock minute; so does the paper exchange. How many requests after a 429 earn a ban Binance does not
 * state: the paper exchange tolerates `banAfterIgnored` (default 10: what a client may have on the wire when the 429
 * reaches it) and bans on the next.
 */

export type PaperApi = 'spot' | 'futures';

export interface PaperRateLimits {
  /** REQUEST_WEIGHT per minute, spot (`/api`). Binance: 6,000. */
  spotWeightPerMinute: number;
  /** REQUEST_WEIGHT per minute, USDⓈ-M (`/fapi`). Binance: 2,400. */
  futuresWeightPerMinute: number;
  /** Requests tolerated during a 429's Retry-After before the IP is banned (418). */
  banAfterIgnored: number;
  /** Length of the first ban; each further ban doubles it, up to 3 days. Binance: from 2 minutes. */
  firstBanSeconds: number;
}

export const BINANCE_RATE_LIMITS: PaperRateLimits = { spotWeightPerMinute: 6_000, futuresWeightPerMinute: 2_400, banAfterIgnored: 10, firstBanSeconds: 120 };
const MAX_BAN_SECONDS = 3 * 24 * 3600;
const MINUTE_MS = 60_000;

/** Which API a path belongs to, or undefined for paths outside the venue (control API). */
export function apiOf(path: string): PaperApi | undefined {
  if (path.startsWith('/api/')) return 'spot';
  if (path.startsWith('/fapi/')) return 'futures';
  return undefined;
}

/** Number of symbols in a spot `symbols=["A","B"]` parameter (0 if absent or unreadable). */
function symbolCount(params: URLSearchParams): number {
  const raw = params.get('symbols');
  if (raw === null) return 0;
  try {
    const list: unknown = JSON.parse(raw);
    return Array.isArray(list) ? list.length : 0;
  } catch {
    return 0;
  }
}

/**
 * The IP weight of a request, by endpoint and parameters. Unknown endpoints weigh 1.
 */
export function requestWeight(method: string, path: string, query: string): number {
  const p = new URLSearchParams(query);
  const hasSymbol = p.has('symbol');
  switch (`${method} ${path}`) {
    // ---- spot: spot_api.yaml "Weight(IP)" --------------------------------------------------------------------------
    case 'GET /api/v3/ping':
    case 'GET /api/v3/time':
      return 1;
    case 'GET /api/v3/exchangeInfo':
      return 20;
    case 'GET /api/v3/ticker/24hr': {
      // "2 for a single symbol; 80 when the symbol parameter is omitted"; with `symbols`: 1-20 → 2, 21-100 → 40,
      // 101+ → 80 (Market data endpoints, "24hr ticker price change statistics")
      if (hasSymbol) return 2;
      const n = symbolCount(p);
      if (n === 0) return 80;
      return n <= 20 ? 2 : n <= 100 ? 40 : 80;
    }
    case 'GET /api/v3/ticker/price':
      // "2 for a single symbol; 4 when the symbol parameter is omitted" (and for `symbols`)
      return hasSymbol ? 2 : 4;
    case 'GET /api/v3/account':
      return 20;
    case 'GET /api/v3/openOrders':
      // "6 for a single symbol; 80 when the symbol parameter is omitted"
      return hasSymbol ? 6 : 80;
    case 'DELETE /api/v3/openOrders':
    case 'DELETE /api/v3/order':
    case 'POST /api/v3/order':
      return 1;
    // ---- USDⓈ-M: developers.binance.com/docs/derivatives/usds-margined-futures/... -----------------------------------
    case 'GET /fapi/v1/ping':
    case 'GET /fapi/v1/time':
    case 'GET /fapi/v1/exchangeInfo': // market-data/rest-api/Exchange-Information: Weight 1
    case 'GET /fapi/v1/premiumIndex': // market-data/rest-api/Mark-Price: Weight 1
    case 'GET /fapi/v1/leverageBracket': // account/rest-api/Notional-and-Leverage-Brackets: Weight 1
      return 1;
    case 'GET /fapi/v1/ticker/24hr': // market-data/rest-api/24hr-Ticker-Price-Change-Statistics: 1 with symbol, 40 without
      return hasSymbol ? 1 : 40;
    case 'GET /fapi/v3/account': // account/rest-api/Account-Information-V3: Weight 5 (ccxt 4.5.84 says 1)
    case 'GET /fapi/v2/account':
    case 'GET /fapi/v3/positionRisk': // trade/rest-api/Position-Information-V3: Weight 5 (ccxt 4.5.84 says 1)
    case 'GET /fapi/v2/positionRisk':
      return 5;
    case 'GET /fapi/v1/openOrders': // trade/rest-api/Current-All-Open-Orders: 1 for a single symbol, 40 without
    case 'GET /fapi/v1/openAlgoOrders': // algo open orders: as ccxt's table, 1 / 40
      return hasSymbol ? 1 : 40;
    case 'DELETE /fapi/v1/allOpenOrders': // trade/rest-api/Cancel-All-Open-Orders: Weight 1
    case 'DELETE /fapi/v1/algoOpenOrders':
    case 'DELETE /fapi/v1/order': // trade/rest-api/Cancel-Order: Weight 1
    case 'DELETE /fapi/v1/algoOrder':
    case 'POST /fapi/v1/algoOrder':
      return 1;
    case 'POST /fapi/v1/order':
      // trade/rest-api/New-Order: "0 on IP rate limit(x-mbx-used-weight-1m)" (it counts on the order-count limits)
      return 0;
    default:
      return 1;
  }
}

/** What the limiter decided for one request. */
export type LimitDecision =
  | { kind: 'serve'; usedWeight: number }
  | { kind: 'tooMany'; usedWeight: number; retryAfterSeconds: number; limit: number }
  | { kind: 'banned'; usedWeight: number; retryAfterSeconds: number; until: number };

interface ApiWindow {
  window: number;
  used: number;
  /** A 429 was answered; its Retry-After ends here (0: none running). */
  backoffUntil: number;
  /** Requests received during that Retry-After. */
  ignored: number;
  bannedUntil: number;
  bans: number;
}

export class PaperRateLimiter {
  private limits: PaperRateLimits = { ...BINANCE_RATE_LIMITS };
  private readonly apis: Record<PaperApi, ApiWindow> = { spot: fresh(), futures: fresh() };
  /** Refusals answered since the last reset, for tests and reports. */
  readonly answered = { tooMany: 0, banned: 0 };

  get config(): PaperRateLimits {
    return { ...this.limits };
  }

  /** Changes limits (a partial update) and starts fresh windows, bans lifted. */
  configure(update: Partial<PaperRateLimits>): PaperRateLimits {
    for (const key of Object.keys(BINANCE_RATE_LIMITS) as (keyof PaperRateLimits)[]) {
      const value = update[key];
      if (value === undefined) continue;
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`${key} must be a non-negative number`);
      this.limits[key] = value;
    }
    this.reset();
    return this.config;
  }

  reset(): void {
    this.apis.spot = fresh();
    this.apis.futures = fresh();
    this.answered.tooMany = 0;
    this.answered.banned = 0;
  }

  limitOf(api: PaperApi): number {
    return api === 'spot' ? this.limits.spotWeightPerMinute : this.limits.futuresWeightPerMinute;
  }

  /** Used weight of the current minute (for the header of answers that did not pass through {@link admit}). */
  used(api: PaperApi, now: number): number {
    const w = this.roll(api, now);
    return w.used;
  }

  /** Counts a request, or refuses it with 429 (over the minute's limit) or 418 (banned, or ignoring a 429). */
  admit(api: PaperApi, weight: number, now: number): LimitDecision {
    const decision = this.decide(api, weight, now);
    if (decision.kind === 'tooMany') this.answered.tooMany += 1;
    if (decision.kind === 'banned') this.answered.banned += 1;
    return decision;
  }

  private decide(api: PaperApi, weight: number, now: number): LimitDecision {
    const w = this.roll(api, now);
    if (now < w.bannedUntil) return { kind: 'banned', usedWeight: w.used, retryAfterSeconds: Math.ceil((w.bannedUntil - now) / 1000), until: w.bannedUntil };
    if (now < w.backoffUntil) {
      w.ignored += 1;
      if (w.ignored > this.limits.banAfterIgnored) {
        const seconds = Math.min(MAX_BAN_SECONDS, this.limits.firstBanSeconds * 2 ** w.bans);
        w.bans += 1;
        w.bannedUntil = now + seconds * 1000;
        w.backoffUntil = 0;
        return { kind: 'banned', usedWeight: w.used, retryAfterSeconds: seconds, until: w.bannedUntil };
      }
    } else {
      w.backoffUntil = 0;
      w.ignored = 0;
    }
    const limit = this.limitOf(api);
    if (w.used + weight > limit) {
      const retryAfterSeconds = Math.max(1, Math.ceil((w.window + MINUTE_MS - now) / 1000));
      if (w.backoffUntil === 0) w.backoffUntil = now + retryAfterSeconds * 1000;
      return { kind: 'tooMany', usedWeight: w.used, retryAfterSeconds, limit };
    }
    w.used += weight;
    return { kind: 'serve', usedWeight: w.used };
  }

  /** Weight spent by another client on the same IP (a bot): POST /control/limits/spend. */
  spend(api: PaperApi, weight: number, now: number): number {
    const w = this.roll(api, now);
    w.used += weight;
    return w.used;
  }

  private roll(api: PaperApi, now: number): ApiWindow {
    const w = this.apis[api];
    const window = Math.floor(now / MINUTE_MS) * MINUTE_MS;
    if (w.window !== window) {
      w.window = window;
      w.used = 0;
    }
    return w;
  }
}

function fresh(): ApiWindow {
  return { window: 0, used: 0, backoffUntil: 0, ignored: 0, bannedUntil: 0, bans: 0 };
}
