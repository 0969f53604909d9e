/**
 * Incremental valuation for the streaming watcher: the account's value and breaker level at every price tick,
 * with exactly the figures of {@link valuePortfolio} and the level of {@link lossLevel}, at a few microseconds a tick.
 *
 * Why it can be both fast and exact:
 * - Every input is a finite decimal string, so every value is an integer at a common decimal scale (a BigInt). The
 *   total is kept as an exact sum of per-holding terms; a tick replaces one asset's terms (one product per venue
 *   holding it), so it costs O(venues), not O(assets).
 * - `valuePortfolio` computes with 40-significant-digit decimals, so its total can differ from the exact sum when a
 *   product or a partial sum needs more than 40 digits. {@link LiveValuation.figures} uses the exact sum only when it
 *   can prove that no operation of `valuePortfolio` rounded (every term and every partial sum fits in 40 digits);
 *   otherwise it calls `valuePortfolio` itself on the same holdings and prices.
 * - {@link LiveValuation.check} compares the loss with each threshold by cross-multiplication (no division) and
 *   accepts the answer only when the gap exceeds a proven bound on every rounding `valuePortfolio` and `lossLevel`
 *   could have made (about 10^-36 of the amounts involved). Closer than that (a loss of exactly the threshold, say),
 *   it takes the slow path: `lossLevel` on the figures above. So the level is always the one `lossLevel` gives.
 *
 * Staleness and blind spots are the guard's policy, not this module's: it counts what it is given, as
 * `valuePortfolio` does (an unpriced asset counts as zero; ignored assets and unconfigured venues are left out).
 * Pure: no I/O, no clock; safe to import from workflow code.
 */
import { BreakerLimits, RiskLevel, lossLevel } from './breaker';
import { Decimal, DecimalString, HUNDRED, toDecimalString } from './money';
import { PositionReport } from './report';
import { PriceBook, UnpricedAsset, VenueHoldings, valuePortfolio } from './valuation';

/** What the watcher needs to know at every tick. */
export interface LiveCheck {
  /** False while a configured venue has no holdings yet: the loss is then unknown and the level is "ok". */
  complete: boolean;
  /** `lossLevel(lossPct, limits)` on the figures of {@link LiveValuation.figures}; "ok" when incomplete. */
  level: RiskLevel;
}

/** The exact figures, as the guard would compute them with `valuePortfolio`. */
export interface LiveFigures {
  complete: boolean;
  /** `valuePortfolio(...).totalValue`; null while incomplete (as the guard's PortfolioUpdate carries it). */
  totalValue: DecimalString | null;
  /** `valuePortfolio(...).lossPct` (full precision, same rounding); null while incomplete. */
  lossPct: DecimalString | null;
  /** Configured venues with no holdings yet, in configuration order. */
  missingVenues: string[];
  /** Held assets with no price, counted as zero: equal to `valuePortfolio(...).unpriced`. */
  unpriced: UnpricedAsset[];
}

/** Holdings of one venue as the watcher learns them. */
export interface LiveHoldings {
  /** Balances by asset (zero rows may be present; they count for nothing). */
  balances: Record<string, DecimalString>;
  positions: readonly PositionReport[];
}

export interface LiveValuationOptions {
  /** The account's venues, in configuration order. */
  venues: readonly string[];
  /** Capital the loss is measured against; must be positive (as the account config requires). */
  initialCapital: DecimalString;
  /** The reference currency, worth exactly 1 whatever price it is given. */
  reference: string;
  /** The breaker's warning and trip levels (only the percentages are read). */
  limits: BreakerLimits;
  /** Assets left out of the valuation altogether. @default [] */
  ignoreAssets?: readonly string[];
}

/** An exact decimal: `m / 10^d`, with `d` minimal (no trailing zeros in the fraction). */
interface Fixed {
  m: bigint;
  d: number;
}

/** One counted row of a venue's holdings: an asset balance to price, the reference balance, or a position's P&L. */
interface Row {
  venue: string;
  /** The asset to price; null for the reference balance and for positions (their value is fixed). */
  asset: string | null;
  amount: DecimalString;
  q: Fixed;
  /** This row's current value at the common scale. */
  term: bigint;
}

interface VenueState {
  /** As given (copied), for the slow path: `valuePortfolio` then sees the same rows in the same order. */
  holdings: VenueHoldings;
  rows: Row[];
}

const PLAIN = /^(-?)(\d+)(?:\.(\d+))?$/;
/** `valuePortfolio` computes with 40 significant digits (src/domain/money.ts). */
const PRECISION = 40;
/** The initial common scale: 18 decimals of quantity × 18 of price without a rescale. */
const INITIAL_SCALE = 36;
/** A fixed clock for the slow path: staleness plays no part in the total, so any time does. */
const EPOCH = '1970-01-01T00:00:00.000Z';
const NO_STALENESS = { dustValue: '0', staleAfterSeconds: Number.MAX_SAFE_INTEGER };

const POW10: bigint[] = [1n];
function pow10(n: number): bigint {
  while (POW10.length <= n) POW10.push(POW10[POW10.length - 1]! * 10n);
  return POW10[n]!;
}
const abs = (x: bigint) => (x < 0n ? -x : x);

/** Parses a decimal string exactly. Plain notation is the fast path; anything else `new Decimal` accepts goes through it. */
function parseFixed(text: string, field: string): Fixed {
  const match = PLAIN.exec(text);
  if (match === null) {
    let d: Decimal;
    try {
      d = new Decimal(text);
    } catch {
      throw new RangeError(`${field} must be a decimal string, got ${JSON.stringify(text)}`);
    }
    if (!d.isFinite()) throw new RangeError(`${field} must be finite, got ${JSON.stringify(text)}`);
    return parseFixed(d.toFixed(), field);
  }
  let fraction = match[3] ?? '';
  let end = fraction.length;
  while (end > 0 && fraction.charCodeAt(end - 1) === 48) end--;
  if (end !== fraction.length) fraction = fraction.slice(0, end);
  const m = BigInt(match[2]! + fraction);
  return { m: match[1] === '-' ? -m : m, d: fraction.length };
}

/** Writes `value / 10^scale` in canonical plain notation, as `toDecimalString` would. */
function formatScaled(value: bigint, scale: number): DecimalString {
  const negative = value < 0n;
  let digits = (negative ? -value : value).toString();
  if (scale > 0) {
    if (digits.length <= scale) digits = '0'.repeat(scale - digits.length + 1) + digits;
    let end = digits.length;
    const point = digits.length - scale;
    while (end > point && digits.charCodeAt(end - 1) === 48) end--;
    digits = end === point ? digits.slice(0, point) : `${digits.slice(0, point)}.${digits.slice(point, end)}`;
  }
  return negative && value !== 0n ? `-${digits}` : digits;
}

const RANK_ORDER = ['breach', 'warning'] as const;

/**
 * A stateful, pure, incremental valuation of one account: holdings per venue and the freshest price per asset in,
 * the breaker level (cheap, every tick) and the exact figures (on demand) out.
 */
export class LiveValuation {
  private readonly venues: readonly string[];
  private readonly reference: string;
  private readonly ignore: ReadonlySet<string>;
  private readonly capitalText: DecimalString;
  private readonly capitalFixed: Fixed;
  private readonly limits: BreakerLimits;
  private readonly limitFixed: Record<(typeof RANK_ORDER)[number], Fixed>;

  private readonly state = new Map<string, VenueState>();
  private readonly priceText = new Map<string, DecimalString>();
  private readonly priceFixed = new Map<string, Fixed>();
  /** Priced rows by asset, across venues. */
  private readonly byAsset = new Map<string, Row[]>();

  /** Common scale: every term is value × 10^scale, an integer. */
  private scale = INITIAL_SCALE;
  /** Exact sum of the terms. */
  private total = 0n;
  /** Sum of the terms' absolute values: bounds every partial sum `valuePortfolio` forms. */
  private absTotal = 0n;
  private rowCount = 0;
  private missing = 0;

  // Derived from the scale, recomputed by rescale().
  private capitalScaled = 0n;
  /** 100 × 10^limitScale. */
  private lossFactor = 0n;
  private limitScale = 0;
  private limitTimesCapital: Record<(typeof RANK_ORDER)[number], bigint> = { breach: 0n, warning: 0n };

  /**
   * How often each path answered (tests assert that both are exercised, so that neither is tested vacuously).
   * Fast: the level decided by cross-multiplication, the figures from the exact sum. Reference: `valuePortfolio`.
   */
  readonly paths = { fastLevel: 0, exactLevel: 0, exactFigures: 0, referenceFigures: 0 };

  private cachedCheck: LiveCheck | null = null;
  private cachedFigures: LiveFigures | null = null;

  /**
   * @param o the account's venues, capital, reference currency, breaker limits and ignored assets
   * @throws RangeError when the capital is not positive, a venue is listed twice, or a figure is not a decimal string
   */
  constructor(o: LiveValuationOptions) {
    this.venues = [...o.venues];
    this.reference = o.reference;
    this.ignore = new Set(o.ignoreAssets ?? []);
    this.capitalText = o.initialCapital;
    this.capitalFixed = parseFixed(o.initialCapital, 'initialCapital');
    if (this.capitalFixed.m <= 0n) throw new RangeError(`initialCapital must be positive, got ${JSON.stringify(o.initialCapital)}`);
    this.limits = { ...o.limits };
    this.limitFixed = { breach: parseFixed(o.limits.thresholdPct, 'thresholdPct'), warning: parseFixed(o.limits.warningPct, 'warningPct') };
    // valuePortfolio would count a venue listed twice twice; the account config refuses that, and so does this.
    if (new Set(this.venues).size !== this.venues.length) throw new RangeError(`venues must be distinct, got ${JSON.stringify(this.venues)}`);
    this.missing = this.venues.length;
    this.rescale(Math.max(INITIAL_SCALE, this.capitalFixed.d));
  }

  /**
   * Replaces one venue's holdings (a bot's report or the guard's read).
   * @param venue a configured venue; holdings of any other venue are not counted (as `valuePortfolio` does)
   * @param h the venue's balances and open positions; copied, so the caller may reuse the objects
   * @returns false when the venue is not configured (nothing changed)
   * @throws RangeError when an amount is not a decimal string
   */
  setHoldings(venue: string, h: LiveHoldings): boolean {
    if (!this.venues.includes(venue)) return false;
    const rows: Row[] = [];
    let needScale = this.scale;
    const balances: Record<string, DecimalString> = { ...h.balances };
    for (const [asset, amount] of Object.entries(balances)) {
      if (this.ignore.has(asset)) continue;
      const q = parseFixed(amount, `${venue} balance of ${asset}`);
      if (q.m === 0n) continue;
      const priced = asset !== this.reference;
      rows.push({ venue, asset: priced ? asset : null, amount, q, term: 0n });
      needScale = Math.max(needScale, q.d + (priced ? (this.priceFixed.get(asset)?.d ?? 0) : 0));
    }
    for (const position of h.positions) {
      const q = parseFixed(position.unrealizedPnl, `${venue} unrealized P&L of ${position.symbol}`);
      rows.push({ venue, asset: null, amount: position.unrealizedPnl, q, term: 0n });
      needScale = Math.max(needScale, q.d);
    }
    // Parsed everything before changing anything: a bad amount leaves the valuation as it was.
    const old = this.state.get(venue);
    if (old) {
      for (const row of old.rows) this.removeRow(row);
    } else {
      this.missing--;
    }
    const holdings: VenueHoldings = { balances, positions: [...h.positions], asOf: EPOCH, receivedAt: EPOCH, source: 'guard' };
    this.state.set(venue, { holdings, rows });
    if (needScale > this.scale) {
      this.rescale(needScale); // recomputes every term, the new rows' included
    } else {
      for (const row of rows) this.addRow(row);
    }
    this.cachedCheck = null;
    this.cachedFigures = null;
    return true;
  }

  /**
   * Records an asset's freshest price; only the rows holding that asset are revalued.
   * @param asset the asset, e.g. "BTC" (the reference currency's price is kept but never used: it is worth 1)
   * @param price its price in the reference currency
   * @returns false when the price is unchanged (equal as a decimal), true otherwise
   * @throws RangeError when the price is not a decimal string
   */
  setPrice(asset: string, price: DecimalString): boolean {
    const previousText = this.priceText.get(asset);
    if (previousText === price) return false;
    const p = parseFixed(price, `price of ${asset}`);
    const previous = this.priceFixed.get(asset);
    if (previous !== undefined && previous.m === p.m && previous.d === p.d) return false;
    this.priceText.set(asset, price);
    this.priceFixed.set(asset, p);
    const rows = this.byAsset.get(asset);
    if (rows !== undefined) {
      let needScale = this.scale;
      for (const row of rows) if (row.q.d + p.d > needScale) needScale = row.q.d + p.d;
      if (needScale > this.scale) {
        this.rescale(needScale);
      } else {
        const factor = p.m;
        for (const row of rows) {
          const term = row.q.m * factor * pow10(this.scale - row.q.d - p.d);
          this.total += term - row.term;
          this.absTotal += abs(term) - abs(row.term);
          row.term = term;
        }
      }
    }
    this.cachedCheck = null;
    this.cachedFigures = null;
    return true;
  }

  /**
   * The breaker level of the loss, cheap enough for every tick: `lossLevel(figures().lossPct, limits)`, or "ok"
   * while a venue is missing (a loss that cannot be known clears and trips nothing, as in the breaker).
   * @returns whether every venue is known, and the level
   */
  check(): LiveCheck {
    if (this.cachedCheck !== null) return this.cachedCheck;
    let result: LiveCheck;
    if (this.missing > 0) {
      result = { complete: false, level: 'ok' };
    } else {
      const fast = this.fastLevel();
      if (fast !== null) this.paths.fastLevel++;
      else this.paths.exactLevel++;
      result = { complete: true, level: fast ?? this.slowLevel() };
    }
    this.cachedCheck = result;
    return result;
  }

  /**
   * The exact figures, equal to what `valuePortfolio` computes for the same holdings and prices (same digits, same
   * rounding of the loss percentage). Costs a division; call it when a signal is to be sent, not at every tick.
   * @returns completeness, total value, loss percentage, missing venues and unpriced assets
   */
  figures(): LiveFigures {
    if (this.cachedFigures !== null) return this.cachedFigures;
    const missingVenues = this.venues.filter((v) => !this.state.has(v));
    const unpriced: UnpricedAsset[] = [];
    let maxDecimals = 0;
    for (const venue of this.venues) {
      const s = this.state.get(venue);
      if (s === undefined) continue;
      for (const row of s.rows) {
        if (row.asset === null) {
          if (row.q.d > maxDecimals) maxDecimals = row.q.d;
          continue;
        }
        const p = this.priceFixed.get(row.asset);
        if (p === undefined) unpriced.push({ venue, asset: row.asset, amount: row.amount });
        else if (row.q.d + p.d > maxDecimals) maxDecimals = row.q.d + p.d;
      }
    }
    let result: LiveFigures;
    if (missingVenues.length > 0) {
      result = { complete: false, totalValue: null, lossPct: null, missingVenues, unpriced };
    } else if (this.absTotal < pow10(PRECISION + this.scale - maxDecimals)) {
      // Every term is a multiple of 10^(scale − maxDecimals) and every partial sum is at most absTotal, so each has
      // at most 40 significant digits: no product or sum of valuePortfolio rounded, and its total is the exact sum.
      const totalValue = formatScaled(this.total, this.scale);
      const capital = new Decimal(this.capitalText);
      const lossPct = toDecimalString(capital.minus(new Decimal(totalValue)).div(capital).times(HUNDRED));
      result = { complete: true, totalValue, lossPct, missingVenues, unpriced };
      this.paths.exactFigures++;
    } else {
      const v = this.valuedByReference();
      result = { complete: true, totalValue: v.totalValue, lossPct: v.lossPct, missingVenues, unpriced };
      this.paths.referenceFigures++;
    }
    this.cachedFigures = result;
    return result;
  }

  /**
   * The level when the exact loss is provably on one side of each threshold, whatever `valuePortfolio` rounded.
   *
   * With C the capital, T the exact total and L a threshold, valuePortfolio's loss is
   * 100·(C − T − e)(1 + δ₁)(1 + δ₂)/C, with |δ| ≤ 5·10⁻⁴⁰ per rounding (40 digits, half-even) and |e| ≤ n·5·10⁻⁴⁰·A
   * for n roundings of sums and products none of which exceeds A (the sum of |terms|, times 1 + 10⁻³⁸). Its side of L
   * is the exact side when |100(C − T) − L·C| > 10⁻³⁶·(n·A + |C − T|), a bound with two orders of magnitude to spare.
   * @returns the level, or null when too close to a threshold to decide without the exact figures
   */
  private fastLevel(): RiskLevel | null {
    const d = this.capitalScaled - this.total;
    const scaledLoss = d * this.lossFactor;
    const bound = (BigInt(3 * this.rowCount + this.venues.length + 4) * this.absTotal + abs(d)) * pow10(this.limitScale);
    const unit = pow10(36);
    for (const level of RANK_ORDER) {
      const gap = scaledLoss - this.limitTimesCapital[level];
      if (abs(gap) * unit <= bound) return null;
      if (gap > 0n) return level;
    }
    return 'ok';
  }

  private slowLevel(): RiskLevel {
    const { lossPct } = this.figures();
    return lossPct === null ? 'ok' : lossLevel(lossPct, this.limits);
  }

  /** `valuePortfolio` itself, on the same holdings and prices: the reference for figures that rounded. */
  private valuedByReference() {
    const book: PriceBook = {};
    for (const [asset, price] of this.priceText) book[asset] = { price, at: EPOCH, venue: '' };
    const holdings: Record<string, VenueHoldings> = {};
    for (const [venue, s] of this.state) holdings[venue] = s.holdings;
    return valuePortfolio(holdings, this.venues, book, this.capitalText, this.reference, EPOCH, { ...NO_STALENESS, ignoreAssets: [...this.ignore] });
  }

  private termOf(row: Row): bigint {
    if (row.asset === null) return row.q.m * pow10(this.scale - row.q.d);
    const p = this.priceFixed.get(row.asset);
    return p === undefined ? 0n : row.q.m * p.m * pow10(this.scale - row.q.d - p.d);
  }

  private addRow(row: Row): void {
    row.term = this.termOf(row);
    this.total += row.term;
    this.absTotal += abs(row.term);
    this.rowCount++;
    if (row.asset !== null) {
      const list = this.byAsset.get(row.asset);
      if (list === undefined) this.byAsset.set(row.asset, [row]);
      else list.push(row);
    }
  }

  private removeRow(row: Row): void {
    this.total -= row.term;
    this.absTotal -= abs(row.term);
    this.rowCount--;
    if (row.asset !== null) {
      const list = this.byAsset.get(row.asset)!;
      list.splice(list.indexOf(row), 1);
      if (list.length === 0) this.byAsset.delete(row.asset);
    }
  }

  /** Moves to a finer common scale (an input with more decimals than the current one) and recomputes every term. */
  private rescale(scale: number): void {
    this.scale = scale;
    this.capitalScaled = this.capitalFixed.m * pow10(scale - this.capitalFixed.d);
    this.limitScale = Math.max(this.limitFixed.breach.d, this.limitFixed.warning.d);
    this.lossFactor = 100n * pow10(this.limitScale);
    for (const level of RANK_ORDER) {
      const l = this.limitFixed[level];
      this.limitTimesCapital[level] = l.m * pow10(this.limitScale - l.d) * this.capitalScaled;
    }
    this.total = 0n;
    this.absTotal = 0n;
    this.rowCount = 0;
    this.byAsset.clear();
    for (const s of this.state.values()) for (const row of s.rows) this.addRow(row);
  }
}
