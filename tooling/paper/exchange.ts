/**
 * The paper exchange's books: one account's spot balances, USDⓈ-M futures wallet and positions, prices, the markets
 * listed on each side, and open orders (spot, futures, futures conditional/algo). Pure in-memory state, driven by the
 * HTTP layer in server.ts.
 *
 * Prices are kept per asset, in USDT (what the control API sets); a market's last price is derived from its two
 * assets' prices, so that moving BTC moves every BTC market consistently (`XYZBTC` = XYZ's price ÷ BTC's price).
 * Which markets exist is separate from which assets have a price: an asset can be held with no market at all (dust
 * of a delisted coin, a Simple Earn `LD…` token) or with only a BTC market, as on the real venue.
 */
import { Decimal, ZERO, toDecimalString } from '../../src/domain/money';

export type PaperMarket = 'spot' | 'futures';

/**
 * `BOTH` in One-way Mode; `LONG` / `SHORT` in Hedge Mode (USDⓈ-M "New Order (TRADE)" POST /fapi/v1/order, parameter
 * `positionSide`; "Position Information V3" GET /fapi/v3/positionRisk, field `positionSide`).
 */
export type PaperPositionSide = 'BOTH' | 'LONG' | 'SHORT';
const POSITION_SIDES: readonly string[] = ['BOTH', 'LONG', 'SHORT'] satisfies PaperPositionSide[];

/**
 * The quantity and price filters of one USDⓈ-M symbol, as "Exchange Information" (GET /fapi/v1/exchangeInfo) lists
 * them in `symbols[].filters` (decimal strings): PRICE_FILTER for limit prices, LOT_SIZE for limit quantities,
 * MARKET_LOT_SIZE for market quantities ("Filters" in the USDⓈ-M common definitions:
 * https://developers.binance.com/docs/derivatives/usds-margined-futures/common-definition).
 */
export interface PaperFilters {
  PRICE_FILTER: { minPrice: string; maxPrice: string; tickSize: string };
  LOT_SIZE: { minQty: string; maxQty: string; stepSize: string };
  MARKET_LOT_SIZE: { minQty: string; maxQty: string; stepSize: string };
}
/** Filters to change for one symbol (seed `filters` or `POST /control/filters`); unnamed fields keep their value. */
export type PaperFiltersInput = { [K in keyof PaperFilters]?: Partial<PaperFilters[K]> };

/** Every other futures symbol: loose filters, so that any scenario's quantities pass (steps of 0.001). */
const GENERIC_FUTURES_FILTERS: PaperFilters = {
  PRICE_FILTER: { minPrice: '0.00001', maxPrice: '1000000', tickSize: '0.00001' },
  LOT_SIZE: { minQty: '0.001', maxQty: '9000000', stepSize: '0.001' },
  MARKET_LOT_SIZE: { minQty: '0.001', maxQty: '9000000', stepSize: '0.001' },
};
/**
 * BTCUSDT and ETHUSDT with the filters Binance lists for them on USDⓈ-M (GET /fapi/v1/exchangeInfo, 2025): market
 * orders of at most 120 BTC / 2,000 ETH, limit orders of at most 1,000 BTC / 10,000 ETH, steps of 0.001.
 */
const DEFAULT_FUTURES_FILTERS: Record<string, PaperFilters> = {
  BTCUSDT: {
    PRICE_FILTER: { minPrice: '261.10', maxPrice: '809484', tickSize: '0.10' },
    LOT_SIZE: { minQty: '0.001', maxQty: '1000', stepSize: '0.001' },
    MARKET_LOT_SIZE: { minQty: '0.001', maxQty: '120', stepSize: '0.001' },
  },
  ETHUSDT: {
    PRICE_FILTER: { minPrice: '39.86', maxPrice: '306177', tickSize: '0.01' },
    LOT_SIZE: { minQty: '0.001', maxQty: '10000', stepSize: '0.001' },
    MARKET_LOT_SIZE: { minQty: '0.001', maxQty: '2000', stepSize: '0.001' },
  },
};

/** Conditional order types, which POST /fapi/v1/order refuses since Binance moved them to the Algo Order API. */
const CONDITIONAL_ORDER_TYPES = ['STOP', 'STOP_MARKET', 'TAKE_PROFIT', 'TAKE_PROFIT_MARKET', 'TRAILING_STOP_MARKET'];
/** At most this many placed orders are kept in the order log (oldest dropped), so chaos runs stay bounded. */
const ORDER_LOG_LIMIT = 10_000;

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
  positionSide: PaperPositionSide;
  time: number;
}

export interface PaperPosition {
  /** Binance symbol, e.g. "BTCUSDT". */
  symbol: string;
  /** Signed size: positive long, negative short (a Hedge Mode SHORT position is negative, as on Binance). */
  positionAmt: string;
  entryPrice: string;
  /**
   * Default: BOTH in One-way Mode; in Hedge Mode LONG for a positive amount, SHORT for a negative one. A seed that
   * names a side must match the account's mode (LONG positive, SHORT negative).
   */
  positionSide?: PaperPositionSide;
}

/** A market listed by the paper exchange, on spot, on USDⓈ-M futures (a perpetual), or both. */
export interface PaperListing {
  /** Binance symbol: base then quote, e.g. "XYZBTC". */
  symbol: string;
  base: string;
  quote: string;
  spot: boolean;
  futures: boolean;
}

/** A market to list, through the seed or `POST /control/markets`. */
export interface NewPaperListing {
  base: string;
  /** Default USDT. */
  quote?: string;
  /**
   * The market's price in its quote currency (e.g. XYZBTC at "0.0005"); it sets the base asset's price. Required when
   * the base has no price yet.
   */
  price?: string;
  /** Listed on spot; default true. */
  spot?: boolean;
  /** Listed as a USDⓈ-M perpetual (quote USDT or USDC only); default false. */
  futures?: boolean;
}

/**
 * What the control API accepts to set the account up. Every amount is a decimal string. Applied in this order:
 * markets are listed first (so that a price in `prices` for a coin listed only against BTC does not list it against
 * USDT), then prices, then the markets' own prices, balances, positions and orders.
 */
export interface PaperSeed {
  /**
   * The account's position mode, applied first (Hedge Mode when true); as on Binance it cannot change while the
   * account has a futures position or open futures order (-4068, -4067).
   */
  dualSidePosition?: boolean;
  /** Futures filters per symbol, e.g. `{ "BTCUSDT": { "MARKET_LOT_SIZE": { "maxQty": "0.5" } } }`. */
  filters?: Record<string, PaperFiltersInput>;
  /** USDT price per asset. Setting the price of an asset that has no market lists ASSETUSDT on spot and futures. */
  prices?: Record<string, string>;
  /** Extra markets, e.g. `{ base: 'XYZ', quote: 'BTC', price: '0.0005' }` for a coin with only a BTC pair. */
  markets?: NewPaperListing[];
  /**
   * Spot balances, any asset: one with no market (delisted dust), a Simple Earn token (`LDBTC`, `LDUSDT`), a zero
   * row ("0" shows as a zero row in the account's balance list, as on Binance).
   */
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
  /** Through the venue API: `undefined` when the parameter was not sent (Hedge Mode refuses it when sent). */
  reduceOnly?: boolean;
  /** Futures: BOTH (default in One-way Mode), LONG or SHORT (Hedge Mode). Validated by {@link PaperExchange.checkNewFuturesOrder}. */
  positionSide?: string;
  clientOrderId?: string;
}

/** Assets every paper exchange lists, with default prices in USDT, so that 20-symbol scenarios need no set-up. */
export const DEFAULT_PRICES: Record<string, string> = {
  BTC: '40000', ETH: '2000', BNB: '300', SOL: '100', XRP: '0.5', ADA: '0.4', DOGE: '0.08', AVAX: '20', DOT: '5',
  LINK: '15', LTC: '70', TRX: '0.1', ATOM: '8', NEAR: '3', UNI: '6', APT: '8', ARB: '1', OP: '2', FIL: '5', SUI: '1',
};
export const QUOTE = 'USDT';

/**
 * USDⓈ-M futures lists USDT- and USDC-margined contracts only (the `marginAsset` of each symbol in
 * https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information).
 */
export const FUTURES_QUOTES = ['USDT', 'USDC'] as const;

/** Binance asset names: upper-case letters and digits (e.g. "BTC", "LDUSDT", "1000SATS"). */
const ASSET = /^[A-Z0-9]{1,20}$/;

/** The listings every paper exchange starts with: each default asset against USDT, on spot and futures. */
function defaultListings(): Map<string, PaperListing> {
  return new Map(
    Object.keys(DEFAULT_PRICES).map((base) => [`${base}${QUOTE}`, { symbol: `${base}${QUOTE}`, base, quote: QUOTE, spot: true, futures: true }]),
  );
}

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

/**
 * What changed in the books, for whoever streams it (tooling/paper/streams.ts turns these into Binance's stream
 * events). Listeners run synchronously after the change; a book with no listener pays nothing.
 */
export type PaperChange =
  /** USDT prices of these assets were set (every market of which they are base or quote moved). */
  | { kind: 'prices'; assets: string[] }
  /** Spot balances of these assets changed (absolute values are read from the book). */
  | { kind: 'spotBalances'; assets: string[] }
  /**
   * The futures wallet of these assets and/or these positions changed; a closed position comes with positionAmt "0".
   * `reason` is ACCOUNT_UPDATE's "m" (ORDER for a fill, DEPOSIT for a seed/control change).
   */
  | { kind: 'futuresAccount'; assets: string[]; positions: PaperPosition[]; reason: 'ORDER' | 'DEPOSIT' }
  /** An order was accepted (NEW), filled at once (FILLED, at `fillPrice`) or cancelled (CANCELED). */
  | { kind: 'order'; order: PaperOrder; status: 'NEW' | 'FILLED' | 'CANCELED'; fillPrice?: string };

export type PaperChangeListener = (change: PaperChange) => void;

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

/** What every account of one venue shares: prices, listed markets, futures filters, the order-id sequence. */
interface PaperMarketState {
  prices: Map<string, string>;
  listings: Map<string, PaperListing>;
  filterOverrides: Map<string, PaperFiltersInput>;
  nextOrderId: number;
}

const freshMarketState = (): PaperMarketState => ({
  prices: new Map(Object.entries(DEFAULT_PRICES)),
  listings: defaultListings(),
  filterOverrides: new Map(),
  nextOrderId: 1,
});

export class PaperExchange {
  /**
   * Markets and prices: this book's own, or those of the book it was built with (`new PaperExchange(first)`: one
   * account of a venue with several, see startPaperServer's `separateAccounts`).
   */
  private readonly market: { state: PaperMarketState };
  /** The book whose markets this one shares, which also hears its price changes. */
  private readonly marketsOwner?: PaperExchange;

  constructor(sharesMarketsWith?: PaperExchange) {
    this.marketsOwner = sharesMarketsWith;
    this.market = sharesMarketsWith ? sharesMarketsWith.market : { state: freshMarketState() };
  }

  /** USDT price per asset. */
  get prices(): Map<string, string> {
    return this.market.state.prices;
  }
  set prices(prices: Map<string, string>) {
    this.market.state.prices = prices;
  }
  /** Listed markets by Binance symbol. */
  get listings(): Map<string, PaperListing> {
    return this.market.state.listings;
  }
  set listings(listings: Map<string, PaperListing>) {
    this.market.state.listings = listings;
  }
  /** Futures filters changed from their defaults, by symbol. */
  private get filterOverrides(): Map<string, PaperFiltersInput> {
    return this.market.state.filterOverrides;
  }
  spotBalances = new Map<string, string>();
  futuresBalances = new Map<string, string>();
  /** Keyed by {@link positionKey}: the symbol in One-way Mode, `SYMBOL:LONG` / `SYMBOL:SHORT` in Hedge Mode. */
  positions = new Map<string, PaperPosition>();
  orders = new Map<number, PaperOrder>();
  /** Hedge Mode when true ("Get Current Position Mode" GET /fapi/v1/positionSide/dual). */
  dualSidePosition = false;
  /** Every order placed (filled or resting), oldest first, at most {@link ORDER_LOG_LIMIT}: what tests check splits by. */
  readonly orderLog: PaperOrder[] = [];
  /** Cancels and fills performed, for tests and the demo's report. */
  readonly stats = { cancelled: 0, placed: 0, filled: 0 };
  private readonly listeners = new Set<PaperChangeListener>();

  /** Calls `listener` after every change of prices, balances, positions or orders; returns the unsubscribe. */
  onChange(listener: PaperChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: PaperChange): void {
    // Prices are the shared markets': whoever streams them listens to the owner.
    if (change.kind === 'prices' && this.marketsOwner) return this.marketsOwner.emit(change);
    for (const listener of this.listeners) listener(change);
  }

  reset(): void {
    this.prices = new Map(Object.entries(DEFAULT_PRICES));
    this.listings = defaultListings();
    this.spotBalances.clear();
    this.futuresBalances.clear();
    this.positions.clear();
    this.orders.clear();
    this.dualSidePosition = false;
    this.filterOverrides.clear();
    this.orderLog.length = 0;
    Object.assign(this.stats, { cancelled: 0, placed: 0, filled: 0 });
  }

  seed(seed: PaperSeed): void {
    if (seed.dualSidePosition !== undefined) this.setPositionMode(seed.dualSidePosition, { control: true });
    const markets = seed.markets ?? [];
    for (const m of markets) this.listMarket({ ...m, price: undefined }, { priceLater: true });
    for (const [asset, price] of Object.entries(seed.prices ?? {})) this.setPrice(asset, price);
    for (const m of markets) this.listMarket(m);
    for (const [asset, amount] of Object.entries(seed.spotBalances ?? {})) this.spotBalances.set(checkedAsset(asset), checked(amount));
    for (const [asset, amount] of Object.entries(seed.futuresBalances ?? {})) this.futuresBalances.set(checkedAsset(asset), checked(amount));
    if (seed.spotBalances) this.emit({ kind: 'spotBalances', assets: Object.keys(seed.spotBalances) });
    const seededPositions: PaperPosition[] = [];
    for (const [symbol, input] of Object.entries(seed.filters ?? {})) this.setFilters(symbol, input);
    for (const p of seed.positions ?? []) {
      this.requireSymbol(p.symbol, 'futures');
      const amount = new Decimal(checked(p.positionAmt));
      const side = p.positionSide ?? (!this.dualSidePosition ? 'BOTH' : amount.isNegative() ? 'SHORT' : 'LONG');
      const fits = this.dualSidePosition ? (side === 'LONG' && amount.gt(0)) || (side === 'SHORT' && amount.lt(0)) : side === 'BOTH';
      if (!fits) {
        throw new PaperBookError(-4061, `a ${side} position of ${p.positionAmt} ${p.symbol} does not fit ${this.dualSidePosition ? 'Hedge Mode (LONG positive, SHORT negative)' : 'One-way Mode (BOTH)'}`);
      }
      const position: PaperPosition = { symbol: p.symbol, positionSide: side, positionAmt: p.positionAmt, entryPrice: checked(p.entryPrice) };
      this.positions.set(positionKey(p.symbol, side), position);
      seededPositions.push(position);
    }
    if (seed.futuresBalances || seededPositions.length > 0) {
      this.emit({ kind: 'futuresAccount', assets: Object.keys(seed.futuresBalances ?? {}), positions: seededPositions, reason: 'DEPOSIT' });
    }
    for (const order of seed.orders ?? []) this.placeOrder(order);
  }

  /**
   * Switches the position mode, with Binance's rules ("Change Position Mode (TRADE)" POST /fapi/v1/positionSide/dual):
   * -4059 "No need to change position side." when already in that mode (not for the control API, which is
   * idempotent), -4068 while a futures position is open, -4067 while a futures order (normal or conditional) is open.
   */
  setPositionMode(dualSidePosition: boolean, options: { control?: boolean } = {}): void {
    if (typeof dualSidePosition !== 'boolean') throw new PaperBookError(-1100, 'dualSidePosition must be true or false');
    if (dualSidePosition === this.dualSidePosition) {
      if (options.control) return;
      throw new PaperBookError(-4059, 'No need to change position side.');
    }
    if (this.positions.size > 0) throw new PaperBookError(-4068, 'Position side cannot be changed if there exists position.');
    if ([...this.orders.values()].some((o) => o.market === 'futures')) {
      throw new PaperBookError(-4067, 'Position side cannot be changed if there exists open orders.');
    }
    this.dualSidePosition = dualSidePosition;
  }

  /** A futures symbol's filters: its defaults (realistic for BTCUSDT and ETHUSDT) with the changes set on it. */
  futuresFilters(symbol: string): PaperFilters {
    const base = DEFAULT_FUTURES_FILTERS[symbol] ?? GENERIC_FUTURES_FILTERS;
    const changed = this.filterOverrides.get(symbol) ?? {};
    return {
      PRICE_FILTER: { ...base.PRICE_FILTER, ...changed.PRICE_FILTER },
      LOT_SIZE: { ...base.LOT_SIZE, ...changed.LOT_SIZE },
      MARKET_LOT_SIZE: { ...base.MARKET_LOT_SIZE, ...changed.MARKET_LOT_SIZE },
    };
  }

  /** Changes some of a listed futures symbol's filters (e.g. a small MARKET_LOT_SIZE maxQty for a test). */
  setFilters(symbol: string, input: PaperFiltersInput): PaperFilters {
    this.requireSymbol(symbol, 'futures');
    if (typeof input !== 'object' || input === null) throw new PaperBookError(-1100, 'expected { "MARKET_LOT_SIZE": { "maxQty": "..." }, ... }');
    const current = this.filterOverrides.get(symbol) ?? {};
    const next: PaperFiltersInput = { ...current };
    for (const [type, fields] of Object.entries(input)) {
      if (!(type in GENERIC_FUTURES_FILTERS)) throw new PaperBookError(-1100, `unknown filter ${type}: PRICE_FILTER, LOT_SIZE or MARKET_LOT_SIZE`);
      const allowed = Object.keys(GENERIC_FUTURES_FILTERS[type as keyof PaperFilters]);
      for (const [field, value] of Object.entries((fields ?? {}) as Record<string, string>)) {
        if (!allowed.includes(field)) throw new PaperBookError(-1100, `unknown ${type} field ${field}: ${allowed.join(', ')}`);
        if (new Decimal(checked(value)).isNegative()) throw new PaperBookError(-1100, `${type}.${field} must not be negative`);
      }
      next[type as keyof PaperFilters] = { ...current[type as keyof PaperFilters], ...(fields as object) };
    }
    this.filterOverrides.set(symbol, next);
    return this.futuresFilters(symbol);
  }

  /**
   * The checks USDⓈ-M "New Order (TRADE)" POST /fapi/v1/order makes before an order reaches the book, with the
   * codes of https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code (ccxt binance.js maps
   * them: -4061 OperationRejected, -1106/-1111/-4003/-4004/-4005/-4013/-4014/-4023 BadRequest):
   * - conditional types are refused: -4120 STOP_ORDER_SWITCH_ALGO "Order type not supported for this endpoint.
   *   Please use the Algo Order API endpoints instead." (they go to POST /fapi/v1/algoOrder since the 2025 Algo
   *   Service migration; ccxt 4.5.84's createOrder sends them there);
   * - position side: in Hedge Mode `positionSide` LONG or SHORT is mandatory and `reduceOnly` "cannot be sent"
   *   (-4061 "Order's position side does not match user's setting.", -1106 "Parameter 'reduceOnly' sent when not
   *   required."); in One-way Mode only BOTH (or nothing) is accepted (-4061);
   * - quantity against LOT_SIZE (LIMIT) or MARKET_LOT_SIZE (MARKET): more decimals than the step -1111 "Precision is
   *   over the maximum defined for this asset.", not above zero -4003 "Quantity less than zero.", below minQty -4004
   *   "Quantity less than min quantity.", above maxQty -4005 "Quantity greater than max quantity.", off the step
   *   -4023 "Qty not increased by step size.";
   * - a LIMIT price against PRICE_FILTER (a 0 bound is "disabled", as the filter's definition says): -1111 for
   *   more decimals than the tick, -4013 "Price less than min price.", -4002 "Price greater than max price.", -4014
   *   "Price not increased by tick size." ((price - minPrice) % tickSize must be 0).
   * The brief for this model named -4003 for "less than min"; Binance's table gives -4003 to "less than zero" and
   * -4004 to "less than min quantity", so the paper follows the table.
   * Whether a reduce-only order would flip a position is checked at the fill (-2022).
   */
  checkNewFuturesOrder(order: NewPaperOrder): void {
    this.requireSymbol(order.symbol, 'futures');
    const type = (order.type ?? 'LIMIT').toUpperCase();
    if (CONDITIONAL_ORDER_TYPES.includes(type)) {
      throw new PaperBookError(-4120, 'Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.');
    }
    if (type !== 'LIMIT' && type !== 'MARKET') throw new PaperBookError(-1116, 'Invalid orderType.');
    const side = order.positionSide;
    if (side !== undefined && !POSITION_SIDES.includes(side)) throw new PaperBookError(-4061, "Order's position side does not match user's setting.");
    if (this.dualSidePosition) {
      if (side !== 'LONG' && side !== 'SHORT') throw new PaperBookError(-4061, "Order's position side does not match user's setting.");
      if (order.reduceOnly !== undefined) throw new PaperBookError(-1106, "Parameter 'reduceOnly' sent when not required.");
    } else if (side !== undefined && side !== 'BOTH') {
      throw new PaperBookError(-4061, "Order's position side does not match user's setting.");
    }
    const filters = this.futuresFilters(order.symbol);
    const lot = type === 'MARKET' ? filters.MARKET_LOT_SIZE : filters.LOT_SIZE;
    const quantity = new Decimal(checked(order.quantity));
    const step = new Decimal(lot.stepSize);
    if (step.gt(0) && quantity.decimalPlaces() > step.decimalPlaces()) throw new PaperBookError(-1111, 'Precision is over the maximum defined for this asset.');
    if (!quantity.gt(0)) throw new PaperBookError(-4003, 'Quantity less than zero.');
    if (quantity.lt(lot.minQty)) throw new PaperBookError(-4004, 'Quantity less than min quantity.');
    if (quantity.gt(lot.maxQty)) throw new PaperBookError(-4005, 'Quantity greater than max quantity.');
    if (step.gt(0) && !quantity.minus(lot.minQty).mod(step).isZero()) throw new PaperBookError(-4023, 'Qty not increased by step size.');
    if (type === 'LIMIT') {
      if (order.price === undefined) throw new PaperBookError(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.");
      const price = new Decimal(checked(order.price));
      const { minPrice, maxPrice, tickSize } = filters.PRICE_FILTER;
      const tick = new Decimal(tickSize);
      if (tick.gt(0) && price.decimalPlaces() > tick.decimalPlaces()) throw new PaperBookError(-1111, 'Precision is over the maximum defined for this asset.');
      if (!price.gt(0)) throw new PaperBookError(-4001, 'Price less than 0.');
      if (new Decimal(minPrice).gt(0) && price.lt(minPrice)) throw new PaperBookError(-4013, 'Price less than min price.');
      if (new Decimal(maxPrice).gt(0) && price.gt(maxPrice)) throw new PaperBookError(-4002, 'Price greater than max price.');
      if (tick.gt(0) && !price.minus(minPrice).mod(tick).isZero()) throw new PaperBookError(-4014, 'Price not increased by tick size.');
    }
  }

  /**
   * Sets an asset's USDT price. An asset with no market yet gets ASSETUSDT on spot and futures (what setting a price
   * has always done here); one that already has markets keeps exactly those.
   */
  setPrice(asset: string, price: string): void {
    checkedAsset(asset);
    if (!new Decimal(checked(price)).gt(0)) throw new PaperBookError(-1100, `price of ${asset} must be positive`);
    this.prices.set(asset, price);
    if (asset !== QUOTE && ![...this.listings.values()].some((l) => l.base === asset)) {
      this.listings.set(`${asset}${QUOTE}`, { symbol: `${asset}${QUOTE}`, base: asset, quote: QUOTE, spot: true, futures: true });
    }
    this.emit({ kind: 'prices', assets: [asset] });
  }

  /**
   * Lists a market (or changes an existing one's sides and price): what a coin listed after a client loaded its
   * markets looks like, since `exchangeInfo` lists it from now on.
   * @param options.priceLater list now, check and set prices in a second call (the seed lists first, prices after)
   */
  listMarket(input: NewPaperListing, options: { priceLater?: boolean } = {}): PaperListing {
    const base = checkedAsset(input.base);
    const quote = checkedAsset(input.quote ?? QUOTE);
    if (base === quote) throw new PaperBookError(-1100, `a market needs two different assets, got ${base}/${quote}`);
    const symbol = `${base}${quote}`;
    const existing = this.listings.get(symbol);
    const futures = input.futures ?? existing?.futures ?? false;
    if (futures && !(FUTURES_QUOTES as readonly string[]).includes(quote)) {
      throw new PaperBookError(-1100, `USDⓈ-M futures list ${FUTURES_QUOTES.join(' and ')} contracts only, not ${symbol}`);
    }
    if (!options.priceLater) {
      const quotePrice = this.usdtPrice(quote);
      if (quotePrice === undefined) throw new PaperBookError(-1100, `${quote} has no price: set it first (POST /control/prices)`);
      if (input.price !== undefined) {
        const price = new Decimal(checked(input.price));
        if (!price.gt(0)) throw new PaperBookError(-1100, `price of ${symbol} must be positive`);
        this.prices.set(base, toDecimalString(price.times(quotePrice)));
      } else if (this.usdtPrice(base) === undefined) {
        throw new PaperBookError(-1100, `${base} has no price: give the market's "price" in ${quote}`);
      }
    }
    const listing: PaperListing = { symbol, base, quote, spot: input.spot ?? existing?.spot ?? true, futures };
    this.listings.set(symbol, listing);
    if (!options.priceLater && input.price !== undefined) this.emit({ kind: 'prices', assets: [base] });
    return listing;
  }

  /**
   * Delists a market: it leaves exchangeInfo and the tickers, and its open orders are cancelled (Binance's delisting
   * announcements: trading stops and open orders are removed at the delisting time). Balances stay, as dust.
   */
  delistMarket(symbol: string): PaperListing {
    const listing = this.listings.get(symbol);
    if (!listing) throw new PaperBookError(-1121, 'Invalid symbol.');
    if ([...this.positions.values()].some((p) => p.symbol === symbol)) throw new PaperBookError(-1100, `${symbol} has an open position; close it first`);
    for (const o of this.openOrders('spot', false, symbol).concat(this.openOrders('futures', false, symbol), this.openOrders('futures', true, symbol))) {
      this.orders.delete(o.orderId);
      this.emit({ kind: 'order', order: o, status: 'CANCELED' });
    }
    this.listings.delete(symbol);
    return listing;
  }

  /** An asset's USDT price (USDT itself: 1), if it has one. */
  private usdtPrice(asset: string): Decimal | undefined {
    if (asset === QUOTE) return new Decimal(1);
    const price = this.prices.get(asset);
    return price === undefined ? undefined : new Decimal(price);
  }

  /** The markets listed on one side (or on either side when `market` is omitted), in listing order. */
  markets(market?: PaperMarket): PaperListing[] {
    return [...this.listings.values()].filter((l) => (market === undefined ? true : market === 'spot' ? l.spot : l.futures));
  }

  /** Symbols listed on a side (or either side), with their base: what exchangeInfo, tickers and brackets list. */
  symbols(market?: PaperMarket): { symbol: string; base: string; quote: string }[] {
    return this.markets(market).map(({ symbol, base, quote }) => ({ symbol, base, quote }));
  }

  /**
   * A market's last price in its quote currency: the base's USDT price over the quote's. USDT markets carry the
   * price exactly as set; other quotes are rounded to 8 decimals, Binance's quote precision.
   */
  priceOfSymbol(symbol: string, market?: PaperMarket): Decimal {
    const listing = this.requireListing(symbol, market);
    const base = this.usdtPrice(listing.base);
    const quote = this.usdtPrice(listing.quote);
    if (base === undefined || quote === undefined) throw new PaperBookError(-1121, 'Invalid symbol.');
    return listing.quote === QUOTE ? base : base.div(quote).toDecimalPlaces(8);
  }

  /** The base asset of a listed symbol; Binance's -1121 otherwise. */
  requireSymbol(symbol: string, market?: PaperMarket): string {
    return this.requireListing(symbol, market).base;
  }

  requireListing(symbol: string, market?: PaperMarket): PaperListing {
    const found = this.listings.get(symbol);
    if (!found || (market === 'spot' && !found.spot) || (market === 'futures' && !found.futures)) {
      throw new PaperBookError(-1121, 'Invalid symbol.');
    }
    return found;
  }

  /**
   * Every asset the account's spot balance list shows: those with a balance first, then every asset of a listed
   * spot market. Binance's list is the exchange's whole asset catalogue, most rows zero.
   */
  spotAssets(): string[] {
    const assets = new Set(this.spotBalances.keys());
    const listed = new Set<string>();
    for (const l of this.markets('spot')) {
      listed.add(l.base);
      listed.add(l.quote);
    }
    for (const a of [...listed].sort()) assets.add(a);
    return [...assets];
  }

  openOrders(market: PaperMarket, algo: boolean, symbol?: string): PaperOrder[] {
    return [...this.orders.values()].filter(
      (o) => o.market === market && o.algo === algo && (symbol === undefined || o.symbol === symbol),
    );
  }

  placeOrder(order: NewPaperOrder): PaperOrder {
    this.requireSymbol(order.symbol, order.market);
    const quantity = new Decimal(checked(order.quantity));
    if (!quantity.gt(0)) throw new PaperBookError(-1013, 'Invalid quantity.');
    const type = (order.type ?? (order.stopPrice ? 'STOP_MARKET' : 'LIMIT')).toUpperCase();
    const placed: PaperOrder = {
      market: order.market,
      algo: order.market === 'futures' && order.stopPrice !== undefined,
      orderId: this.market.state.nextOrderId++,
      clientOrderId: order.clientOrderId ?? `paper-${this.market.state.nextOrderId}`,
      symbol: order.symbol,
      side: order.side,
      type,
      price: order.price !== undefined ? checked(order.price) : '0',
      origQty: toDecimalString(quantity),
      stopPrice: order.stopPrice !== undefined ? checked(order.stopPrice) : '0',
      reduceOnly: order.reduceOnly ?? false,
      positionSide: order.market === 'spot' ? 'BOTH' : this.orderPositionSide(order),
      time: Date.now(),
    };
    this.stats.placed += 1;
    const filled = type === 'MARKET' ? this.fill(placed) : undefined;
    if (!filled) this.orders.set(placed.orderId, placed);
    // Only orders the book accepted are logged (a refused fill throws above).
    this.orderLog.push(placed);
    if (this.orderLog.length > ORDER_LOG_LIMIT) this.orderLog.shift();
    // Binance's order: the order's own report(s) first, then the account change the fill caused.
    this.emit({ kind: 'order', order: placed, status: 'NEW' });
    if (filled) {
      this.emit({ kind: 'order', order: placed, status: 'FILLED', fillPrice: filled.price });
      this.emit(filled.change);
    }
    return placed;
  }

  /**
   * A futures order's position side: as given when valid, else what fits the mode (BOTH; in Hedge Mode, for a seeded
   * order without one, the side a BUY opens (LONG) or a SELL opens (SHORT)).
   */
  private orderPositionSide(order: NewPaperOrder): PaperPositionSide {
    if (order.positionSide !== undefined && POSITION_SIDES.includes(order.positionSide)) return order.positionSide as PaperPositionSide;
    return !this.dualSidePosition ? 'BOTH' : order.side === 'BUY' ? 'LONG' : 'SHORT';
  }

  /**
   * Market orders fill at once at the current price. Futures fills move the position of the order's side.
   * Never a flip: a reduce-only order (One-way Mode) and a closing order in Hedge Mode (SELL on LONG, BUY on SHORT,
   * which can only reduce that side) are refused with -2022 "ReduceOnly Order is rejected." when there is nothing
   * to reduce on that side, or when they are larger than the position (USDⓈ-M error codes: -2022 REDUCE_ONLY_REJECT).
   * Binance may instead trim an oversized reduce-only order to the position; refusing is the stricter model, and a
   * client that sizes from a fresh fetch works against both.
   */
  private fill(order: PaperOrder): { price: string; change: PaperChange } {
    const price = this.priceOfSymbol(order.symbol, order.market);
    let account: PaperChange;
    const { base, quote } = this.requireListing(order.symbol, order.market);
    const signed = new Decimal(order.origQty).times(order.side === 'BUY' ? 1 : -1);
    if (order.market === 'spot') {
      const baseBalance = new Decimal(this.spotBalances.get(base) ?? '0').plus(signed);
      const quoteBalance = new Decimal(this.spotBalances.get(quote) ?? '0').minus(signed.times(price));
      if (baseBalance.isNegative() || quoteBalance.isNegative()) throw new PaperBookError(-2010, 'Account has insufficient balance for requested action.');
      this.spotBalances.set(base, toDecimalString(baseBalance));
      this.spotBalances.set(quote, toDecimalString(quoteBalance));
      account = { kind: 'spotBalances', assets: [base, quote] };
    } else {
      const key = positionKey(order.symbol, order.positionSide);
      const current = this.positions.get(key);
      const amount = new Decimal(current?.positionAmt ?? '0');
      const change = signed;
      const closesHedgeSide = (order.positionSide === 'LONG' && order.side === 'SELL') || (order.positionSide === 'SHORT' && order.side === 'BUY');
      if (order.reduceOnly || closesHedgeSide) {
        if (amount.isZero() || amount.isNegative() === signed.isNegative() || change.abs().gt(amount.abs())) {
          throw new PaperBookError(-2022, 'ReduceOnly Order is rejected.');
        }
      }
      const next = amount.plus(change);
      // Realize P&L on the part that closes.
      const closing = amount.isZero() || amount.isNegative() === change.isNegative() ? ZERO : Decimal.min(change.abs(), amount.abs());
      if (current && closing.gt(0)) {
        const pnl = price.minus(current.entryPrice).times(closing).times(amount.isNegative() ? -1 : 1);
        // P&L settles in the contract's margin asset (its quote: USDT or USDC).
        const wallet = new Decimal(this.futuresBalances.get(quote) ?? '0').plus(pnl);
        this.futuresBalances.set(quote, toDecimalString(wallet));
      }
      let after: PaperPosition;
      if (next.isZero()) {
        this.positions.delete(key);
        after = { symbol: order.symbol, positionSide: order.positionSide, positionAmt: '0', entryPrice: '0' };
      } else {
        const entry = current && !next.isNegative() === !amount.isNegative() && !amount.isZero() ? current.entryPrice : toDecimalString(price);
        after = { symbol: order.symbol, positionSide: order.positionSide, positionAmt: toDecimalString(next), entryPrice: entry };
        this.positions.set(key, after);
      }
      account = { kind: 'futuresAccount', assets: [quote], positions: [after], reason: 'ORDER' };
    }
    this.stats.filled += 1;
    return { price: toDecimalString(price), change: account };
  }

  cancelOrder(market: PaperMarket, algo: boolean, symbol: string, id: { orderId?: number; clientOrderId?: string }): PaperOrder {
    const order = [...this.orders.values()].find(
      (o) => o.market === market && o.algo === algo && o.symbol === symbol &&
        (id.orderId !== undefined ? o.orderId === id.orderId : o.clientOrderId === id.clientOrderId),
    );
    if (!order) throw new PaperBookError(-2011, 'Unknown order sent.');
    this.orders.delete(order.orderId);
    this.stats.cancelled += 1;
    this.emit({ kind: 'order', order, status: 'CANCELED' });
    return order;
  }

  cancelAll(market: PaperMarket, algo: boolean, symbol: string): PaperOrder[] {
    this.requireSymbol(symbol, market);
    const cancelled = this.openOrders(market, algo, symbol);
    for (const o of cancelled) {
      this.orders.delete(o.orderId);
      this.emit({ kind: 'order', order: o, status: 'CANCELED' });
    }
    this.stats.cancelled += cancelled.length;
    return cancelled;
  }

  unrealizedPnl(position: PaperPosition): Decimal {
    return this.priceOfSymbol(position.symbol, 'futures').minus(position.entryPrice).times(position.positionAmt);
  }

  /** A summary for the control API and the demo. */
  snapshot() {
    const orders = [...this.orders.values()];
    return {
      dualSidePosition: this.dualSidePosition,
      prices: Object.fromEntries(this.prices),
      markets: this.markets().map((l) => ({ ...l, price: toDecimalString(this.priceOfSymbol(l.symbol)) })),
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

/** Where a position lives in {@link PaperExchange.positions}: one per symbol in One-way Mode, one per side in Hedge Mode. */
export function positionKey(symbol: string, side: PaperPositionSide = 'BOTH'): string {
  return side === 'BOTH' ? symbol : `${symbol}:${side}`;
}

function checkedAsset(asset: string): string {
  if (typeof asset !== 'string' || !ASSET.test(asset)) {
    throw new PaperBookError(-1100, `Illegal characters found in a parameter: ${JSON.stringify(asset)} is not an asset name (upper-case letters and digits).`);
  }
  return asset;
}

function checked(amount: string): string {
  if (typeof amount !== 'string' || !/^-?\d+(\.\d+)?$/.test(amount)) {
    throw new PaperBookError(-1100, `Illegal characters found in a parameter: ${JSON.stringify(amount)} is not a decimal string.`);
  }
  return amount;
}
