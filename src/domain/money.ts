/**
 * Money: a decimal string at every boundary, a {@link Decimal} inside, never a JavaScript number.
 */
import DecimalBase from 'decimal.js';

/**
 * Our own Decimal constructor: 40 significant digits (far beyond any venue's precision), banker's rounding, and
 * exponent notation disabled so that `toString()` never yields "1e-7".
 */
export const Decimal = DecimalBase.clone({
  precision: 40,
  rounding: DecimalBase.ROUND_HALF_EVEN,
  toExpNeg: -9e15,
  toExpPos: 9e15,
});
export type Decimal = DecimalBase;

/** A decimal number written as a string: optional minus sign, digits, optional fraction. No exponent, no spaces. */
export type DecimalString = string;

const DECIMAL_STRING = /^-?(0|[1-9]\d*)(\.\d+)?$/;
const LENIENT_DECIMAL_STRING = /^-?\d+(\.\d+)?$/;

export const ZERO = new Decimal(0);
export const HUNDRED = new Decimal(100);

/** A parse result that carries a precise, human-readable error instead of throwing. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Parses a decimal string such as "9650.00" or "-0.5". Leading zeros ("007") are accepted, since some venues send
 * them; exponents, `NaN`, `Infinity`, blanks, and JavaScript numbers are refused with a message naming `field`.
 */
export function parseDecimal(value: unknown, field: string): Parsed<Decimal> {
  if (typeof value === 'number') {
    return { ok: false, error: `${field} must be a decimal string such as "${Number.isFinite(value) ? String(value) : '0.5'}", got the number ${String(value)}` };
  }
  if (typeof value !== 'string') {
    return { ok: false, error: `${field} must be a decimal string, got ${describe(value)}` };
  }
  if (!LENIENT_DECIMAL_STRING.test(value)) {
    return { ok: false, error: `${field} must be a decimal string such as "9650.00", got ${JSON.stringify(value)}` };
  }
  return { ok: true, value: new Decimal(value) };
}

/** Like {@link parseDecimal} but also refuses negative amounts. */
export function parseNonNegativeDecimal(value: unknown, field: string): Parsed<Decimal> {
  const parsed = parseDecimal(value, field);
  if (parsed.ok && parsed.value.isNegative() && !parsed.value.isZero()) {
    return { ok: false, error: `${field} must not be negative, got ${JSON.stringify(value)}` };
  }
  return parsed;
}

/** True for strings in canonical decimal form (what {@link toDecimalString} produces). */
export function isCanonicalDecimalString(value: string): boolean {
  return DECIMAL_STRING.test(value);
}

/** The one way money leaves a Decimal: plain notation, never an exponent; `places` fixes the fraction digits. */
export function toDecimalString(value: Decimal, places?: number): DecimalString {
  const text = places === undefined ? value.toFixed() : value.toFixed(places);
  // Decimal prints "-0" for negative zero; nobody wants to read that.
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

/** Formats an amount for people: thousands separators, two decimals, e.g. "$9,650.00" or "-$550.00". */
export function formatUsd(value: Decimal): string {
  const fixed = toDecimalString(value.abs(), 2);
  const [whole, fraction] = fixed.split('.');
  const grouped = (whole ?? '0').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${value.isNegative() && !value.isZero() ? '-' : ''}$${grouped}.${fraction ?? '00'}`;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value === 'object' ? 'an object' : `the ${typeof value} ${String(value)}`}`;
}
