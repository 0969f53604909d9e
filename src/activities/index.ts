/**
 * Activities: the guard's only contact with venues. Built by a factory with the venue clients injected, so tests
 * and the demo pass clients routed to the paper exchange and production passes real ones.
 */
import { Context } from '@temporalio/activity';
import type { Exchange, Order, Position } from 'ccxt';
import ccxt from 'ccxt';
import { Decimal, DecimalString, toDecimalString } from '../domain/money';
import type { PositionReport } from '../domain/report';
import type { VenueClient } from '../exchanges/ccxt-factory';
import { MalformedResponseError, classifyExchangeError } from './exchange-errors';

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

export interface ActivityDeps {
  venues: ReadonlyMap<string, VenueClient>;
}

type OrderBook = 'normal' | 'conditional';
interface OpenOrderRef {
  symbol: string;
  book: OrderBook;
}

function requireVenue(deps: ActivityDeps, venue: string): VenueClient {
  const client = deps.venues.get(venue);
  if (!client) {
    throw classifyExchangeError(new ccxt.NotSupported(`venue "${venue}" is not configured on this worker (has: ${[...deps.venues.keys()].join(', ')})`), venue);
  }
  return client;
}

function requireArray<T>(value: unknown, what: string): T[] {
  if (!Array.isArray(value)) throw new MalformedResponseError(`${what}: expected a list, got ${typeof value}`);
  return value as T[];
}

function requireDecimal(value: unknown, what: string): Decimal {
  if (typeof value !== 'string' && typeof value !== 'number') throw new MalformedResponseError(`${what}: expected a number, got ${JSON.stringify(value)}`);
  const text = String(value);
  if (!/^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(text)) throw new MalformedResponseError(`${what}: not a number: ${JSON.stringify(value)}`);
  return new Decimal(text);
}

/** Every open order on the venue, in both books (spot has only the normal one). */
async function fetchOpenOrderRefs(client: VenueClient): Promise<OpenOrderRef[]> {
  const books: OrderBook[] = client.kind === 'perp' ? ['normal', 'conditional'] : ['normal'];
  const refs: OpenOrderRef[] = [];
  for (const book of books) {
    const orders = requireArray<Order>(
      await client.exchange.fetchOpenOrders(undefined, undefined, undefined, book === 'conditional' ? { trigger: true } : {}),
      `${client.id} open ${book} orders`,
    );
    for (const order of orders) {
      if (typeof order.symbol !== 'string') throw new MalformedResponseError(`${client.id}: an open order without a symbol`);
      refs.push({ symbol: order.symbol, book });
    }
  }
  return refs;
}

export function createActivities(deps: ActivityDeps) {
  return {
    /**
     * Reads a venue's balances, prices of held assets in the reference currency, and open positions.
     * For USDⓈ-M futures the balance is the wallet balance; positions carry their unrealized P&L separately.
     */
    async readVenue(venue: string, referenceCurrency: string): Promise<VenueReading> {
      const client = requireVenue(deps, venue);
      try {
        const ex: Exchange = client.exchange;
        await ex.loadMarkets();
        const balance = await ex.fetchBalance();
        const balances: Record<string, DecimalString> = {};
        const positions: PositionReport[] = [];
        if (client.kind === 'spot') {
          const totals = (balance.total ?? {}) as unknown as Record<string, unknown>;
          if (typeof totals !== 'object') throw new MalformedResponseError(`${venue}: balance without totals`);
          for (const [asset, amount] of Object.entries(totals)) {
            const d = requireDecimal(amount, `${venue} balance ${asset}`);
            if (!d.isZero()) balances[asset] = toDecimalString(d);
          }
        } else {
          // ccxt's unified futures "total" is the margin balance (wallet + unrealized P&L); the wallet balance
          // is what we want, since positions are added with their own unrealized P&L.
          const info = balance.info as { assets?: unknown };
          for (const entry of requireArray<Record<string, unknown>>(info.assets, `${venue} account assets`)) {
            const d = requireDecimal(entry.walletBalance, `${venue} wallet ${String(entry.asset)}`);
            if (!d.isZero()) balances[String(entry.asset)] = toDecimalString(d);
          }
          for (const p of requireArray<Position>(await ex.fetchPositions(), `${venue} positions`)) {
            const contracts = requireDecimal(p.contracts ?? '0', `${venue} position ${p.symbol} contracts`);
            if (contracts.isZero()) continue;
            if (typeof p.symbol !== 'string') throw new MalformedResponseError(`${venue}: a position without a symbol`);
            positions.push({
              symbol: p.symbol,
              side: p.side === 'short' ? 'short' : 'long',
              contracts: toDecimalString(contracts.abs()),
              unrealizedPnl: toDecimalString(requireDecimal(p.unrealizedPnl ?? '0', `${venue} position ${p.symbol} pnl`)),
              ...(p.entryPrice !== undefined ? { entryPrice: toDecimalString(requireDecimal(p.entryPrice, 'entryPrice')) } : {}),
              ...(p.markPrice !== undefined ? { markPrice: toDecimalString(requireDecimal(p.markPrice, 'markPrice')) } : {}),
            });
          }
        }
        const symbols = Object.keys(balances)
          .filter((asset) => asset !== referenceCurrency)
          .map((asset) => `${asset}/${referenceCurrency}${client.kind === 'perp' ? `:${referenceCurrency}` : ''}`)
          .filter((symbol) => ex.markets?.[symbol] !== undefined);
        const prices: Record<string, DecimalString> = {};
        if (symbols.length > 0) {
          const tickers = await ex.fetchTickers(symbols);
          for (const symbol of symbols) {
            const last = tickers[symbol]?.last;
            if (last === undefined) continue; // the asset stays unpriced; the valuation says so
            prices[ex.markets![symbol]!.base] = toDecimalString(requireDecimal(last, `${venue} ticker ${symbol}`));
          }
        }
        return { venue, balances, prices, positions, asOf: new Date().toISOString() };
      } catch (err) {
        throw classifyExchangeError(err, venue);
      }
    },

    /**
     * One emergency pass over a venue: cancel every open order, normal and conditional, symbol by symbol with the
     * venue's cancel-all endpoint, then re-fetch to verify. Heartbeats after each symbol so that a retry after a
     * worker crash resumes the count; cancelling is idempotent, so redoing a symbol is harmless.
     * `OrderNotFound` on cancel ("already gone") is accepted only because the re-fetch below confirms it.
     */
    async cancelAllOpenOrders(venue: string): Promise<CancelPass> {
      const client = requireVenue(deps, venue);
      const ctx = Context.current();
      const previous = ctx.info.heartbeatDetails as { cancelled?: number } | undefined;
      let cancelled = previous?.cancelled ?? 0;
      try {
        await client.exchange.loadMarkets();
        const open = await fetchOpenOrderRefs(client);
        const groups = new Map<string, OpenOrderRef & { count: number }>();
        for (const ref of open) {
          const key = `${ref.book}:${ref.symbol}`;
          const group = groups.get(key) ?? { ...ref, count: 0 };
          group.count += 1;
          groups.set(key, group);
        }
        for (const group of groups.values()) {
          try {
            await client.exchange.cancelAllOrders(group.symbol, group.book === 'conditional' ? { trigger: true } : {});
            cancelled += group.count;
          } catch (err) {
            if (!(err instanceof ccxt.OrderNotFound)) throw err;
          }
          ctx.heartbeat({ cancelled, symbol: group.symbol, book: group.book });
        }
        const openAfter = (await fetchOpenOrderRefs(client)).length;
        return { venue, cancelled, openAfter };
      } catch (err) {
        throw classifyExchangeError(err, venue);
      }
    },
  };
}

export type GuardActivities = ReturnType<typeof createActivities>;
