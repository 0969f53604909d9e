/**
 * What the activity-level integration tests share: the credentials the paper exchange accepts, and real ccxt venue
 * clients ("spot": binance, "perp": binanceusdm) routed to a paper exchange.
 */
import { createVenueClient, VenueClient } from '../../src/exchanges/ccxt-factory';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';

export const TEST_CREDENTIALS = { apiKey: 'test-key-0123456789', secret: 'test-secret-abcdefghijklmnopqrstuvwxyz' };

/** A spot and a perp client on the paper exchange at `url`, by venue id. */
export function paperVenueClients(url: string, credentials = TEST_CREDENTIALS): Map<string, VenueClient> {
  return new Map(
    [
      createVenueClient({ id: 'spot', exchange: 'binance', routeTo: url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentials),
      createVenueClient({ id: 'perp', exchange: 'binanceusdm', routeTo: url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentials),
    ].map((v) => [v.id, v]),
  );
}
