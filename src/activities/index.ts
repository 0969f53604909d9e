/**
 * Activities: the guard's only contact with venues and the outside world. Built by a factory with the venue clients
 * injected, so tests and the demo pass clients routed to the paper exchange and production passes real ones.
 */
import { Context } from '@temporalio/activity';
import ccxt from 'ccxt';
import { ApplicationFailure } from '@temporalio/common';
import { type Alert, guardWorkflowId } from '../api/contract';
import { VenueFailureType } from '../api/failures';
import { DecimalString, toDecimalString } from '../domain/money';
import { PricingMarket, priceAssets, planPrices } from '../domain/pricing';
import type { PositionReport } from '../domain/report';
import type { VenueClient } from '../exchanges/ccxt-factory';
import { PassProgress, cancelPass } from './cancel-pass';
import { classifyExchangeError } from './exchange-errors';
import { withVenueClock } from './venue-clock';
import { withRequestPriority } from '../exchanges/rate-budget';
import type { WatcherPlan } from '../domain/watcher';
import { watchAccount } from './watcher';

/** What the guard reads from a venue itself: the same shape a bot reports, minus `seq` (defined with the decider). */
export type { VenueReading } from '../domain/guard';
import type { VenueReading } from '../domain/guard';
import type { AuditEntry } from '../domain/audit';
import type { TrustAnchor } from '../trust/anchor';
import { AuditEntryError, AuditLogError, append as appendAuditEntries, latchOf, readIfAny } from '../audit/log';
import { TrustLoad, loadTrustFor } from '../trust/load';
import { alertWebhookProblem, postToWebhook } from '../alerts/webhook';

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
  /**
   * The worker's trust anchor (BREAKER_TRUST_FILE): who may act on each account. Without it, guards cannot load
   * their trust view: they alert, keep protecting, and refuse every operator action.
   */
  trust?: TrustAnchor;
  /** The audit log's directory (BREAKER_AUDIT_DIR), outside Temporal; without it, audit writes fail and guards alert. */
  auditDir?: string;
}

/**
 * The account of the calling guard, from the workflow id the server reports (`guard-<accountId>`), never from an
 * argument a client could choose; `claimed` (the guard's config) must agree.
 */
function callingAccount(claimed: string): string {
  const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
  if (workflowId !== guardWorkflowId(claimed)) {
    throw ApplicationFailure.create({
      type: 'AccountMismatch',
      message: `workflow id ${JSON.stringify(workflowId)} is not the guard of account ${JSON.stringify(claimed)} (${guardWorkflowId(claimed)}): refused`,
      nonRetryable: true,
    });
  }
  return claimed;
}

/** How often a long activity heartbeats, whatever it is waiting for (the workflow's heartbeat timeout is 2 s). */
const HEARTBEAT_EVERY_MS = 400;

/**
 * Why this venue may not be acted on for the guard with this workflow id, or undefined when it may. The account
 * comes from the workflow id the server reports for the calling workflow (`guard-<accountId>`), never from an
 * argument a client could choose.
 */
export function bindingProblem(deps: ActivityDeps, venue: string, workflowId: string): string | undefined {
  const client = deps.venues.get(venue);
  if (!client) return `venue "${venue}" is not configured on this worker (it has: ${[...deps.venues.keys()].join(', ')})`;
  if (client.account !== undefined && workflowId !== guardWorkflowId(client.account)) {
    return `venue "${venue}" is bound to account "${client.account}" on this worker; ${workflowId} may not act on it`;
  }
  return undefined;
}

function requireVenue(deps: ActivityDeps, venue: string): VenueClient {
  const problem = bindingProblem(deps, venue, Context.current().info.workflowExecution?.workflowId ?? '');
  if (problem !== undefined) {
    throw ApplicationFailure.create({ type: VenueFailureType.NotBound, message: `${venue}: ${problem}`, nonRetryable: true, details: [{ venue }] });
  }
  return deps.venues.get(venue)!;
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

/**
 * A venue client reloads its markets (to find a coin listed after the worker started) at most this often: Binance's
 * exchangeInfo is a heavy request (weight 20 on spot), and an asset that no market will ever price (dust of a
 * delisted coin) would otherwise reload them on every read.
 */
const MARKET_RELOAD_INTERVAL_MS = 5 * 60_000;
/** When each ccxt instance last reloaded its markets for an unpriced asset (its first load does not count). */
const lastMarketReload = new WeakMap<object, number>();

/**
 * The markets of a venue that can price its holdings: active spot markets on a spot venue; on a USDⓈ-M venue, the
 * active linear perpetuals it lists (delivery contracts expire; the spot bridge is another venue's business).
 */
export function pricingMarkets(client: VenueClient): PricingMarket[] {
  return Object.values(client.exchange.markets ?? {})
    .filter((m) => m !== undefined && m.active !== false && (client.kind === 'spot' ? m.spot : m.swap && m.linear))
    .map((m) => ({ symbol: m.symbol, base: m.base, quote: m.quote }));
}

/** Claims this client's market reload if none happened within {@link MARKET_RELOAD_INTERVAL_MS}. */
function claimMarketReload(client: VenueClient, now = Date.now()): boolean {
  const last = lastMarketReload.get(client.exchange);
  if (last !== undefined && now - last < MARKET_RELOAD_INTERVAL_MS) return false;
  lastMarketReload.set(client.exchange, now);
  return true;
}

/**
 * Last prices of `symbols` in one tickers request. Binance refuses the whole request (-1121, ccxt's BadSymbol) when
 * one symbol no longer exists (a market delisted since the markets were loaded); then every ticker is fetched once
 * instead, so that one delisted coin cannot blind the read of everything else.
 */
async function fetchLastPrices(client: VenueClient, symbols: readonly string[]): Promise<Record<string, unknown>> {
  const ex = client.exchange;
  let tickers: Awaited<ReturnType<typeof ex.fetchTickers>>;
  try {
    tickers = await ex.fetchTickers([...symbols]);
  } catch (err) {
    if (!(err instanceof ccxt.BadSymbol)) throw err;
    tickers = await ex.fetchTickers();
  }
  // With `number: String` (ccxt-factory) ccxt hands the venue's decimal strings through; pricing validates them.
  return Object.fromEntries(symbols.map((symbol) => [symbol, tickers[symbol]?.last as unknown]));
}

/**
 * Prices the held assets in the reference currency (see src/domain/pricing.ts for the routes): when an asset has no
 * route in the loaded markets, the markets are reloaded first (at most once per read and per 5 minutes), then the
 * needed tickers are fetched in one request. Assets that stay unpriced are left out: the guard's core decides.
 */
async function priceHeldAssets(client: VenueClient, held: string[], reference: string): Promise<Record<string, DecimalString>> {
  let markets = pricingMarkets(client);
  let plan = planPrices(held, reference, markets);
  if (plan.unpriced.length > 0 && claimMarketReload(client)) {
    try {
      await client.exchange.loadMarkets(true);
      markets = pricingMarkets(client);
      plan = planPrices(held, reference, markets);
    } catch (err) {
      // The markets loaded before stay in use; the assets they cannot price stay unpriced, which the guard sees.
      Context.current().log.warn(`${client.id}: reloading markets failed: ${(err as Error).message}`);
    }
  }
  const last = plan.symbolsToFetch.length > 0 ? await fetchLastPrices(client, plan.symbolsToFetch) : {};
  const priced = priceAssets(held, reference, markets, last);
  if (priced.unpriced.length > 0) {
    Context.current().log.debug(`${client.id}: unpriced in ${reference}: ${priced.unpriced.map((u) => `${u.asset} (${u.detail})`).join('; ')}`);
  }
  return priced.prices;
}

/**
 * One REST read of a venue: non-zero balances, prices of held assets in the reference currency, open positions.
 * Shared by the guard's own reads and the watcher's polling. Errors are the venue's, unclassified.
 */
export async function readVenueNow(client: VenueClient, referenceCurrency: string): Promise<VenueReading> {
  const ex = client.exchange;
  return withVenueClock(client.id, ex, async () => {
    await ex.loadMarkets();
    const balances: Record<string, DecimalString> = {};
    for (const [asset, amount] of Object.entries(await client.books.balances())) {
      // Binance's balance list is the whole asset catalogue, mostly zero rows; only holdings are returned.
      if (!amount.isZero()) balances[asset] = toDecimalString(amount);
    }
    const positions: PositionReport[] = (await client.books.positions()).map((p) => ({
      symbol: ex.markets_by_id?.[p.symbol]?.[0]?.symbol ?? p.symbol,
      side: p.amount.isNegative() ? 'short' : 'long',
      contracts: toDecimalString(p.amount.abs()),
      unrealizedPnl: toDecimalString(p.unrealizedPnl),
      entryPrice: toDecimalString(p.entryPrice),
      markPrice: toDecimalString(p.markPrice),
    }));
    const prices = await priceHeldAssets(client, Object.keys(balances), referenceCurrency);
    return { venue: client.id, balances, prices, positions, asOf: new Date().toISOString() };
  });
}

export { alertWebhookProblem } from '../alerts/webhook';

export function createActivities(deps: ActivityDeps) {
  // Refused when the worker starts, not at the first alert (which would be a trip).
  const webhookProblem = deps.alertWebhookUrl ? alertWebhookProblem(deps.alertWebhookUrl) : undefined;
  if (webhookProblem) throw new Error(webhookProblem);
  return {
    /**
     * Checks, when a guard starts, that every venue it names is configured on this worker and bound to its account.
     * @returns one line per venue that is not, empty when all are
     */
    /**
     * The calling guard's view of the trust anchor (public keys and roles), and what the audit log remembers: an
     * unreset trip and the nonces of recent operator actions.
     */
    async loadTrust(accountId: string): Promise<TrustLoad> {
      const account = callingAccount(accountId);
      if (!deps.trust) throw ApplicationFailure.create({ type: 'TrustAnchorMissing', message: 'this worker has no trust anchor (BREAKER_TRUST_FILE)', nonRetryable: true });
      if (!deps.auditDir) throw ApplicationFailure.create({ type: 'AuditLogMissing', message: 'this worker has no audit log (BREAKER_AUDIT_DIR)', nonRetryable: true });
      try {
        return await loadTrustFor(deps.trust, deps.auditDir, account);
      } catch (err) {
        // A damaged log (edited, cut off): the guard cannot know whether a trip was removed, and says so.
        if (err instanceof AuditLogError) throw ApplicationFailure.create({ type: 'AuditLogDamaged', message: err.message, nonRetryable: true });
        throw err;
      }
    },

    /** Appends the calling guard's audit entries to its account's log (idempotent by eventId). */
    async appendAudit(accountId: string, entries: AuditEntry[]): Promise<{ written: number }> {
      const account = callingAccount(accountId);
      if (!deps.auditDir) throw ApplicationFailure.create({ type: 'AuditLogMissing', message: 'this worker has no audit log (BREAKER_AUDIT_DIR)', nonRetryable: true });
      try {
        const result = await appendAuditEntries(deps.auditDir, account, entries);
        return { written: result.written.length };
      } catch (err) {
        // An entry that can never be written is not retried for ever: the guard keeps it and shows the error.
        if (err instanceof AuditEntryError) throw ApplicationFailure.create({ type: 'AuditEntryRefused', message: err.message, nonRetryable: true });
        // A damaged log is left as found (the evidence) until an operator runs `breaker audit verify`.
        if (err instanceof AuditLogError) throw ApplicationFailure.create({ type: 'AuditLogDamaged', message: err.message, nonRetryable: true });
        throw err;
      }
    },

    async checkVenueBindings(venues: string[]): Promise<string[]> {
      const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
      return venues.map((venue) => bindingProblem(deps, venue, workflowId)).filter((p): p is string => p !== undefined);
    },

    /**
     * Reads a venue's non-zero balances, prices of held assets in the reference currency, and open positions.
     * Prices come from a direct market, a bridge (`XYZ/BTC × BTC/USDT`) or, for a Simple Earn `LD…` token, its coin;
     * the reference currency is priced 1; an asset no market prices is absent from `prices` (still in `balances`).
     * For USDⓈ-M futures the balance is the wallet balance, priced from the perpetuals the venue lists; positions
     * carry their unrealized P&L separately.
     */
    async readVenue(venue: string, referenceCurrency: string): Promise<VenueReading> {
      const client = requireVenue(deps, venue);
      try {
        return await readVenueNow(client, referenceCurrency);
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
        const pass = await heartbeating(() => ({ ...progress }), () => withRequestPriority('emergency', () => withVenueClock(venue, client.exchange, () => cancelPass(client, progress))));
        return { venue, cancelled: progress.cancelled, openAfter: pass.openAfter };
      } catch (err) {
        throw classifyExchangeError(err, venue);
      }
    },

    /**
     * Closes every open perpetual position with market orders sized from a fresh positions fetch, then re-fetches to
     * verify. In One-way Mode the orders are reduce-only (a stale size can shrink a position, never flip it); in
     * Hedge Mode they name the position's side (LONG closes with SELL, SHORT with BUY) and cannot be reduce-only, so
     * their sizes are capped by the fetch (see `planClose`). Each close is split into orders of at most the symbol's
     * MARKET_LOT_SIZE maxQty, rounded down to its step. `closed` counts positions closed in full.
     *
     * Dust: a rest below the symbol's minQty (or one step) cannot be closed by any order, so it stays open: it is
     * counted in `remaining`, which keeps the venue "closing" in the guard's state (openPositions > 0, visible in the
     * `state` query) and retried at every sweep, and each pass logs it. It is never declared flat silently; an
     * operator closes it by hand (or it grows above minQty and the next pass closes it).
     */
    async closePositions(venue: string): Promise<ClosePass> {
      const client = requireVenue(deps, venue);
      let closed = 0;
      try {
        return await heartbeating(
          () => ({ closed }),
          // Emergency: may spend the weight reserve that routine reads leave (src/exchanges/rate-budget.ts).
          () =>
            withRequestPriority('emergency', () => withVenueClock(venue, client.exchange, async () => {
              const positions = await client.books.positions();
              // Read once per pass, and only with something to close: Binance refuses to change the mode while a
              // position is open (-4068), so it cannot change under this pass.
              const mode = positions.length > 0 ? await client.books.positionMode() : 'oneWay';
              for (const position of positions) {
                try {
                  const { dust, deferred } = await client.books.closePosition(position, mode);
                  if (dust.isZero() && deferred.isZero()) closed += 1;
                  else if (!dust.isZero()) {
                    Context.current().log.warn(`${venue}: ${position.symbol} ${position.positionSide}: ${dust.toFixed()} left below the venue's minimum order size; it stays open and is reported as remaining`);
                  }
                } catch (err) {
                  // Already closed (by a retry or a fill): the re-fetch below decides.
                  if (!(err instanceof ccxt.InvalidOrder)) throw err;
                }
              }
              return { venue, closed, remaining: (await client.books.positions()).length };
            })),
        );
      } catch (err) {
        throw classifyExchangeError(err, venue);
      }
    },

    /**
     * Follows the account's venues live (streams, polling as the fallback) and signals the guard when it has something
     * to say; runs until the guard replaces it or for a few hours. See src/activities/watcher.ts.
     */
    async watchAccount(plan: WatcherPlan): Promise<{ ended: 'handover' | 'guardGone' }> {
      const auditDir = deps.auditDir;
      return watchAccount(
        {
          venues: deps.venues,
          bindingProblem: (venue, workflowId) => bindingProblem(deps, venue, workflowId),
          read: readVenueNow,
          markets: pricingMarkets,
          ...(auditDir ? { latched: async (accountId: string) => latchOf(await readIfAny(auditDir, accountId), new Date().toISOString()).tripped } : {}),
        },
        plan,
      );
    },

    /**
     * Logs an alert and, if a webhook is configured, POSTs it there. Never carries secrets. Redirects are not
     * followed (a webhook that redirects is misconfigured or hijacked) and the request gives up after 5 s; the
     * guard's decider keeps an alert that could not be delivered and sends it again later.
     */
    async sendAlert(alert: Alert): Promise<void> {
      Context.current().log.warn(`ALERT ${alert.kind}: ${alert.message}`, { ...alert });
      if (!deps.alertWebhookUrl) return;
      // The alert id is stable across retries and continue-as-new: a receiver that honours Idempotency-Key pages once.
      await postToWebhook(deps.alertWebhookUrl, alert.id, alert);
    },
  };
}

export type GuardActivities = ReturnType<typeof createActivities>;
