/**
 * Balance reports: a bot's full snapshot of one venue (not a delta).
 */
import { z } from 'zod';
import {
  MAX_ASSET_CHARS,
  MAX_BALANCE_ROWS,
  MAX_NONZERO_BALANCES,
  MAX_POSITIONS_PER_REPORT,
  MAX_PRICES_PER_REPORT,
  MAX_SYMBOL_CHARS,
  MAX_VENUE_ID_CHARS,
  CONTROL_CHARACTERS,
} from './limits';
import { Decimal, DecimalString, Parsed } from './money';
import { BotAuth, botAuthSchema } from './trust';
import { boundedArray, decimalString, got, keyedMap, oneOf, rule, strictObject, text, validate, wholeNumber } from './validation';

/** Asset names: upper-case letters and digits, at most {@link MAX_ASSET_CHARS} characters. */
export const ASSET_PATTERN = /^[A-Z0-9]{1,20}$/;
/** What {@link ASSET_PATTERN} means, for messages. */
export const ASSET_RULE = `asset names are 1-${MAX_ASSET_CHARS} upper-case letters and digits, e.g. "BTC"`;

/** An open perpetual position, as a bot or the guard's own valuation sees it. */
export interface PositionReport {
  /** ccxt unified symbol, e.g. "BTC/USDT:USDT". */
  symbol: string;
  side: 'long' | 'short';
  /** Size in contracts (base units for Binance USDⓈ-M), never negative; `side` gives the direction. */
  contracts: DecimalString;
  /** Unrealized profit or loss in the reference currency. */
  unrealizedPnl: DecimalString;
  entryPrice?: DecimalString;
  markPrice?: DecimalString;
}

/**
 * The payload of the `balanceReport` signal and the `reportBalances` update.
 * Money is always a decimal string.
 */
export interface BalanceReport {
  /** A venue id from the account's config, e.g. "binance-spot". */
  venue: string;
  /** Per-venue sequence number, increasing; a duplicate or lower `seq` is ignored and counted. */
  seq: number;
  /** When the bot read the venue (ISO-8601). */
  asOf?: string;
  /**
   * Wallet balances by asset ("USDT": "4000.00"); for a futures venue, the wallet (margin) balance. A report may carry
   * up to {@link MAX_BALANCE_ROWS} rows, zero rows included; the parsed report keeps only the non-zero ones (at most
   * {@link MAX_NONZERO_BALANCES}).
   */
  balances: Record<string, DecimalString>;
  /** Prices in the reference currency by asset; assets without a price are priced by the guard. */
  prices?: Record<string, DecimalString>;
  positions?: PositionReport[];
  /**
   * The bot's signature, required when the account's trust anchor lists bot keys: `{ bot, signature }`, an Ed25519
   * signature of everything else in the report (src/domain/signing.ts `botReportMessage`, docs/signing.md).
   */
  auth?: BotAuth;
}

const SIDES = ['long', 'short'] as const;
/** Longest ISO-8601 timestamp we accept ("2026-01-31T12:00:00.123456789+05:30" is 35). */
const MAX_TIMESTAMP_CHARS = 40;

/** A map of asset → decimal string, keys checked against {@link ASSET_PATTERN}. */
export const assetMap = (value: ReturnType<typeof decimalString>, maxKeys: number) =>
  keyedMap(value, { maxKeys, key: ASSET_PATTERN, keyMessage: ASSET_RULE, example: '{"USDT": "4000.00"}' });

/** Zero rows dropped, then the non-zero rows counted against {@link MAX_NONZERO_BALANCES}. */
export const balancesSchema = assetMap(decimalString({ nonNegative: true }), MAX_BALANCE_ROWS).transform((map, ctx) => {
  const kept: Record<string, DecimalString> = {};
  let count = 0;
  for (const [asset, amount] of Object.entries(map)) {
    if (new Decimal(amount).isZero()) continue;
    kept[asset] = amount;
    count++;
  }
  if (count > MAX_NONZERO_BALANCES) {
    ctx.addIssue({ code: 'custom', message: `must hold at most ${MAX_NONZERO_BALANCES} non-zero balances, got ${count}`, input: map });
  }
  return kept;
});

const isoDateTime = z.iso.datetime({ offset: true });
const timestamp = rule<string>((v) => {
  if (typeof v === 'string' && v.length <= MAX_TIMESTAMP_CHARS && isoDateTime.safeParse(v).success) return undefined;
  return `must be an ISO-8601 timestamp such as "2026-01-31T12:00:00Z", got ${got(v)}`;
});

/** One open perpetual position, as bots and the watcher report it. */
export const positionSchema = strictObject(
  {
    symbol: text({ max: MAX_SYMBOL_CHARS, hint: 'a ccxt symbol such as "BTC/USDT:USDT"', noControl: CONTROL_CHARACTERS }),
    side: oneOf(SIDES),
    contracts: decimalString({ nonNegative: true }),
    unrealizedPnl: decimalString(),
    entryPrice: decimalString({ nonNegative: true }).optional(),
    markPrice: decimalString({ nonNegative: true }).optional(),
  },
  '{"symbol": "BTC/USDT:USDT", "side": "long", "contracts": "0.1", "unrealizedPnl": "-21.50"}',
);

/** The report schema for one account's venue list; built once per distinct list (accounts rarely change theirs). */
function reportSchema(venues: readonly string[]) {
  const list = venues.map((v) => JSON.stringify(v)).join(', ');
  return strictObject(
    {
      venue: rule<string>((v) => {
        if (v === undefined) return 'is required';
        if (typeof v !== 'string') return `must be a venue id (one of ${list}), got ${got(v)}`;
        if (v.length <= MAX_VENUE_ID_CHARS && venues.includes(v)) return undefined;
        return `unknown venue ${got(v)}; this account has ${list}`;
      }),
      seq: wholeNumber(0, Number.MAX_SAFE_INTEGER),
      asOf: timestamp.optional(),
      balances: balancesSchema,
      prices: assetMap(decimalString({ positive: true }), MAX_PRICES_PER_REPORT).optional(),
      positions: boundedArray(positionSchema, { max: MAX_POSITIONS_PER_REPORT, what: 'positions' }).optional(),
      auth: botAuthSchema.optional(),
    },
    '{"venue": "binance-spot", "seq": 1, "balances": {"USDT": "4000.00"}}',
  );
}

const schemas = new Map<string, ReturnType<typeof reportSchema>>();
/** Accounts per worker are few; the cache is emptied rather than grown past this. */
const MAX_CACHED_SCHEMAS = 32;

function schemaFor(venues: readonly string[]): ReturnType<typeof reportSchema> {
  const key = venues.join('\n');
  let schema = schemas.get(key);
  if (!schema) {
    if (schemas.size >= MAX_CACHED_SCHEMAS) schemas.clear();
    schema = reportSchema(venues);
    schemas.set(key, schema);
  }
  return schema;
}

/**
 * Validates a report against the schema and the account's venues, and drops zero-amount balance rows.
 * @param raw the payload as received (from any Temporal client, so anything at all)
 * @param venues the account's configured venue ids
 * @returns the report, or every problem found in one message of at most `MAX_ERROR_CHARS` characters; never throws
 */
export function parseBalanceReport(raw: unknown, venues: readonly string[]): Parsed<BalanceReport> {
  return validate<BalanceReport>(schemaFor(venues), raw, 'report');
}

