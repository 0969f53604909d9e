/**
 * A per-venue request budget by Binance's own rules, replacing ccxt's leaky bucket (50 ms per unit of weight, about
 * half of what USDⓈ-M allows and a serialised queue for every burst).
 *
 * What Binance states (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits "IP Limits", and
 * https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info "Limits"):
 * - every request has a weight; the weights of one IP are summed per interval (REQUEST_WEIGHT, 1 MINUTE): spot 6,000,
 *   USDⓈ-M 2,400; `exchangeInfo` lists the limits under `rateLimits`;
 * - every answer carries `X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)`, the IP's weight used in the interval;
 * - over the limit the venue answers 429 with `Retry-After` (seconds); "repeatedly violating rate limits and/or
 *   failing to back off after receiving 429s will result in an automated IP ban (HTTP status 418)", with a
 *   `Retry-After` until the ban ends; "IP bans are tracked and scale in duration for repeat offenders, from 2 minutes
 *   to 3 days".
 *
 * So the budget (pure logic, time passed in):
 * - counts the weight of each request in the current minute, and takes the venue's `X-MBX-USED-WEIGHT-1M` as the
 *   truth whenever an answer brings it (the IP is shared with the account's bots, which we do not see);
 * - keeps a reserve (the last 20 % of the minute) for the emergency path: routine requests (valuation reads) are
 *   refused at 80 %, cancels and closes may use the rest;
 * - after a 429 or 418, sends nothing to the venue until `Retry-After` has passed.
 * A refused request fails at once with {@link RateBudgetExhausted} (a ccxt `RateLimitExceeded`, so classified as
 * retryable) carrying the wait, which the activity hands to Temporal as the next retry delay: nothing loops against
 * the venue, so nothing earns a ban.
 *
 * Which kind of request is being made comes from the caller's async context ({@link withRequestPriority}): the
 * emergency activities run their venue calls inside it, everything else is routine.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import ccxt from 'ccxt';

/** Emergency: cancels, closes and the listings they need. Routine: everything else (valuation reads, markets). */
export type RequestPriority = 'emergency' | 'routine';

const priorityContext = new AsyncLocalStorage<RequestPriority>();

/** Runs `work` with every venue request inside it counted as `priority` (default outside: routine). */
export function withRequestPriority<T>(priority: RequestPriority, work: () => Promise<T>): Promise<T> {
  return priorityContext.run(priority, work);
}

/** The priority of the request being made in this async context. */
export function currentRequestPriority(): RequestPriority {
  return priorityContext.getStore() ?? 'routine';
}

/** The REQUEST_WEIGHT limit per minute Binance states for each API (before `exchangeInfo` has told us). */
export const BINANCE_WEIGHT_PER_MINUTE = { spot: 6_000, perp: 2_400 } as const;
/** Share of each minute's weight kept for the emergency path. */
export const EMERGENCY_RESERVE = 0.2;
const MINUTE_MS = 60_000;
/** A 418 without `Retry-After`: the shortest ban Binance states. */
const DEFAULT_BAN_MS = 2 * MINUTE_MS;

/** A request refused locally (budget spent, or the venue asked us to wait). Retryable, after `retryAfterMs`. */
export class RateBudgetExhausted extends ccxt.RateLimitExceeded {
  override name = 'RateBudgetExhausted';
  constructor(
    message: string,
    /** How long to wait before trying again. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/** What one answer told us about the venue's limits. */
export interface VenueAnswer {
  status: number;
  /** `X-MBX-USED-WEIGHT-1M`, if present. */
  usedWeight?: number;
  /** `Retry-After`, in seconds, if present. */
  retryAfterSeconds?: number;
}

/** One admitted request, from admission to its answer. */
export interface RequestTicket {
  weight: number;
  priority: RequestPriority;
  /** Start of the minute it was counted in. */
  window: number;
  answered: boolean;
  /** The HTTP status of its answer, once answered. */
  status?: number;
}

export interface RateBudgetSnapshot {
  weightPerMinute: number;
  /** Weight counted in the current minute (venue's figure plus ours in flight). */
  used: number;
  /** Routine requests stop at this weight. */
  routineCap: number;
  /** No request before this time (ms since epoch), 0 if none. */
  blockedUntil: number;
  inFlight: number;
}

export class RateBudget {
  private window = 0;
  private used = 0;
  private blockedUntil = 0;
  private readonly inFlight = new Set<RequestTicket>();

  /**
   * @param venue for messages
   * @param weightPerMinute the venue's REQUEST_WEIGHT limit per minute
   * @param reserve share of the minute kept for emergency requests
   */
  constructor(
    readonly venue: string,
    private weightPerMinute: number,
    private readonly reserve = EMERGENCY_RESERVE,
  ) {}

  /** The venue stated its limit (`exchangeInfo` → `rateLimits`): use it from now on. */
  setWeightPerMinute(limit: number): void {
    if (Number.isFinite(limit) && limit > 0) this.weightPerMinute = limit;
  }

  get routineCap(): number {
    return Math.floor(this.weightPerMinute * (1 - this.reserve));
  }

  snapshot(now: number): RateBudgetSnapshot {
    this.roll(now);
    return { weightPerMinute: this.weightPerMinute, used: this.used, routineCap: this.routineCap, blockedUntil: this.blockedUntil, inFlight: this.inFlight.size };
  }

  /**
   * Counts a request of `weight` about to be sent, or refuses it.
   * @throws RateBudgetExhausted while the venue's `Retry-After` runs, when a routine request would reach into the
   *   reserve, or when any request would exceed the minute's limit; `retryAfterMs` says how long to wait
   */
  admit(weight: number, priority: RequestPriority, now: number): RequestTicket {
    if (now < this.blockedUntil) {
      const wait = this.blockedUntil - now;
      throw new RateBudgetExhausted(`${this.venue}: the venue asked to wait (Retry-After); no request for ${Math.ceil(wait / 1000)} s`, wait);
    }
    this.roll(now);
    const cap = priority === 'emergency' ? this.weightPerMinute : this.routineCap;
    if (this.used + weight > cap) {
      const wait = this.window + MINUTE_MS - now;
      const why = priority === 'emergency' ? 'the minute\'s request weight is spent' : `routine requests stop at ${this.routineCap} of ${this.weightPerMinute}; the rest is kept for cancels and closes`;
      throw new RateBudgetExhausted(`${this.venue}: ${why} (used ${this.used}, this request ${weight}); next minute in ${Math.ceil(wait / 1000)} s`, wait);
    }
    this.used += weight;
    const ticket: RequestTicket = { weight, priority, window: this.window, answered: false };
    this.inFlight.add(ticket);
    return ticket;
  }

  /**
   * Takes in what an answer says: the venue's used weight replaces our count (plus what we still have in flight,
   * which it may not have counted yet: overcounting is the safe side, and their own answers correct it), and a 429
   * or 418 blocks every request until its `Retry-After` has passed.
   */
  observe(ticket: RequestTicket, answer: VenueAnswer, now: number): void {
    ticket.answered = true;
    ticket.status = answer.status;
    this.inFlight.delete(ticket);
    this.roll(now);
    // An answer from the previous minute says nothing about this one.
    if (answer.usedWeight !== undefined && Number.isFinite(answer.usedWeight) && ticket.window === this.window) {
      let pending = 0;
      for (const other of this.inFlight) if (other.window === this.window) pending += other.weight;
      this.used = answer.usedWeight + pending;
    }
    if (answer.status === 429 || answer.status === 418) {
      const fallback = answer.status === 418 ? DEFAULT_BAN_MS : this.window + MINUTE_MS - now;
      const wait = answer.retryAfterSeconds !== undefined && Number.isFinite(answer.retryAfterSeconds) ? answer.retryAfterSeconds * 1000 : fallback;
      this.blockedUntil = Math.max(this.blockedUntil, now + wait);
    }
  }

  /** A request that ended without an answer (timeout, connection lost): stop tracking it; its weight stays counted. */
  settle(ticket: RequestTicket): void {
    this.inFlight.delete(ticket);
  }

  /** The wait still imposed by the venue, in ms (0 if none). */
  blockedFor(now: number): number {
    return Math.max(0, this.blockedUntil - now);
  }

  /** Binance counts weight per clock minute. */
  private roll(now: number): void {
    const window = Math.floor(now / MINUTE_MS) * MINUTE_MS;
    if (window !== this.window) {
      this.window = window;
      this.used = 0;
      for (const t of this.inFlight) if (t.window === window) this.used += t.weight;
    }
  }
}

/**
 * Venue weights that ccxt 4.5.84's cost table gets wrong, by "api METHOD path" (ccxt's names), from Binance's
 * documentation: GET /fapi/v3/account weight 5
 * (https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Account-Information-V3) and
 * GET /fapi/v3/positionRisk weight 5 (.../trade/rest-api/Position-Information-V3); ccxt has 1 for both.
 */
const WEIGHT_CORRECTIONS: Record<string, number> = {
  'fapiPrivateV3 GET account': 5,
  'fapiPrivateV3 GET positionRisk': 5,
};

/**
 * A request's weight in the venue's units, from ccxt's cost for it (ccxt's `calculateRateLimiterCost`, which knows
 * the `noSymbol` variants): ccxt writes spot (`api/v3`) costs as weight × 0.2 ("Weight(IP): 20 => cost = 0.2 * 20 = 4"
 * in binance.js) and USDⓈ-M costs as the weight itself.
 */
export function venueWeight(api: string, method: string, path: string, ccxtCost: number): number {
  const corrected = WEIGHT_CORRECTIONS[`${api} ${method} ${path}`];
  if (corrected !== undefined) return corrected;
  const weight = api === 'public' || api === 'private' ? ccxtCost * 5 : ccxtCost;
  return Math.max(1, Math.round(weight));
}

/** Reads a header case-insensitively (ccxt capitalises names: `X-Mbx-Used-Weight-1m`, `Retry-After`). */
function header(headers: Record<string, unknown> | undefined, name: string): number | undefined {
  if (!headers) return undefined;
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === lower) {
      const n = Number(Array.isArray(value) ? value[0] : value);
      return Number.isFinite(n) ? n : undefined;
    }
  }
  return undefined;
}

/** The REQUEST_WEIGHT per minute an `exchangeInfo` body states, if it states one. */
function statedWeightPerMinute(body: string): number | undefined {
  if (!body.includes('REQUEST_WEIGHT')) return undefined;
  try {
    const limits = (JSON.parse(body) as { rateLimits?: unknown }).rateLimits;
    if (!Array.isArray(limits)) return undefined;
    const rule = limits.find(
      (l: { rateLimitType?: unknown; interval?: unknown; intervalNum?: unknown }) => l?.rateLimitType === 'REQUEST_WEIGHT' && l.interval === 'MINUTE' && l.intervalNum === 1,
    ) as { limit?: unknown } | undefined;
    return typeof rule?.limit === 'number' ? rule.limit : undefined;
  } catch {
    return undefined;
  }
}

/** The two ccxt methods the budget wraps on an instance (ccxt's base `Exchange`). */
interface Hookable {
  fetch2(path: string, api: unknown, method: string, params: Record<string, unknown>, headers: unknown, body: unknown, config: Record<string, unknown>): Promise<unknown>;
  onRestResponse(status: number, statusText: string, url: string, method: string, headers: Record<string, unknown>, body: string, ...rest: unknown[]): string;
  calculateRateLimiterCost(api: unknown, method: string, path: string, params: Record<string, unknown>, config: Record<string, unknown>): number;
}

const currentTicket = new AsyncLocalStorage<RequestTicket>();

/**
 * Installs `budget` on a ccxt instance: every REST request is admitted by it before it is sent (by venue weight and
 * the caller's {@link RequestPriority}), every answer's used-weight and `Retry-After` headers go back into it, and a
 * 429/418 answer surfaces as {@link RateBudgetExhausted} with the venue's wait. Wraps ccxt's `fetch2` and
 * `onRestResponse` on the instance, so any `fetchImplementation` (a routed fetch for the paper exchange) is kept.
 */
export function installRateBudget(exchange: object, budget: RateBudget, clock: () => number = Date.now): void {
  const ex = exchange as unknown as Hookable;
  const fetch2 = ex.fetch2.bind(ex);
  const onRestResponse = ex.onRestResponse.bind(ex);
  ex.fetch2 = async (path, api, method, params = {}, headers, body, config = {}) => {
    const apiName = Array.isArray(api) ? api.join('') : String(api);
    const weight = venueWeight(apiName, method, path, ex.calculateRateLimiterCost(api, method, path, params, config));
    const ticket = budget.admit(weight, currentRequestPriority(), clock());
    try {
      return await currentTicket.run(ticket, () => fetch2(path, api, method, params, headers, body, config));
    } catch (err) {
      const wait = budget.blockedFor(clock());
      if (wait > 0 && (ticket.status === 429 || ticket.status === 418) && !(err instanceof RateBudgetExhausted)) {
        throw new RateBudgetExhausted(`${budget.venue}: ${(err as Error).message}; the venue asked to wait ${Math.ceil(wait / 1000)} s`, wait);
      }
      throw err;
    } finally {
      budget.settle(ticket);
    }
  };
  ex.onRestResponse = (status, statusText, url, method, headers, responseBody, ...rest) => {
    const ticket = currentTicket.getStore();
    if (ticket && !ticket.answered) {
      budget.observe(ticket, { status, usedWeight: header(headers, 'X-MBX-USED-WEIGHT-1M'), retryAfterSeconds: header(headers, 'Retry-After') }, clock());
      if (url.includes('/exchangeInfo')) {
        const stated = statedWeightPerMinute(responseBody);
        if (stated !== undefined) budget.setWeightPerMinute(stated);
      }
    }
    return onRestResponse(status, statusText, url, method, headers, responseBody, ...rest);
  };
}
