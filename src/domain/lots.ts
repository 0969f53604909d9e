/**
 * Splitting a position close into orders the venue accepts. Pure: no I/O, no ccxt, decimals only.
 *
 * Binance refuses a MARKET order above the symbol's MARKET_LOT_SIZE `maxQty` (-4005 "Quantity greater than max
 * quantity."), below its `minQty` (-4004 "Quantity less than min quantity.") and off its `stepSize` (-4023 / -1111):
 * https://developers.binance.com/docs/derivatives/usds-margined-futures/common-definition ("Filters": LOT_SIZE,
 * MARKET_LOT_SIZE) and .../error-code. One order for a large position is refused at every sweep, so a close is split
 * into lots of at most `maxQty`, each rounded DOWN to the step, together never more than the position.
 */
import { Decimal, ZERO } from './money';

/** The quantity rules of one symbol for one order type (Binance's LOT_SIZE or MARKET_LOT_SIZE filter). */
export interface LotFilter {
  minQty: Decimal;
  maxQty: Decimal;
  /** Positive: every quantity must be a multiple of it. */
  stepSize: Decimal;
}

export interface LotSplit {
  /** Order quantities, largest first, each a multiple of `stepSize` within [minQty, maxQty]. */
  lots: Decimal[];
  /**
   * What no order can close: the part below one step, or a whole size (rounded to the step) below `minQty`.
   * The venue refuses any order for it, so it is left on the book and reported, never retried in a silent loop.
   */
  dust: Decimal;
  /** What is left for a later pass because of `maxLots` (closable, just not in this pass). */
  deferred: Decimal;
}

/**
 * Most orders one close of one position sends. A filter with a tiny `maxQty` (a bad exchangeInfo, a coin with a
 * huge supply) would otherwise make millions of orders; the rest is closed by the next pass, which re-reads the size.
 */
export const DEFAULT_MAX_LOTS = 100;

/** `quantity` rounded down to a multiple of `step` (toward zero). */
export function roundDownToStep(quantity: Decimal, step: Decimal): Decimal {
  if (!step.gt(0)) throw new RangeError(`stepSize must be positive, got ${step.toFixed()}`);
  return quantity.div(step).floor().times(step);
}

/** `quantity` rounded up to a multiple of `step`. */
function roundUpToStep(quantity: Decimal, step: Decimal): Decimal {
  return quantity.div(step).ceil().times(step);
}

/**
 * Splits the close of a position of `size` (its absolute amount) into lots the filter allows.
 *
 * - The size is rounded down to the step first; what falls below one step is dust.
 * - Full lots of `maxQty` (itself rounded down to the step) come first, then the rest.
 * - A rest below `minQty` after at least one full lot is not left behind: the last full lot gives it enough to reach
 *   `minQty` (both stay within the filter whenever `maxQty ≥ 2 × minQty`, true of every Binance symbol); otherwise
 *   it is dust.
 * - A size whose rounded amount is below `minQty` cannot be closed by any order: all of it is dust.
 *
 * Invariants: `sum(lots) + dust + deferred = size`; every lot is a multiple of `stepSize` within [minQty, maxQty];
 * `sum(lots) ≤ size` (a close never flips a position).
 * @param size the position's absolute size, ≥ 0
 * @param maxLots at most this many lots; the rest is `deferred` @default DEFAULT_MAX_LOTS
 */
export function splitIntoLots(size: Decimal, filter: LotFilter, maxLots = DEFAULT_MAX_LOTS): LotSplit {
  const { stepSize: step } = filter;
  if (size.isNegative()) throw new RangeError(`size must not be negative, got ${size.toFixed()}`);
  if (!step.gt(0)) throw new RangeError(`stepSize must be positive, got ${step.toFixed()}`);
  if (filter.minQty.isNegative()) throw new RangeError(`minQty must not be negative, got ${filter.minQty.toFixed()}`);
  if (!Number.isInteger(maxLots) || maxLots < 1) throw new RangeError(`maxLots must be a positive integer, got ${maxLots}`);
  // The smallest and largest quantities an order can actually carry: multiples of the step within the filter.
  const min = roundUpToStep(Decimal.max(filter.minQty, step), step);
  const max = roundDownToStep(filter.maxQty, step);
  if (max.lt(min)) throw new RangeError(`maxQty ${filter.maxQty.toFixed()} leaves no quantity at or above minQty ${filter.minQty.toFixed()}`);

  const closable = roundDownToStep(size, step);
  if (closable.lt(min)) return { lots: [], dust: size, deferred: ZERO };

  // Every quantity to send, in order, before the cap: full lots, then the rest.
  const fullLots = closable.div(max).floor();
  const planned: Decimal[] = [];
  const rest = closable.minus(fullLots.times(max));
  let dust = size.minus(closable);
  if (rest.gt(0) && rest.lt(min)) {
    // `closable ≥ min > rest` means at least one full lot exists: it lends the rest enough to reach minQty.
    const last = max.minus(min.minus(rest));
    if (last.gte(min)) {
      pushLots(planned, max, fullLots.minus(1), maxLots);
      planned.push(last, min);
    } else {
      pushLots(planned, max, fullLots, maxLots);
      dust = dust.plus(rest);
    }
  } else {
    pushLots(planned, max, fullLots, maxLots);
    if (rest.gt(0)) planned.push(rest);
  }
  const lots = planned.slice(0, maxLots);
  const sent = lots.reduce((sum, lot) => sum.plus(lot), ZERO);
  return { lots, dust, deferred: size.minus(dust).minus(sent) };
}

/** Appends `count` copies of `lot`, but never more than `cap` entries in all (the rest is deferred anyway). */
function pushLots(into: Decimal[], lot: Decimal, count: Decimal, cap: number): void {
  for (let i = 0; count.gt(i) && into.length <= cap; i += 1) into.push(lot);
}
