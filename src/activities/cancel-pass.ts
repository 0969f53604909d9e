/**
 * One cancel-and-verify pass over a venue, as plain code: used by the `cancelAllOpenOrders` activity and by the
 * benchmark's in-process baseline, so that both flatten a venue the same way.
 */
import ccxt from 'ccxt';
import type { OrderBookName } from '../exchanges/binance-books';
import type { VenueClient } from '../exchanges/ccxt-factory';
import { withRequestPriority } from '../exchanges/rate-budget';

/** Cancel-all requests in flight at once per venue: fast, and well inside Binance's order rate limits. */
export const CANCEL_CONCURRENCY = 8;

export interface PassProgress {
  cancelled: number;
  step: string;
}

/**
 * Lists every book, cancels symbol by symbol with the venue's cancel-all endpoint (several symbols at a time), then
 * re-lists to verify. "Unknown order" on cancel is accepted only because the re-list decides.
 * @returns orders cancelled by this pass and open orders found by the verifying re-list
 */
export function cancelPass(client: VenueClient, progress: PassProgress): Promise<{ cancelled: number; openAfter: number }> {
  // The whole pass (listings included) is the emergency path: it may spend the weight reserve routine reads leave.
  return withRequestPriority('emergency', () => pass(client, progress));
}

async function pass(client: VenueClient, progress: PassProgress): Promise<{ cancelled: number; openAfter: number }> {
  progress.step = 'listing';
  const groups = new Map<string, { book: OrderBookName; symbol: string; count: number }>();
  for (const book of client.books.books) {
    for (const order of await client.books.listOpen(book)) {
      const key = `${book}:${order.symbol}`;
      const group = groups.get(key) ?? { book, symbol: order.symbol, count: 0 };
      group.count += 1;
      groups.set(key, group);
    }
  }
  // Nothing open: the listing itself is the verification.
  if (groups.size === 0) return { cancelled: 0, openAfter: 0 };
  let cancelled = 0;
  const queue = [...groups.values()];
  progress.step = 'cancelling';
  // Every worker runs to its end before a failure is thrown: a retry of the pass (after a -1021 resync, or by
  // Temporal) must not list orders that a straggler of this pass is still cancelling, or they would count twice.
  await settleAll(
    Array.from({ length: Math.min(CANCEL_CONCURRENCY, queue.length) }, async () => {
      for (let group = queue.shift(); group; group = queue.shift()) {
        try {
          await client.books.cancelAll(group.book, group.symbol);
          cancelled += group.count;
          progress.cancelled += group.count;
        } catch (err) {
          if (!(err instanceof ccxt.OrderNotFound)) throw err;
        }
      }
    }),
  );
  progress.step = 'verifying';
  let openAfter = 0;
  for (const book of client.books.books) openAfter += (await client.books.listOpen(book)).length;
  return { cancelled, openAfter };
}

/** Like Promise.all, but rejects (with the first failure) only once every promise has settled. */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
