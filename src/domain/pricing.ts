/**
 * Pricing held assets in the reference currency from the markets a venue lists: a direct market, a bridge through
 * one intermediate currency, or (for Binance Simple Earn flexible tokens) the underlying coin. Pure: it is given
 * the markets and their last prices and says which markets it needs; fetching them is the caller's business.
 *
 * Why bridges: an account may hold a coin whose only market is against BTC (`XYZ/BTC`), and a guard that cannot price
 * it cannot value the account. `XYZ/BTC × BTC/USDT` prices it from two markets the venue itself lists.
 *
 * Why the `LD` rule: Binance shows Simple Earn flexible positions in the spot balance list as `LD`-prefixed assets
 * (`LDBTC`, `LDUSDT`, see `GET /api/v3/account` and the Simple Earn flexible product docs); 1 LDBTC is redeemable for
 * 1 BTC and no market lists `LDBTC`. But `LDO` (Lido DAO) is a real coin with its own market, so the rule applies only
 * to an asset with no market of its own.
 */
import { Decimal, DecimalString, parseDecimal, toDecimalString } from './money';

/** A market as pricing needs it: the symbol to fetch (opaque here, e.g. ccxt's "XYZ/BTC") and its two assets. */
export interface PricingMarket {
  readonly symbol: string;
  readonly base: string;
  readonly quote: string;
}

/** One market of a route; `inverse` means it is read upside down (the held side is its quote): 1 ÷ last. */
export interface PriceLeg {
  readonly symbol: string;
  readonly inverse: boolean;
}

/** How one asset is priced. */
export type PriceRoute =
  /** The asset is the reference currency (or an Earn token of it): worth exactly 1. */
  | { readonly kind: 'reference' }
  /** `ASSET/REF` (or `REF/ASSET`, inverted). */
  | { readonly kind: 'direct'; readonly legs: readonly [PriceLeg] }
  /** `ASSET/VIA × VIA/REF` (either leg possibly inverted). */
  | { readonly kind: 'bridge'; readonly via: string; readonly legs: readonly [PriceLeg, PriceLeg] };

/** A held asset's planned route. */
export interface PlannedPrice {
  /** The asset whose markets the route uses: the asset itself, or the underlying coin of an `LD` Earn token. */
  readonly pricedAs: string;
  readonly route: PriceRoute;
  /** For people and logs, e.g. "XYZ/BTC × BTC/USDT" or "LDBTC as BTC: BTC/USDT". */
  readonly label: string;
}

/** Why an asset has no price. */
export const UnpricedReason = {
  /** No direct market, no bridge, no `LD` underlying: the loaded markets cannot price it (delisted, or too new). */
  NoRoute: 'noRoute',
  /** A route exists but a market's last price is missing, zero, negative or not a decimal string. */
  NoPrice: 'noPrice',
} as const;
export type UnpricedReason = (typeof UnpricedReason)[keyof typeof UnpricedReason];

export interface UnpricedAsset {
  readonly asset: string;
  readonly reason: UnpricedReason;
  /** Human-readable detail, e.g. 'last price of "XYZ/BTC" is "0"'. */
  readonly detail: string;
}

/** What {@link planPrices} decides before any price is known. */
export interface PricePlan {
  readonly reference: string;
  /** Held assets that have a route, by asset. */
  readonly routes: Readonly<Record<string, PlannedPrice>>;
  /** Held assets without a route (reason {@link UnpricedReason.NoRoute}), in the order given. */
  readonly unpriced: readonly UnpricedAsset[];
  /** Every market symbol whose last price the routes need, each once, sorted: what to fetch (one tickers call). */
  readonly symbolsToFetch: readonly string[];
}

/** What {@link priceAssets} computes. */
export interface PricedAssets {
  /** Price of one unit of each priced asset in the reference currency, as a decimal string (always > 0). */
  readonly prices: Record<string, DecimalString>;
  /** The route each priced asset took ({@link PlannedPrice.label}). */
  readonly routes: Record<string, string>;
  /** Assets left without a price, with the reason. Never priced at zero. */
  readonly unpriced: UnpricedAsset[];
}

/** The reference currencies whose "other stablecoin" is the last bridge. */
const STABLECOINS = ['USDT', 'USDC'] as const;

/**
 * Intermediate currencies tried for a bridge, in order (the first whose two markets exist wins): BTC, ETH, BNB,
 * FDUSD, then the other stablecoin (USDC when the reference is USDT, USDT when it is USDC). The deepest markets
 * first: a BTC pair is the one a venue lists for almost every coin.
 * @param reference the reference currency
 */
export function bridgeCurrencies(reference: string): string[] {
  return ['BTC', 'ETH', 'BNB', 'FDUSD', ...STABLECOINS].filter((c) => c !== reference);
}

/** Prefix of Binance Simple Earn flexible tokens in the spot balance list. */
const EARN_PREFIX = 'LD';

/**
 * Significant digits kept when a route divides (an inverted leg): 1 ÷ price rarely terminates. Twenty digits are far
 * beyond any venue's precision (8 decimals) and keep the string short; a route that only multiplies is exact.
 */
export const INVERTED_PRICE_SIGNIFICANT_DIGITS = 20;

type MarketIndex = { byPair: Map<string, string>; assetsWithMarkets: Set<string> };

function indexMarkets(markets: Iterable<PricingMarket>): MarketIndex {
  const byPair = new Map<string, string>();
  const assetsWithMarkets = new Set<string>();
  for (const m of markets) {
    const pair = `${m.base}/${m.quote}`;
    // The first market listed for a pair wins, so that the caller decides (e.g. by listing order).
    if (!byPair.has(pair)) byPair.set(pair, m.symbol);
    assetsWithMarkets.add(m.base);
    assetsWithMarkets.add(m.quote);
  }
  return { byPair, assetsWithMarkets };
}

/** A leg that converts `from` into `to`: the market `from/to`, or `to/from` read upside down. */
function legBetween(index: MarketIndex, from: string, to: string): PriceLeg | undefined {
  const direct = index.byPair.get(`${from}/${to}`);
  if (direct !== undefined) return { symbol: direct, inverse: false };
  const inverse = index.byPair.get(`${to}/${from}`);
  if (inverse !== undefined) return { symbol: inverse, inverse: true };
  return undefined;
}

function routeOf(index: MarketIndex, asset: string, reference: string): PriceRoute | undefined {
  if (asset === reference) return { kind: 'reference' };
  const direct = legBetween(index, asset, reference);
  if (direct) return { kind: 'direct', legs: [direct] };
  for (const via of bridgeCurrencies(reference)) {
    if (via === asset) continue;
    const first = legBetween(index, asset, via);
    const second = first && legBetween(index, via, reference);
    if (first && second) return { kind: 'bridge', via, legs: [first, second] };
  }
  return undefined;
}

function describeRoute(route: PriceRoute, reference: string): string {
  if (route.kind === 'reference') return `${reference} (reference)`;
  return route.legs
    .map((leg, i) => (leg.inverse ? `${i === 0 ? '1 ' : ''}÷ ${leg.symbol}` : `${i === 0 ? '' : '× '}${leg.symbol}`))
    .join(' ');
}

/**
 * Decides how each held asset is priced in the reference currency, from the markets alone:
 * 1. the reference currency itself: 1;
 * 2. a direct market `ASSET/REF` (or `REF/ASSET`, inverted);
 * 3. a bridge `ASSET/VIA × VIA/REF` through the first of {@link bridgeCurrencies} whose two markets exist (either
 *    market may be the other way round, e.g. `XYZ/USDT ÷ USDC/USDT` for a USDC reference);
 * 4. an asset `LDxxx` with no market of its own (a Binance Simple Earn flexible token) is priced as `xxx`, by 1-3;
 * 5. otherwise it is unpriced ({@link UnpricedReason.NoRoute}).
 *
 * One route per asset: a route whose last price turns out to be bad leaves the asset unpriced rather than trying
 * another, so that what is fetched is decided here, in one call, and a valuation never mixes sources silently.
 *
 * @param held assets with a non-zero balance (the caller drops zero rows); duplicates are ignored
 * @param reference the reference currency, e.g. "USDT"
 * @param markets the markets the venue lists (only active ones; for a futures venue, the contracts it lists)
 * @returns the routes, the assets without one, and the symbols whose last prices are needed
 */
export function planPrices(held: Iterable<string>, reference: string, markets: Iterable<PricingMarket>): PricePlan {
  const index = indexMarkets(markets);
  const routes: Record<string, PlannedPrice> = {};
  const unpriced: UnpricedAsset[] = [];
  const symbols = new Set<string>();
  for (const asset of new Set(held)) {
    let pricedAs = asset;
    let route = routeOf(index, asset, reference);
    if (!route && asset.startsWith(EARN_PREFIX) && asset.length > EARN_PREFIX.length && !index.assetsWithMarkets.has(asset)) {
      pricedAs = asset.slice(EARN_PREFIX.length);
      route = routeOf(index, pricedAs, reference);
    }
    if (!route) {
      const what = pricedAs === asset ? asset : `${asset} (nor ${pricedAs})`;
      unpriced.push({ asset, reason: UnpricedReason.NoRoute, detail: `no market prices ${what} in ${reference}, directly or through ${bridgeCurrencies(reference).join(', ')}` });
      continue;
    }
    const label = describeRoute(route, reference);
    routes[asset] = { pricedAs, route, label: pricedAs === asset ? label : `${asset} as ${pricedAs}: ${label}` };
    if (route.kind !== 'reference') for (const leg of route.legs) symbols.add(leg.symbol);
  }
  return { reference, routes, unpriced, symbolsToFetch: [...symbols].sort() };
}

/**
 * Prices held assets in the reference currency: {@link planPrices}, then each route's last prices, multiplied (and
 * divided for inverted legs) with decimal.js. A last price that is missing, not a plain decimal string (numbers,
 * exponents and blanks are refused), zero or negative leaves the asset unpriced: never priced at zero.
 *
 * @param held assets with a non-zero balance
 * @param reference the reference currency, e.g. "USDT"
 * @param markets the markets the venue lists
 * @param lastPrices last price by market symbol, as decimal strings (e.g. from a tickers call); extra entries are ignored
 */
export function priceAssets(
  held: Iterable<string>,
  reference: string,
  markets: Iterable<PricingMarket>,
  lastPrices: Readonly<Record<string, unknown>>,
): PricedAssets {
  const plan = planPrices(held, reference, markets);
  const prices: Record<string, DecimalString> = {};
  const routes: Record<string, string> = {};
  const unpriced = [...plan.unpriced];
  for (const [asset, planned] of Object.entries(plan.routes)) {
    const price = evaluate(planned.route, lastPrices);
    if (!price.ok) {
      unpriced.push({ asset, reason: UnpricedReason.NoPrice, detail: price.error });
      continue;
    }
    prices[asset] = toDecimalString(price.value);
    routes[asset] = planned.label;
  }
  return { prices, routes, unpriced };
}

function evaluate(route: PriceRoute, lastPrices: Readonly<Record<string, unknown>>): { ok: true; value: Decimal } | { ok: false; error: string } {
  if (route.kind === 'reference') return { ok: true, value: new Decimal(1) };
  let value = new Decimal(1);
  for (const leg of route.legs) {
    const raw = Object.prototype.hasOwnProperty.call(lastPrices, leg.symbol) ? lastPrices[leg.symbol] : undefined;
    if (raw === undefined || raw === null) return { ok: false, error: `no last price for "${leg.symbol}"` };
    const parsed = parseDecimal(raw, `last price of "${leg.symbol}"`);
    if (!parsed.ok) return { ok: false, error: parsed.error };
    if (!parsed.value.gt(0)) return { ok: false, error: `last price of "${leg.symbol}" is ${JSON.stringify(raw)}, not positive` };
    value = leg.inverse ? value.div(parsed.value) : value.times(parsed.value);
  }
  if (route.legs.some((leg) => leg.inverse)) value = value.toSignificantDigits(INVERTED_PRICE_SIGNIFICANT_DIGITS);
  return { ok: true, value };
}
