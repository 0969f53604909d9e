/**
 * Activities: the guard's only contact with venues and the outside world. Built by a factory with the venue clients
 * injected, so tests and the demo pass clients routed to the paper exchange and production passes real ones.
 */
import { Context } from '@temporalio/activity';
import ccxt from 'ccxt';
import type { Alert } from '../api/contract';
import { DecimalString, toDecimalString } from '../domain/money';
import type { PositionReport } from '../domain/report';
import type { VenueClient } from '../exchanges/ccxt-factory';
import { PassProgress, cancelPass } from './cancel-pass';
import { classifyExchangeError } from './exchange-errors';

/** What the guard reads from a venue itself: the same shape a bot reports, minus `seq`. */
export interface VenueReading {
  venue: string;
  balances: Record<string, DecimalString>;
  prices: Record<string, DecimalString>;
  positions: PositionReport[];
  asOf: string;
}

/** The outcome of one cancel-and-verify pass over a venue. */
export interface CancelPass {
  venue: string;
  /** Orders cancelled by this pass, including those cancelled before a retry (from heartbeat details). */
  cancelled: number;
  /** Open orders (normal and conditional) found by the verifying re-fetch after the cancels. */
  openAfter: number;
}

/** The outcome of one close-and-verify pass over a venue's positions. */
export interface ClosePass {
  venue: string;
  closed: number;
  /** Open positions found by the verifying re-fetch. */
  remaining: number;
}

export interface ActivityDeps {
  venues: ReadonlyMap<string, VenueClient>;
  /** Where alerts are POSTed as JSON (Slack/PagerDuty/Opsgenie webhook); alerts are always logged too. */
  alertWebhookUrl?: string;
}

/** How often a long activity heartbeats, whatever it is waiting for (the workflow's heartbeat timeout is 3 s). */
const HEARTBEAT_EVERY_MS = 1_000;

function requireVenue(deps: ActivityDeps, venue: string): VenueClient {
  const client = deps.venues.get(venue);
  if (!client) {
    throw classifyExchangeError(new ccxt.NotSupported(`venue "${venue}" is not configured on this worker (has: ${[...deps.venues.keys()].join(', ')})`), venue);
  }
  return client;
}

/**
 * Runs `work` while heartbeating `progress()` every second, so that a worker that dies is noticed within the
 * heartbeat timeout even while a venue request is slow, and a retry can resume from the last progress.
 */
async function heartbeating<T>(progress: () => unknown, work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(progress());
  const timer = setInterval(() => ctx.heartbeat(progress()), HEARTBEAT_EVERY_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

export function createActivities(deps: ActivityDeps) {
  return {
    /**
     * Reads a venue's balances, prices of held assets in the reference currency, and open positions.
     * For USDⓈ-M futures the balance is the wallet balance; positions carry their unrealized P&L separately.
     */
    async readVenue(venue: string, referenceCurrency: string): Promise<VenueReading> {
      const client = requireVenue(deps, venue);
      const ex = client.exchange;
      try {
        await ex.loadMarkets();
        const balances: Record<string, DecimalString> = {};
        for (const [asset, amount] of Object.entries(await client.books.balances())) balances[asset] = toDecimalString(amount);
        const positions: PositionReport[] = (await client.books.positions()).map((p) => ({
          symbol: ex.markets_by_id?.[p.symbol]?.[0]?.symbol ?? p.symbol,
          side: p.amount.isNegative() ? 'short' : 'long',
          contracts: toDecimalString(p.amount.abs()),
          unrealizedPnl: toDecimalString(p.unrealizedPnl),
          entryPrice: toDecimalString(p.entryPrice),
          markPrice: toDecimalString(p.markPrice),
        }));
        const symbols = Object.keys(balances)
          .filter((asset) => asset !== referenceCurrency)
          .map((asset) => `${asset}/${referenceCurrency}${client.kind === 'perp' ? `:${referenceCurrency}` : ''}`)
          .filter((symbol) => ex.markets?.[symbol] !== undefined);
        const prices: Record<string, DecimalString> = {};
        if (symbols.length > 0) {
          const tickers = await ex.fetchTickers(symbols);
          for (const symbol of symbols) {
            const last = tickers[symbol]?.last;
            // A missing or odd price leaves the asset unpriced; the valuation is then incomplete and decides nothing.
            if (last === undefined || !/^\d+(\.\d+)?$/.test(String(last))) continue;
            prices[ex.markets![symbol]!.base] = String(last);
          }
        }
        return { venue, balances, prices, positions, asOf: new Date().toISOString() };
      } catch (err) {
        throw classifyExchangeError(err, venue);
      }
    },

    /**
     * One emergency pass over a venue: cancel every open order, normal and conditional, symbol by symbol with the
     * venue's cancel-all endpoint, then re-fetch to verify. Cancelling is idempotent, so a retry after a worker
     * crash simply redoes what is left; it resumes the count from the last heartbeat.
     * "Unknown order" (-2011) on cancel means "already gone" only because the re-fetch below confirms it.
     */
    async cancelAllOpenOrders(venue: string): Promise<CancelPass> {
      const client = requireVenue(deps, venue);
      const previous = Context.current().info.heartbeatDetails as { cancelled?: number } | undefined;
      const progress: PassProgress = { cancelled: previous?.cancelled ?? 0, step: 'listing' };
      try {
        const pass = await heartbeating(() => ({ ...progress }), () => cancelPass(client, progress));
        return { venue, cancelled: progress.cancelled, openAfter: pass.openAfter };
      } catch (err) {
        throw classifyExchangeError(err, venue);
      }
    },

    /**
     * Closes every open perpetual position with reduce-only market orders sized from a fresh positions fetch, then
     * re-fetches to verify. Reduce-only means a stale size can shrink a position but never flip it.
     */
    async closePositions(venue: string): Promise<ClosePass> {
      const client = requireVenue(deps, venue);
      let closed = 0;
      try {
        return await heartbeating(
          () => ({ closed }),
          async () => {
            for (const position of await client.books.positions()) {
              try {
                await client.books.closeReduceOnly(position);
                closed += 1;
              } catch (err) {
                // Already closed (by a retry or a fill): the re-fetch below decides.
                if (!(err instanceof ccxt.InvalidOrder)) throw err;
              }
            }
            return { venue, closed, remaining: (await client.books.positions()).length };
          },
        );
      } catch (err) {
        throw classifyExchangeError(err, venue);
      }
    },

    /** Logs an alert and, if a webhook is configured, POSTs it there. Never carries secrets. */
    async sendAlert(alert: Alert): Promise<void> {
      Context.current().log.warn(`ALERT ${alert.kind}: ${alert.message}`, { ...alert });
      if (!deps.alertWebhookUrl) return;
      const response = await fetch(deps.alertWebhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alert),
        signal: AbortSignal.timeout(5_000),
      });
      if (!response.ok) throw new Error(`alert webhook answered ${response.status}`);
    },
  };
}

export type GuardActivities = ReturnType<typeof createActivities>;
