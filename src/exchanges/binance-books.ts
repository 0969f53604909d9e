/**
 * Binance's order books and positions, read and written through ccxt's implicit REST methods so that every raw
 * answer is checked against the documented shape before we act on it. ccxt's unified methods turn a 200 answer
 * with an unexpected body into an empty list, which for an emergency cancel would read as "nothing left open".
 * Errors still pass through ccxt's own error mapping, so the classification at the edge is unchanged.
 */
import type { Exchange } from 'ccxt';
import { Decimal } from '../domain/money';
import type { VenueKind } from './venues';

export class MalformedResponseError extends Error {
  override name = 'MalformedResponseError';
}

/** The books an open order can rest in: spot, USDⓈ-M futures, and USDⓈ-M conditional (algo) orders. */
export type OrderBookName = 'spot' | 'futures' | 'futuresConditional';

export interface OpenOrderRef {
  book: OrderBookName;
  /** Venue symbol, e.g. "BTCUSDT". */
  symbol: string;
  orderId: string;
}

export interface PositionRef {
  symbol: string;
  /** Signed size: positive long, negative short. */
  amount: Decimal;
  unrealizedPnl: Decimal;
  entryPrice: Decimal;
  markPrice: Decimal;
}

type Params = Record<string, string>;
/** The implicit methods we use, as ccxt generates them for `binance` / `binanceusdm`. */
interface BinanceRest {
  privateGetOpenOrders(params?: Params): Promise<unknown>;
  privateDeleteOpenOrders(params: Params): Promise<unknown>;
  privateGetAccount(params?: Params): Promise<unknown>;
  fapiPrivateGetOpenOrders(params?: Params): Promise<unknown>;
  fapiPrivateGetOpenAlgoOrders(params?: Params): Promise<unknown>;
  fapiPrivateDeleteAllOpenOrders(params: Params): Promise<unknown>;
  fapiPrivateDeleteAlgoOpenOrders(params: Params): Promise<unknown>;
  fapiPrivateV3GetPositionRisk(params?: Params): Promise<unknown>;
  fapiPrivateV3GetAccount(params?: Params): Promise<unknown>;
  fapiPrivatePostOrder(params: Params): Promise<unknown>;
}

function list(value: unknown, what: string): Record<string, unknown>[] {
  if (!Array.isArray(value)) throw new MalformedResponseError(`${what}: expected a JSON array, got ${JSON.stringify(value)?.slice(0, 120)}`);
  for (const item of value) {
    if (typeof item !== 'object' || item === null) throw new MalformedResponseError(`${what}: expected objects in the array`);
  }
  return value as Record<string, unknown>[];
}

function text(row: Record<string, unknown>, key: string, what: string): string {
  const value = row[key];
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new MalformedResponseError(`${what}: field "${key}" missing or not a string/number: ${JSON.stringify(value)}`);
}

/** A decimal read from a raw answer; Binance sends amounts as strings. */
export function decimalField(row: Record<string, unknown>, key: string, what: string): Decimal {
  const value = text(row, key, what);
  if (!/^-?\d+(\.\d+)?$/.test(value)) throw new MalformedResponseError(`${what}: field "${key}" is not a decimal: ${JSON.stringify(value)}`);
  return new Decimal(value);
}

export class BinanceBooks {
  private readonly rest: BinanceRest;

  constructor(
    exchange: Exchange,
    readonly kind: VenueKind,
    private readonly venue: string,
  ) {
    this.rest = exchange as unknown as BinanceRest;
  }

  get books(): OrderBookName[] {
    return this.kind === 'spot' ? ['spot'] : ['futures', 'futuresConditional'];
  }

  async listOpen(book: OrderBookName): Promise<OpenOrderRef[]> {
    const what = `${this.venue} open ${book} orders`;
    const raw =
      book === 'spot'
        ? await this.rest.privateGetOpenOrders()
        : book === 'futures'
          ? await this.rest.fapiPrivateGetOpenOrders()
          : await this.rest.fapiPrivateGetOpenAlgoOrders();
    return list(raw, what).map((row) => ({
      book,
      symbol: text(row, 'symbol', what),
      orderId: text(row, book === 'futuresConditional' ? 'algoId' : 'orderId', what),
    }));
  }

  /** Cancels every open order of one symbol in one book with the venue's cancel-all endpoint. */
  async cancelAll(book: OrderBookName, symbol: string): Promise<void> {
    if (book === 'spot') await this.rest.privateDeleteOpenOrders({ symbol });
    else if (book === 'futures') await this.rest.fapiPrivateDeleteAllOpenOrders({ symbol });
    else await this.rest.fapiPrivateDeleteAlgoOpenOrders({ symbol });
  }

  /** Open perpetual positions (none on spot). */
  async positions(): Promise<PositionRef[]> {
    if (this.kind === 'spot') return [];
    const what = `${this.venue} positions`;
    return list(await this.rest.fapiPrivateV3GetPositionRisk(), what)
      .map((row) => ({
        symbol: text(row, 'symbol', what),
        amount: decimalField(row, 'positionAmt', what),
        unrealizedPnl: decimalField(row, 'unRealizedProfit', what),
        entryPrice: decimalField(row, 'entryPrice', what),
        markPrice: decimalField(row, 'markPrice', what),
      }))
      .filter((p) => !p.amount.isZero());
  }

  /** Closes a position with a reduce-only market order for exactly its size: it can shrink it, never flip it. */
  async closeReduceOnly(position: PositionRef): Promise<void> {
    await this.rest.fapiPrivatePostOrder({
      symbol: position.symbol,
      side: position.amount.isNegative() ? 'BUY' : 'SELL',
      type: 'MARKET',
      quantity: position.amount.abs().toFixed(),
      reduceOnly: 'true',
    });
  }

  /** Balances: spot free + locked per asset; futures wallet balance per asset (unrealized P&L excluded). */
  async balances(): Promise<Record<string, Decimal>> {
    const result: Record<string, Decimal> = {};
    if (this.kind === 'spot') {
      const what = `${this.venue} account balances`;
      const account = await this.rest.privateGetAccount();
      const rows = list((account as { balances?: unknown } | null)?.balances, what);
      for (const row of rows) {
        const total = decimalField(row, 'free', what).plus(decimalField(row, 'locked', what));
        if (!total.isZero()) result[text(row, 'asset', what)] = total;
      }
    } else {
      const what = `${this.venue} account assets`;
      const account = await this.rest.fapiPrivateV3GetAccount();
      for (const row of list((account as { assets?: unknown } | null)?.assets, what)) {
        const wallet = decimalField(row, 'walletBalance', what);
        if (!wallet.isZero()) result[text(row, 'asset', what)] = wallet;
      }
    }
    return result;
  }
}
