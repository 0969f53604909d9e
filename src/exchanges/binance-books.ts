/**
 * Binance's order books and positions, read and written through ccxt's implicit REST methods so that every raw
 * answer is checked against the documented shape before we act on it. ccxt's unified methods turn a 200 answer
 * with an unexpected body into an empty list, which for an emergency cancel would read as "nothing left open".
 * Errors still pass through ccxt's own error mapping, so the classification at the edge is unchanged.
 */
import type { Exchange } from 'ccxt';
import { DEFAULT_MAX_LOTS, LotFilter, splitIntoLots } from '../domain/lots';
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

/**
 * Which book of the symbol a position is in: `BOTH` in One-way Mode; `LONG` or `SHORT` in Hedge Mode, where a symbol
 * can hold one of each ("Position Information V3 (USER_DATA)" GET /fapi/v3/positionRisk, field `positionSide`).
 */
export type PositionSide = 'BOTH' | 'LONG' | 'SHORT';
const POSITION_SIDES: readonly string[] = ['BOTH', 'LONG', 'SHORT'] satisfies PositionSide[];

/**
 * The account's position mode on USDⓈ-M futures ("Get Current Position Mode (USER_DATA)" GET
 * /fapi/v1/positionSide/dual: `dualSidePosition` true = Hedge Mode, false = One-way Mode).
 */
export type PositionMode = 'oneWay' | 'hedge';

export interface PositionRef {
  symbol: string;
  positionSide: PositionSide;
  /** Signed size: positive long, negative short (a Hedge Mode SHORT position is negative too). */
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
  fapiPrivateGetPositionSideDual(params?: Params): Promise<unknown>;
}

/** The parameters of one close order for POST /fapi/v1/order, as Binance names them. */
export type CloseOrder = Params & { symbol: string; side: 'BUY' | 'SELL'; type: 'MARKET'; quantity: string };

export interface ClosePlan {
  orders: CloseOrder[];
  /** What no order can close (below the step or minQty): left on the book and reported, see {@link splitIntoLots}. */
  dust: Decimal;
  /** Closable but beyond this pass's order cap: the next pass closes it. */
  deferred: Decimal;
}

/**
 * The orders that close one position, in the account's position mode, split by the symbol's MARKET_LOT_SIZE filter.
 * Pure: sizes come from the caller's fresh positions fetch and are never exceeded.
 *
 * - One-way Mode: MARKET orders with `reduceOnly=true` opposite to the position: the venue itself refuses any that
 *   would flip it (-2022 "ReduceOnly Order is rejected.").
 * - Hedge Mode: `positionSide` is mandatory (-4061 "Order's position side does not match user's setting." without
 *   it) and `reduceOnly` is refused (-1106 "Parameter 'reduceOnly' sent when not required."): USDⓈ-M "New Order
 *   (TRADE)" POST /fapi/v1/order, parameters `positionSide` ("Default BOTH for One-way Mode; LONG or SHORT for Hedge
 *   Mode. It must be sent in Hedge Mode.") and `reduceOnly` ("Cannot be sent in Hedge Mode"). A LONG position closes
 *   with SELL positionSide=LONG, a SHORT one with BUY positionSide=SHORT. Without a reduce-only guard, never flipping
 *   rests on the sizes: the lots add up to at most the fetched size (and a position in one side's book cannot turn
 *   into the other side's anyway).
 *
 * @throws MalformedResponseError when the position's side does not fit the mode (the venue's answers disagree).
 */
export function planClose(position: PositionRef, mode: PositionMode, filter: LotFilter, maxLots = DEFAULT_MAX_LOTS): ClosePlan {
  const what = `closing ${position.symbol} ${position.positionSide} ${position.amount.toFixed()} in ${mode} mode`;
  const long = !position.amount.isNegative();
  let sideParams: Params & { side: 'BUY' | 'SELL' };
  if (mode === 'oneWay') {
    if (position.positionSide !== 'BOTH') throw new MalformedResponseError(`${what}: a One-way Mode position must be BOTH`);
    sideParams = { side: long ? 'SELL' : 'BUY', reduceOnly: 'true' };
  } else {
    if (position.positionSide === 'BOTH' || (position.positionSide === 'LONG') !== long) {
      throw new MalformedResponseError(`${what}: a Hedge Mode position must be LONG (positive) or SHORT (negative)`);
    }
    sideParams = { side: long ? 'SELL' : 'BUY', positionSide: position.positionSide };
  }
  const split = splitIntoLots(position.amount.abs(), filter, maxLots);
  return {
    orders: split.lots.map((lot) => ({ symbol: position.symbol, type: 'MARKET', quantity: lot.toFixed(), ...sideParams })),
    dust: split.dust,
    deferred: split.deferred,
  };
}

/**
 * A symbol's quantity filter for MARKET orders from its exchangeInfo entry (ccxt keeps the raw entry as the market's
 * `info`): `filters[]` with `filterType: "MARKET_LOT_SIZE"` and decimal-string `minQty`, `maxQty`, `stepSize`
 * (USDⓈ-M "Exchange Information" GET /fapi/v1/exchangeInfo; "Filters" in the common definitions).
 */
export function marketLotFilter(info: unknown, what: string): LotFilter {
  const filters = list((info as { filters?: unknown } | null | undefined)?.filters, `${what} filters`);
  const row = filters.find((f) => f.filterType === 'MARKET_LOT_SIZE');
  if (!row) throw new MalformedResponseError(`${what}: no MARKET_LOT_SIZE filter in exchangeInfo`);
  const filter = {
    minQty: decimalField(row, 'minQty', `${what} MARKET_LOT_SIZE`),
    maxQty: decimalField(row, 'maxQty', `${what} MARKET_LOT_SIZE`),
    stepSize: decimalField(row, 'stepSize', `${what} MARKET_LOT_SIZE`),
  };
  if (!filter.stepSize.gt(0) || filter.minQty.isNegative() || filter.maxQty.lt(Decimal.max(filter.minQty, filter.stepSize))) {
    throw new MalformedResponseError(`${what}: unusable MARKET_LOT_SIZE ${JSON.stringify(row)}`);
  }
  return filter;
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

function positionSide(row: Record<string, unknown>, what: string): PositionSide {
  const side = text(row, 'positionSide', what);
  if (!POSITION_SIDES.includes(side)) throw new MalformedResponseError(`${what}: field "positionSide" is not BOTH, LONG or SHORT: ${JSON.stringify(side)}`);
  return side as PositionSide;
}

export class BinanceBooks {
  private readonly rest: BinanceRest;

  constructor(
    private readonly exchange: Exchange,
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
        positionSide: positionSide(row, what),
        amount: decimalField(row, 'positionAmt', what),
        unrealizedPnl: decimalField(row, 'unRealizedProfit', what),
        entryPrice: decimalField(row, 'entryPrice', what),
        markPrice: decimalField(row, 'markPrice', what),
      }))
      .filter((p) => !p.amount.isZero());
  }

  /** The account's position mode (USDⓈ-M only: spot has no positions). */
  async positionMode(): Promise<PositionMode> {
    const what = `${this.venue} position mode`;
    const raw = await this.rest.fapiPrivateGetPositionSideDual();
    const dual = (raw as { dualSidePosition?: unknown } | null)?.dualSidePosition;
    if (typeof dual !== 'boolean') throw new MalformedResponseError(`${what}: expected {"dualSidePosition": true|false}, got ${JSON.stringify(raw)?.slice(0, 120)}`);
    return dual ? 'hedge' : 'oneWay';
  }

  /**
   * The MARKET_LOT_SIZE filter of a venue symbol, from the loaded markets; a symbol they do not list (listed since
   * they were loaded) reloads them once.
   */
  async marketLotFilter(symbol: string): Promise<LotFilter> {
    await this.exchange.loadMarkets();
    let market = this.exchange.markets_by_id?.[symbol]?.[0];
    if (market === undefined) {
      await this.exchange.loadMarkets(true);
      market = this.exchange.markets_by_id?.[symbol]?.[0];
    }
    if (market === undefined) throw new MalformedResponseError(`${this.venue}: a position in ${symbol}, which exchangeInfo does not list`);
    return marketLotFilter(market.info, `${this.venue} ${symbol}`);
  }

  /**
   * Closes one position, sized by the caller's fresh fetch, with the orders of {@link planClose}, one after the
   * other: a refusal stops this position's close (the caller re-fetches and decides), so that a lot is never sent
   * after the venue said the position is not what we think.
   * @returns how many orders were sent, and what this pass left (dust no order can close, lots deferred by the cap)
   */
  async closePosition(position: PositionRef, mode: PositionMode): Promise<{ sent: number; dust: Decimal; deferred: Decimal }> {
    const plan = planClose(position, mode, await this.marketLotFilter(position.symbol));
    let sent = 0;
    for (const order of plan.orders) {
      await this.rest.fapiPrivatePostOrder(order);
      sent += 1;
    }
    return { sent, dust: plan.dust, deferred: plan.deferred };
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
