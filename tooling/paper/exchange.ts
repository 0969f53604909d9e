/**
 * The paper exchange's books: one account's spot balances, USDⓈ-M futures wallet and positions, prices, and open
 * orders (spot, futures, futures conditional/algo). Pure in-memory state, driven by the HTTP layer in server.ts.
 */
import { Decimal, ZERO, toDecimalString } from '../../src/domain/money';

export type PaperMarket = 'spot' | 'futures';

/** An order resting on the paper book, in Binance's own field names where they are returned verbatim. */
export interface PaperOrder {
  market: PaperMarket;
  /** Conditional (algo) futures orders live in a separate book on Binance since the 2025 algo-order migration. */
  algo: boolean;
  orderId: number;
  clientOrderId: string;
  symbol: string;
  side: 'BUY' | 'SELL';
  type: string;
  price: string;
  origQty: string;
  stopPrice: string;
  reduceOnly: boolean;
  time: number;
}

export interface PaperPosition {
  /** Binance symbol, e.g. "BTCUSDT". */
  symbol: string;
  /** Signed size: positive long, negative short. */
  positionAmt: string;
  entryPrice: string;
}

/** What the control API accepts to set the account up. Every amount is a decimal string. */
export interface PaperSeed {
  prices?: Record<string, string>;
  spotBalances?: Record<string, string>;
  futuresBalances?: Record<string, string>;
  positions?: PaperPosition[];
  orders?: NewPaperOrder[];
}

export interface NewPaperOrder {
  market: PaperMarket;
  symbol: string;
  side: 'BUY' | 'SELL';
  type?: string;
  price?: string;
  quantity: string;
  /** Makes it a conditional order (a futures algo order, or a spot STOP_LOSS_LIMIT). */
  stopPrice?: string;
  reduceOnly?: boolean;
  clientOrderId?: string;
}

/** Assets every paper exchange lists, with default prices in USDT, so that 20-symbol scenarios need no set-up. */
export const DEFAULT_PRICES: Record<string, string> = {
  BTC: '40000', ETH: '2000', BNB: '300', SOL: '100', XRP: '0.5', ADA: '0.4', DOGE: '0.08', AVAX: '20', DOT: '5',
  LINK: '15', LTC: '70', TRX: '0.1', ATOM: '8', NEAR: '3', UNI: '6', APT: '8', ARB: '1', OP: '2', FIL: '5', SUI: '1',
};
export const QUOTE = 'USDT';

/**
 * `n` resting orders spread round-robin over the three books (spot, perp, perp conditional) and the 20 default
 * symbols, priced far from the market so that none fills: the set-up of crash tests, chaos runs and benchmarks.
 */
export function spreadOrders(n: number, offset = 0): NewPaperOrder[] {
  const symbols = Object.keys(DEFAULT_PRICES).map((a) => `${a}${QUOTE}`);
  return Array.from({ length: n }, (_, i) => {
    const symbol = symbols[(i + offset) % symbols.length]!;
    const book = (i + offset) % 3;
    if (book === 0) return { market: 'spot', symbol, side: 'BUY', price: '0.00001', quantity: '1' };
    if (book === 1) return { market: 'futures', symbol, side: 'SELL', price: '999999', quantity: '1' };
    return { market: 'futures', symbol, side: 'SELL', stopPrice: '0.00001', quantity: '1', reduceOnly: true };
  });
}

export class PaperBookError extends Error {
  constructor(
    /** Binance error code, e.g. -2011. */
    readonly code: number,
    message: string,
    readonly httpStatus = 400,
  ) {
    super(message);
  }
}

export class PaperExchange {
  prices = new Map<string, string>(Object.entries(DEFAULT_PRICES));
  spotBalances = new Map<string, string>();
  futuresBalances = new Map<string, string>();
  positions = new Map<string, PaperPosition>();
  orders = new Map<number, PaperOrder>();
  private nextOrderId = 1;
  /** Cancels and fills performed, for tests and the demo's report. */
  readonly stats = { cancelled: 0, placed: 0, filled: 0 };

  reset(): void {
    this.prices = new Map(Object.entries(DEFAULT_PRICES));
    this.spotBalances.clear();
    this.futuresBalances.clear();
    this.positions.clear();
    this.orders.clear();
    Object.assign(this.stats, { cancelled: 0, placed: 0, filled: 0 });
  }

  seed(seed: PaperSeed): void {
    for (const [asset, price] of Object.entries(seed.prices ?? {})) this.setPrice(asset, price);
    for (const [asset, amount] of Object.entries(seed.spotBalances ?? {})) this.spotBalances.set(asset, checked(amount));
    for (const [asset, amount] of Object.entries(seed.futuresBalances ?? {})) this.futuresBalances.set(asset, checked(amount));
    for (const p of seed.positions ?? []) {
      this.requireSymbol(p.symbol);
      this.positions.set(p.symbol, { symbol: p.symbol, positionAmt: checked(p.positionAmt), entryPrice: checked(p.entryPrice) });
    }
    for (const order of seed.orders ?? []) this.placeOrder(order);
  }

  setPrice(asset: string, price: string): void {
    if (!new Decimal(checked(price)).gt(0)) throw new PaperBookError(-1100, `price of ${asset} must be positive`);
    this.prices.set(asset, price);
  }

  /** Symbols listed on both markets: every priced asset against USDT. */
  symbols(): { symbol: string; base: string }[] {
    return [...this.prices.keys()].filter((a) => a !== QUOTE).map((base) => ({ symbol: `${base}${QUOTE}`, base }));
  }

  priceOfSymbol(symbol: string): Decimal {
    const base = this.requireSymbol(symbol);
    return new Decimal(this.prices.get(base)!);
  }

  requireSymbol(symbol: string): string {
    const found = this.symbols().find((s) => s.symbol === symbol);
    if (!found) throw new PaperBookError(-1121, 'Invalid symbol.');
    return found.base;
  }

  openOrders(market: PaperMarket, algo: boolean, symbol?: string): PaperOrder[] {
    return [...this.orders.values()].filter(
      (o) => o.market === market && o.algo === algo && (symbol === undefined || o.symbol === symbol),
    );
  }

  placeOrder(order: NewPaperOrder): PaperOrder {
    this.requireSymbol(order.symbol);
    const quantity = new Decimal(checked(order.quantity));
    if (!quantity.gt(0)) throw new PaperBookError(-1013, 'Invalid quantity.');
    const type = (order.type ?? (order.stopPrice ? 'STOP_MARKET' : 'LIMIT')).toUpperCase();
    const placed: PaperOrder = {
      market: order.market,
      algo: order.market === 'futures' && order.stopPrice !== undefined,
      orderId: this.nextOrderId++,
      clientOrderId: order.clientOrderId ?? `paper-${this.nextOrderId}`,
      symbol: order.symbol,
      side: order.side,
      type,
      price: order.price !== undefined ? checked(order.price) : '0',
      origQty: toDecimalString(quantity),
      stopPrice: order.stopPrice !== undefined ? checked(order.stopPrice) : '0',
      reduceOnly: order.reduceOnly ?? false,
      time: Date.now(),
    };
    this.stats.placed += 1;
    if (type === 'MARKET') {
      this.fill(placed);
      return placed;
    }
    this.orders.set(placed.orderId, placed);
    return placed;
  }

  /** Market orders fill at once at the current price. Futures fills move the position; reduce-only never flips it. */
  private fill(order: PaperOrder): void {
    const price = this.priceOfSymbol(order.symbol);
    const signed = new Decimal(order.origQty).times(order.side === 'BUY' ? 1 : -1);
    if (order.market === 'spot') {
      const base = this.requireSymbol(order.symbol);
      const baseBalance = new Decimal(this.spotBalances.get(base) ?? '0').plus(signed);
      const quoteBalance = new Decimal(this.spotBalances.get(QUOTE) ?? '0').minus(signed.times(price));
      if (baseBalance.isNegative() || quoteBalance.isNegative()) throw new PaperBookError(-2010, 'Account has insufficient balance for requested action.');
      this.spotBalances.set(base, toDecimalString(baseBalance));
      this.spotBalances.set(QUOTE, toDecimalString(quoteBalance));
    } else {
      const current = this.positions.get(order.symbol);
      const amount = new Decimal(current?.positionAmt ?? '0');
      let change = signed;
      if (order.reduceOnly) {
        if (amount.isZero() || amount.isNegative() === signed.isNegative()) throw new PaperBookError(-2022, 'ReduceOnly Order is rejected.');
        if (change.abs().gt(amount.abs())) change = amount.negated();
      }
      const next = amount.plus(change);
      // Realize P&L on the part that closes.
      const closing = amount.isZero() || amount.isNegative() === change.isNegative() ? ZERO : Decimal.min(change.abs(), amount.abs());
      if (current && closing.gt(0)) {
        const pnl = price.minus(current.entryPrice).times(closing).times(amount.isNegative() ? -1 : 1);
        const wallet = new Decimal(this.futuresBalances.get(QUOTE) ?? '0').plus(pnl);
        this.futuresBalances.set(QUOTE, toDecimalString(wallet));
      }
      if (next.isZero()) this.positions.delete(order.symbol);
      else {
        const entry = current && !next.isNegative() === !amount.isNegative() && !amount.isZero() ? current.entryPrice : toDecimalString(price);
        this.positions.set(order.symbol, { symbol: order.symbol, positionAmt: toDecimalString(next), entryPrice: entry });
      }
    }
    this.stats.filled += 1;
  }

  cancelOrder(market: PaperMarket, algo: boolean, symbol: string, id: { orderId?: number; clientOrderId?: string }): PaperOrder {
    const order = [...this.orders.values()].find(
      (o) => o.market === market && o.algo === algo && o.symbol === symbol &&
        (id.orderId !== undefined ? o.orderId === id.orderId : o.clientOrderId === id.clientOrderId),
    );
    if (!order) throw new PaperBookError(-2011, 'Unknown order sent.');
    this.orders.delete(order.orderId);
    this.stats.cancelled += 1;
    return order;
  }

  cancelAll(market: PaperMarket, algo: boolean, symbol: string): PaperOrder[] {
    this.requireSymbol(symbol);
    const cancelled = this.openOrders(market, algo, symbol);
    for (const o of cancelled) this.orders.delete(o.orderId);
    this.stats.cancelled += cancelled.length;
    return cancelled;
  }

  unrealizedPnl(position: PaperPosition): Decimal {
    return this.priceOfSymbol(position.symbol).minus(position.entryPrice).times(position.positionAmt);
  }

  /** A summary for the control API and the demo. */
  snapshot() {
    const orders = [...this.orders.values()];
    return {
      prices: Object.fromEntries(this.prices),
      spotBalances: Object.fromEntries(this.spotBalances),
      futuresBalances: Object.fromEntries(this.futuresBalances),
      positions: [...this.positions.values()].map((p) => ({ ...p, unrealizedPnl: toDecimalString(this.unrealizedPnl(p)) })),
      openOrders: {
        spot: orders.filter((o) => o.market === 'spot').length,
        futures: orders.filter((o) => o.market === 'futures' && !o.algo).length,
        futuresAlgo: orders.filter((o) => o.market === 'futures' && o.algo).length,
        total: orders.length,
      },
      stats: { ...this.stats },
    };
  }
}

function checked(amount: string): string {
  if (typeof amount !== 'string' || !/^-?\d+(\.\d+)?$/.test(amount)) {
    throw new PaperBookError(-1100, `Illegal characters found in a parameter: ${JSON.stringify(amount)} is not a decimal string.`);
  }
  return amount;
}
