/**
 * Portfolio valuation: balances × prices across venues and assets, plus perpetual positions' unrealized P&L,
 * into the reference currency.
 */
import { Decimal, DecimalString, HUNDRED, ZERO, toDecimalString } from './money';
import { PositionReport } from './report';

/** The latest known holdings of one venue, from a bot's report or the guard's own read of the venue. */
export interface VenueHoldings {
  balances: Record<string, DecimalString>;
  prices: Record<string, DecimalString>;
  positions: PositionReport[];
  asOf: string;
  source: 'bot' | 'guard';
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
  /** Assets with a non-zero balance but no known price; the valuation is incomplete while any exist. */
  unpriced: { venue: string; asset: string }[];
  /** Configured venues with no holdings known yet; the valuation is incomplete while any exist. */
  missingVenues: string[];
  complete: boolean;
}

/**
 * Finds an asset's price: the venue's own price first, then the freshest other venue that quotes it.
 * The reference currency is worth exactly 1.
 */
function priceOf(asset: string, venue: string, holdings: Record<string, VenueHoldings | undefined>, reference: string) {
  if (asset === reference) return new Decimal(1);
  const own = holdings[venue]?.prices[asset];
  if (own !== undefined) return new Decimal(own);
  let best: { price: DecimalString; asOf: string } | undefined;
  for (const h of Object.values(holdings)) {
    const price = h?.prices[asset];
    if (price !== undefined && (best === undefined || h!.asOf > best.asOf)) best = { price, asOf: h!.asOf };
  }
  return best ? new Decimal(best.price) : undefined;
}

/**
 * Values the account.
 * @param holdings latest holdings per venue id
 * @param venues the account's venues (a venue missing from `holdings` makes the valuation incomplete)
 * @param capital initial capital (after deposits and withdrawals)
 * @param reference the reference currency, e.g. "USDT"
 * @param at the valuation time (ISO-8601)
 */
export function valuePortfolio(
  holdings: Record<string, VenueHoldings | undefined>,
  venues: readonly string[],
  capital: DecimalString,
  reference: string,
  at: string,
): Valuation {
  let total = ZERO;
  let unrealized = ZERO;
  const perVenue: Record<string, DecimalString> = {};
  const unpriced: Valuation['unpriced'] = [];
  const missingVenues: string[] = [];
  for (const venue of venues) {
    const h = holdings[venue];
    if (!h) {
      missingVenues.push(venue);
      continue;
    }
    let venueValue = ZERO;
    for (const [asset, amount] of Object.entries(h.balances)) {
      const quantity = new Decimal(amount);
      if (quantity.isZero()) continue;
      const price = priceOf(asset, venue, holdings, reference);
      if (price === undefined) unpriced.push({ venue, asset });
      else venueValue = venueValue.plus(quantity.times(price));
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
    unpriced,
    missingVenues,
    complete: unpriced.length === 0 && missingVenues.length === 0,
  };
}
