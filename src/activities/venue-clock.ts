/**
 * The worker's clock as the venue sees it. Binance refuses a signed request whose timestamp is at or beyond its
 * server time + 1000 ms, whatever the recvWindow, or older than server time - recvWindow ("Timing security",
 * https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security): a worker a couple of seconds
 * fast fails every signed call with -1021. ccxt signs with `nonce() = now - options.timeDifference` (binance.js
 * `nonce`) and measures that difference with `loadTimeDifference()` (`GET /api/v3/time` or `/fapi/v1/time`);
 * `adjustForTimeDifference` (src/exchanges/ccxt-factory.ts) re-measures it whenever markets load, but the cancel
 * path calls signed endpoints without loading markets, so every venue call goes through {@link withVenueClock}.
 */
import { Context } from '@temporalio/activity';
import type { Exchange } from 'ccxt';
import { isClockRefusal } from '../exchanges/binance-errors';

/** ccxt instances whose clock offset this worker has measured at least once. */
const synced = new WeakSet<Exchange>();

/** Measures the offset to the venue's server time, which ccxt then subtracts when signing; logs it (no secrets). */
export async function syncVenueClock(venue: string, exchange: Exchange, why: string): Promise<number> {
  const offset = await exchange.loadTimeDifference();
  synced.add(exchange);
  Context.current().log.info(`${venue}: clock synchronised with the venue (${why}): worker is ${offset} ms ${offset >= 0 ? 'ahead' : 'behind'}`, {
    venue,
    clockOffsetMs: offset,
  });
  return offset;
}

/**
 * Runs one venue call (a read, a cancel pass, a close pass) with the client's clock synchronised: measured at first
 * use (best effort: a failed measurement never blocks an emergency cancel, the call may well pass without it),
 * and, when the venue refuses a timestamp (-1021), measured again and the whole call retried once. A refusal that
 * persists after the resync is thrown as it is; src/exchanges/binance-errors.ts classifies it as a non-retryable
 * clock skew, which the guard shows, alerts on and retries at its next sweep (resynchronising again).
 * `work` must be safe to run twice: reads are, and cancel and close passes re-list before they act.
 */
export async function withVenueClock<T>(venue: string, exchange: Exchange, work: () => Promise<T>): Promise<T> {
  if (!synced.has(exchange)) {
    try {
      await syncVenueClock(venue, exchange, 'first use');
    } catch (err) {
      Context.current().log.warn(`${venue}: could not read the venue's server time; signing with the local clock: ${(err as Error).message}`);
    }
  }
  try {
    return await work();
  } catch (err) {
    if (!isClockRefusal(err)) throw err;
    await syncVenueClock(venue, exchange, 'the venue refused a timestamp (-1021)');
    return await work();
  }
}
