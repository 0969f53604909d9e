/**
 * Size caps on everything that reaches a guard from outside (any Temporal client can send anything). Each cap is
 * enforced before the value enters the guard's state or an event, so that the state carried across continue-as-new
 * stays far below Temporal's 2 MB payload limit (the README states the worst case, and a unit test measures it).
 */

/** Venues per account. */
export const MAX_VENUES_PER_ACCOUNT = 8;
/** Venue ids: lower-case letters, digits, "_" and "-". */
export const MAX_VENUE_ID_CHARS = 40;
/** Asset names such as "BTC" or "LDUSDT". */
export const MAX_ASSET_CHARS = 20;
/** ccxt unified symbols such as "BTC/USDT:USDT". */
export const MAX_SYMBOL_CHARS = 64;
/** A decimal string, sign and point included (40 significant digits is what the core computes with). */
export const MAX_DECIMAL_CHARS = 48;
/**
 * Rows in a report's `balances` map, zero rows included: Binance's full balance list has several hundred rows, most
 * of them zero. Zero rows are dropped before the report is stored.
 */
export const MAX_BALANCE_ROWS = 2_000;
/** Non-zero balances in one report (what is stored). */
export const MAX_NONZERO_BALANCES = 200;
/** Entries in a report's `prices` map. */
export const MAX_PRICES_PER_REPORT = 200;
/** Open positions in one report. */
export const MAX_POSITIONS_PER_REPORT = 100;
/** Operator names (who did it). */
export const MAX_OPERATOR_CHARS = 64;
/** Free-text reasons. */
export const MAX_REASON_CHARS = 500;
/** Error texts (validation errors, venue errors) as recorded in events and state. */
export const MAX_ERROR_CHARS = 400;
/** Assets an account may list in `blindPolicy.ignoreAssets`. */
export const MAX_IGNORED_ASSETS = 100;
/** Recent events kept in state (the `events` query), by count and by serialized size. */
export const MAX_RECENT_EVENTS = 200;
export const MAX_RECENT_EVENTS_BYTES = 64 * 1024;
/** Undelivered alerts carried in state; older ones are dropped (and counted) beyond this. */
export const MAX_PENDING_ALERTS = 50;

/** Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: refused in operator fields. */
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * Shortens a text from outside for an error message or an event: at most `max` characters, with the original length
 * said when cut, so that a 2 MB string is never echoed back into history.
 */
export function clip(text: string, max = 64): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}…(${text.length} characters)`;
}
