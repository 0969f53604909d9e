/**
 * Portfolio valuation: balances × prices across venues and assets, plus perpetual positions' unrealized P&L,
 * into the reference currency, together with everything the valuation could not see with fresh data (its blind
 * spots). Deciding what to do about blind spots is the guard's policy (src/domain/guard.ts), not this module's.
 */
import { Decimal, DecimalString, HUNDRED, ZERO, toDecimalString } from './money';
import { PositionReport } from './report';

/** The latest known holdings of one venue, from a bot's report or the guard's own read of the venue. */
export interface VenueHoldings {
  /** Non-zero balances only. */
  balances: Record<string, DecimalString>;
  positions: PositionReport[];
  /** When the source says it read the venue (a bot's `asOf`, or the time of the guard's read). Informational. */
  asOf: string;
  /** When the guard received it, on the workflow clock: staleness is measured from this, never from a client's clock. */
  receivedAt: string;
  source: 'bot' | 'guard' | 'watcher';
}

/** The freshest known price of an asset in the reference currency, and where and when it was learnt. */
export interface PriceQuote {
  price: DecimalString;
  /** When the guard received it (workflow clock). */
  at: string;
  /** The venue whose report or read carried it. */
  venue: string;
}

/** Asset → freshest quote. */
export type PriceBook = Record<string, PriceQuote>;

/** What the valuation needs of the account's blind-spot policy. */
export interface ValuationPolicy {
  /** An asset priced only from an old quote and worth less than this is dust: counted, but not a blind spot. */
  dustValue: DecimalString;
  /** Holdings and prices received longer ago than this are stale. */
  staleAfterSeconds: number;
  /** Assets left out of the valuation altogether. */
  ignoreAssets: readonly string[];
}

/** An asset valued with a stale price. */
export interface StalePrice {
  venue: string;
  asset: string;
  price: DecimalString;
  pricedAt: string;
  /** Its value at that price. */
  value: DecimalString;
}

/** An asset held with no price ever known: counted as zero, which can only overstate a loss, never hide one. */
export interface UnpricedAsset {
  venue: string;
  asset: string;
  amount: DecimalString;
}

/** A complete or partial valuation of the account; every amount in the reference currency. */
export interface Valuation {
  at: string;
  /** Sum of every venue's value. */
  totalValue: DecimalString;
  /** Capital the P&L is measured against. */
  capital: DecimalString;
  /** totalValue − capital. */
  pnl: DecimalString;
  /** Unrealized P&L of open perpetual positions (already inside totalValue). */
  unrealizedPnl: DecimalString;
  /** pnl − unrealizedPnl: what has been realized (fees and funding included) since the capital was set. */
  realizedPnl: DecimalString;
  /** Loss as a percentage of capital; negative when the account is up. Full precision. */
  lossPct: DecimalString;
  perVenue: Record<string, DecimalString>;
  /** Configured venues with no holdings known yet: the total means nothing while any exist. */
  missingVenues: string[];
  /** Venues whose holdings are older than the policy allows (valued as last known). */
  staleVenues: { venue: string; receivedAt: string }[];
  /** Assets valued at a stale price, worth at least the dust value. */
  stalePrices: StalePrice[];
  /** Assets with no known price, counted as zero. */
  unpriced: UnpricedAsset[];
  /** True when no venue is missing: the total can be compared with the capital. */
  complete: boolean;
}

const ageMs = (from: string, to: string) => Date.parse(to) - Date.parse(from);

/**
 * Values the account.
 * @param holdings latest holdings per venue id
 * @param venues the account's venues (a venue missing from `holdings` makes the valuation incomplete)
 * @param prices the freshest known price of each asset
 * @param capital initial capital (after deposits and withdrawals)
 * @param reference the reference currency, e.g. "USDT", worth exactly 1
 * @param at the valuation time (ISO-8601, workflow clock)
 */
export function valuePortfolio(
  holdings: Record<string, VenueHoldings | undefined>,
  venues: readonly string[],
  prices: PriceBook,
  capital: DecimalString,
  reference: string,
  at: string,
  policy: ValuationPolicy,
): Valuation {
  const staleMs = policy.staleAfterSeconds * 1000;
  const dust = new Decimal(policy.dustValue);
  let total = ZERO;
  let unrealized = ZERO;
  const perVenue: Record<string, DecimalString> = {};
  const missingVenues: string[] = [];
  const staleVenues: Valuation['staleVenues'] = [];
  const stalePrices: StalePrice[] = [];
  const unpriced: UnpricedAsset[] = [];
  for (const venue of venues) {
    const h = holdings[venue];
    if (!h) {
      missingVenues.push(venue);
      continue;
    }
    if (ageMs(h.receivedAt, at) > staleMs) staleVenues.push({ venue, receivedAt: h.receivedAt });
    let venueValue = ZERO;
    for (const [asset, amount] of Object.entries(h.balances)) {
      if (policy.ignoreAssets.includes(asset)) continue;
      const quantity = new Decimal(amount);
      if (quantity.isZero()) continue;
      if (asset === reference) {
        venueValue = venueValue.plus(quantity);
        continue;
      }
      const quote = prices[asset];
      if (quote === undefined) {
        unpriced.push({ venue, asset, amount });
        continue;
      }
      const value = quantity.times(quote.price);
      venueValue = venueValue.plus(value);
      if (ageMs(quote.at, at) > staleMs && value.gte(dust)) {
        stalePrices.push({ venue, asset, price: quote.price, pricedAt: quote.at, value: toDecimalString(value) });
      }
    }
    for (const position of h.positions) {
      const pnl = new Decimal(position.unrealizedPnl);
      venueValue = venueValue.plus(pnl);
      unrealized = unrealized.plus(pnl);
    }
    perVenue[venue] = toDecimalString(venueValue);
    total = total.plus(venueValue);
  }
  const capitalD = new Decimal(capital);
  const pnl = total.minus(capitalD);
  return {
    at,
    totalValue: toDecimalString(total),
    capital: toDecimalString(capitalD),
    pnl: toDecimalString(pnl),
    unrealizedPnl: toDecimalString(unrealized),
    realizedPnl: toDecimalString(pnl.minus(unrealized)),
    lossPct: toDecimalString(capitalD.minus(total).div(capitalD).times(HUNDRED)),
    perVenue,
    missingVenues,
    staleVenues,
    stalePrices,
    unpriced,
    complete: missingVenues.length === 0,
  };
}

/** One line per blind spot, for events, alerts and the `state` query. Empty when the valuation sees everything. */
export function describeBlindSpots(v: Valuation, at: string): string[] {
  const secs = (from: string) => `${Math.max(0, Math.round(ageMs(from, at) / 1000))} s`;
  return [
    ...v.missingVenues.map((venue) => `${venue}: never valued`),
    ...v.staleVenues.map((s) => `${s.venue}: holdings ${secs(s.receivedAt)} old`),
    ...v.stalePrices.map((p) => `${p.venue}: ${p.asset} (worth ${p.value}) priced ${secs(p.pricedAt)} ago`),
  ];
}
