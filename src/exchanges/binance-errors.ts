/**
 * Binance errors by the venue's own code (or HTTP status), for the cases where the ccxt class alone misleads.
 *
 * ccxt's class for a Binance error depends on state we cannot see from the error: after any successful private
 * call, ccxt 4.5.84 turns -2015 into `DDoSProtection` (binance.js `handleErrors`, "a workaround for
 * {"code":-2015,...}" guarded by `options.hasAlreadyAuthenticatedSuccessfully`, set in `request()` after a private
 * call), so a revoked key looks like a rate limit; the class of -1021/-1022/-2014/-2015 also differs by URL
 * (`getExceptionsByUrl`: `BadRequest` / `OperationRejected` in the portfolio-margin map, `InvalidNonce` /
 * `AuthenticationError` in the general `exact` map); and HTTP 403, 404 and 451 all become `ExchangeNotAvailable`
 * (base/Exchange.js `httpExceptions`), a network-family error that would be retried for ever.
 *
 * This table is the one place that overrides the class. A row matches on the Binance code in the error body
 * (`{"code":-2015,"msg":"..."}`) or, when the body carries no code (HTML, or `"code":0`), on the HTTP status.
 * Everything not listed keeps the class-based mapping of src/activities/exchange-errors.ts.
 */
import { VenueFailureType } from '../api/failures';

/** One row of the mapping: what Binance means by a code or status, and what the guard does with it. */
export interface BinanceErrorRow {
  /** Binance's `code` from the error body (negative), or the HTTP status when the body carries none. */
  match: { code: number } | { status: number };
  /** What the venue means, in words an operator reads in the failure message. */
  meaning: string;
  type: VenueFailureType;
  /** Retrying the same request will not help: Temporal must not retry; the guard alerts (and sweeps again later). */
  nonRetryable: boolean;
  /**
   * The activity edge resynchronises the client's clock with the venue's server time and retries the call once
   * before this row applies (src/activities/venue-clock.ts); the failure is what remains after that.
   */
  resyncClockFirst?: true;
  /** Where the venue documents it, and what ccxt does with it. */
  source: string;
}

const SPOT_ERRORS = 'https://developers.binance.com/docs/binance-spot-api-docs/errors';
const FUTURES_ERRORS = 'https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code';

/** The mapping, as data. Tested row by row with the venue's real bodies through real ccxt (test/unit/exchange-errors.test.ts). */
export const BINANCE_ERROR_TABLE: readonly BinanceErrorRow[] = [
  {
    match: { code: -2015 },
    meaning: 'API key invalid, revoked, IP not allowed or missing permission for this action',
    type: VenueFailureType.AuthFailed,
    nonRetryable: true,
    source: `${SPOT_ERRORS} -2015 REJECTED_MBX_KEY; ccxt binance.js handleErrors throws DDoSProtection for it after a successful private call (hasAlreadyAuthenticatedSuccessfully)`,
  },
  {
    match: { code: -2014 },
    meaning: 'API key format invalid',
    type: VenueFailureType.AuthFailed,
    nonRetryable: true,
    source: `${SPOT_ERRORS} -2014 BAD_API_KEY_FMT; ccxt: AuthenticationError, OperationRejected on papi URLs`,
  },
  {
    match: { code: -1022 },
    meaning: 'signature not valid (wrong secret for this key)',
    type: VenueFailureType.AuthFailed,
    nonRetryable: true,
    source: `${SPOT_ERRORS} -1022 INVALID_SIGNATURE; ccxt: AuthenticationError, BadRequest on papi URLs`,
  },
  {
    match: { code: -2008 },
    meaning: 'API key id invalid',
    type: VenueFailureType.AuthFailed,
    nonRetryable: true,
    source: `${FUTURES_ERRORS} -2008 BAD_API_ID; ccxt binance.js exceptions.spot.exact '-2008': AuthenticationError`,
  },
  {
    match: { code: -1021 },
    meaning: "request timestamp outside the venue's window even after resynchronising with its server time (worker clock skewed or drifting)",
    type: VenueFailureType.ClockSkew,
    nonRetryable: true,
    resyncClockFirst: true,
    source: `${SPOT_ERRORS} -1021 INVALID_TIMESTAMP; rule: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security "Timing security"; ccxt: InvalidNonce (network family, retried for ever)`,
  },
  {
    match: { status: 451 },
    meaning: 'restricted location: the venue refuses to serve this worker from where it runs',
    type: VenueFailureType.Refused,
    nonRetryable: true,
    source: `Binance's 451 body {"code":0,"msg":"Service unavailable from a restricted location according to 'b. Eligibility' in https://www.binance.com/en/terms. ..."}; ccxt base/Exchange.js httpExceptions '451': ExchangeNotAvailable`,
  },
  {
    match: { status: 403 },
    meaning: "blocked by the venue's WAF (web application firewall)",
    type: VenueFailureType.Refused,
    nonRetryable: true,
    source: `https://developers.binance.com/docs/binance-spot-api-docs/rest-api/http-return-codes "HTTP 403 ... WAF"; ccxt httpExceptions '403': ExchangeNotAvailable`,
  },
  {
    match: { status: 404 },
    meaning: 'no such endpoint at the venue (wrong URL or API retired)',
    type: VenueFailureType.Rejected,
    nonRetryable: true,
    source: `https://developers.binance.com/docs/binance-spot-api-docs/rest-api/http-return-codes "4XX ... malformed requests; the issue is on the sender's side"; ccxt httpExceptions '404': ExchangeNotAvailable`,
  },
];

/** What an error says about the venue's answer: Binance's code and message from the body, the HTTP status. */
export interface VenueErrorFacts {
  code?: number;
  msg?: string;
  status?: number;
}

/** Messages are scanned only this far: a venue's HTML error page can be large, and the facts come first or last. */
const MAX_SCANNED_CHARS = 20_000;

/**
 * Reads Binance's code and the HTTP status from a ccxt error message. ccxt puts the raw body in the message:
 * `binance {"code":-2015,"msg":"..."}` (binance.js handleErrors), `binance 429 Too Many Requests {...}` (418/429) or
 * `binance GET https://... 451 Unavailable For Legal Reasons {...}` (base/Exchange.js handleHttpStatusCode).
 * A `"code":0` body (Binance's 451 answer) carries no code: the status decides.
 */
export function venueErrorFacts(message: string): VenueErrorFacts {
  const text = message.length > 2 * MAX_SCANNED_CHARS ? message.slice(0, MAX_SCANNED_CHARS) + message.slice(-MAX_SCANNED_CHARS) : message;
  const facts: VenueErrorFacts = {};
  const status = /^\S+ (?:(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) \S+ )?([1-5]\d\d)(?: |$)/.exec(text);
  if (status) facts.status = Number(status[1]);
  const body = /\{\s*"code"\s*:\s*(-?\d{1,9})\s*,\s*"msg"\s*:\s*"((?:[^"\\]|\\.){0,1000})"/.exec(text);
  if (body && Number(body[1]) !== 0) {
    facts.code = Number(body[1]);
    try {
      facts.msg = JSON.parse(`"${body[2]}"`) as string;
    } catch {
      facts.msg = body[2];
    }
  }
  return facts;
}

/** The row for an error message, by code first (the venue's own word), then by HTTP status. */
export function binanceErrorRow(message: string): { row: BinanceErrorRow; facts: VenueErrorFacts } | undefined {
  const facts = venueErrorFacts(message);
  const row =
    (facts.code !== undefined ? BINANCE_ERROR_TABLE.find((r) => 'code' in r.match && r.match.code === facts.code) : undefined) ??
    (facts.status !== undefined && facts.code === undefined ? BINANCE_ERROR_TABLE.find((r) => 'status' in r.match && r.match.status === facts.status) : undefined);
  return row ? { row, facts } : undefined;
}

/** True when the venue refused a request's timestamp (-1021): resynchronise the clock and retry once. */
export function isClockRefusal(err: unknown): boolean {
  return err instanceof Error && binanceErrorRow(err.message)?.row.resyncClockFirst === true;
}
