/**
 * The one place where exchange errors become Temporal failures. Activities call {@link classifyExchangeError} on
 * anything a venue throws; the workflow's retry policy then does the right thing by failure type.
 */
import { ApplicationFailure } from '@temporalio/common';
import ccxt from 'ccxt';
import { VenueFailureType } from '../api/failures';
import { MalformedResponseError } from '../exchanges/binance-books';
import { RateBudgetExhausted } from '../exchanges/rate-budget';
import { binanceErrorRow } from '../exchanges/binance-errors';
import { redactRequestSecrets } from '../exchanges/redact';

export { VenueFailureType };

export { MalformedResponseError };

/**
 * Maps an error thrown by ccxt (or by our response checks) to an {@link ApplicationFailure}.
 * Messages keep the venue's words but never credentials (ccxt does not put keys in error messages; we strip
 * `signature=` and `X-MBX-APIKEY` anyway in case a URL is echoed).
 */
export function classifyExchangeError(err: unknown, venue: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const message = `${venue}: ${redactRequestSecrets(err instanceof Error ? err.message : String(err))}`;
  const cls = err instanceof Error ? err.constructor.name : 'unknown';
  const details = [{ venue, errorClass: cls }];
  if (err instanceof MalformedResponseError) {
    return ApplicationFailure.create({ type: VenueFailureType.MalformedResponse, message, details });
  }
  // Refused by the request budget, or the venue's 429/418: retried only after the wait the venue stated, so that
  // Temporal's retry never hammers a venue that asked us to stop (src/exchanges/rate-budget.ts).
  if (err instanceof RateBudgetExhausted) {
    return ApplicationFailure.create({ type: VenueFailureType.Unavailable, message, details: [{ venue, errorClass: cls, retryAfterMs: err.retryAfterMs }], nextRetryDelay: err.retryAfterMs });
  }
  // The venue's own code (or HTTP status) first, where ccxt's class depends on state we cannot see (a -2015 after a
  // successful call is ccxt's DDoSProtection; 403/404/451 are its ExchangeNotAvailable): src/exchanges/binance-errors.ts.
  const byCode = err instanceof ccxt.BaseError ? binanceErrorRow(err.message) : undefined;
  if (byCode) {
    const { row, facts } = byCode;
    const venueAnswer = facts.code !== undefined ? `Binance ${facts.code}` : `HTTP ${facts.status}`;
    return ApplicationFailure.create({
      type: row.type,
      message: `${venue}: ${row.meaning} (${venueAnswer}): ${message.slice(venue.length + 2)}`,
      details: [{ venue, errorClass: cls, ...(facts.code !== undefined ? { venueCode: facts.code } : {}), ...(facts.status !== undefined ? { httpStatus: facts.status } : {}) }],
      nonRetryable: row.nonRetryable,
    });
  }
  // Order matters: PermissionDenied, AccountSuspended etc. are subclasses of AuthenticationError or ExchangeError.
  if (err instanceof ccxt.AuthenticationError || err instanceof ccxt.PermissionDenied || err instanceof ccxt.AccountSuspended) {
    return ApplicationFailure.create({ type: VenueFailureType.AuthFailed, message, details, nonRetryable: true });
  }
  if (err instanceof ccxt.NetworkError) {
    // RequestTimeout, ExchangeNotAvailable, DDoSProtection, RateLimitExceeded, InvalidNonce, OnMaintenance...
    return ApplicationFailure.create({ type: VenueFailureType.Unavailable, message, details });
  }
  if (
    err instanceof ccxt.BadRequest ||
    err instanceof ccxt.BadSymbol ||
    err instanceof ccxt.InvalidOrder ||
    err instanceof ccxt.InsufficientFunds ||
    err instanceof ccxt.ArgumentsRequired ||
    err instanceof ccxt.NotSupported
  ) {
    return ApplicationFailure.create({ type: VenueFailureType.Rejected, message, details, nonRetryable: true });
  }
  // Any other exchange error (including OperationFailed and unknown codes) is retried: during an emergency
  // shutdown, giving up on an unclassified error would leave orders open.
  return ApplicationFailure.create({ type: VenueFailureType.Unavailable, message, details });
}

