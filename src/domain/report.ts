/**
 * Balance reports: a bot's full snapshot of one venue (not a delta).
 */
import { z } from 'zod';
import { DecimalString, Parsed } from './money';
import { decimalString, formatIssues } from './validation';

export const ASSET_PATTERN = /^[A-Z0-9]{1,20}$/;
/** More assets than any real account holds on one venue; protects the workflow from giant payloads. */
export const MAX_ASSETS_PER_REPORT = 1_000;
export const MAX_POSITIONS_PER_REPORT = 500;

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
  /** Wallet balances by asset ("USDT": "4000.00"); for a futures venue, the wallet (margin) balance. */
  balances: Record<string, DecimalString>;
  /** Prices in the reference currency by asset; assets without a price are priced by the guard. */
  prices?: Record<string, DecimalString>;
  positions?: PositionReport[];
}

const assetMap = (value: ReturnType<typeof decimalString>) =>
  z.record(z.string(), value).superRefine((map, ctx) => {
    const assets = Object.keys(map);
    if (assets.length > MAX_ASSETS_PER_REPORT) ctx.addIssue({ code: 'custom', message: `must hold at most ${MAX_ASSETS_PER_REPORT} assets` });
    for (const asset of assets.filter((a) => !ASSET_PATTERN.test(a)).slice(0, 5)) {
      ctx.addIssue({ code: 'custom', path: [asset], message: 'asset names are upper-case letters and digits, e.g. "BTC"' });
    }
  });

const positionSchema = z
  .object({
    symbol: z.string().min(1).max(64),
    side: z.enum(['long', 'short']),
    contracts: decimalString({ nonNegative: true }),
    unrealizedPnl: decimalString(),
    entryPrice: decimalString({ nonNegative: true }).optional(),
    markPrice: decimalString({ nonNegative: true }).optional(),
  })
  .strict();

const reportSchema = z
  .object({
    venue: z.string().min(1, 'is required'),
    seq: z.int('must be a whole number').min(0).max(Number.MAX_SAFE_INTEGER),
    asOf: z.iso.datetime({ offset: true, error: 'must be an ISO-8601 timestamp such as "2026-01-31T12:00:00Z"' }).optional(),
    balances: assetMap(decimalString({ nonNegative: true })),
    prices: assetMap(decimalString({ positive: true })).optional(),
    positions: z.array(positionSchema).max(MAX_POSITIONS_PER_REPORT).optional(),
  })
  .strict();

/**
 * Validates a report against the schema and the account's venues.
 * @param raw the payload as received (from any Temporal client, so anything at all)
 * @param venues the account's configured venue ids
 */
export function parseBalanceReport(raw: unknown, venues: readonly string[]): Parsed<BalanceReport> {
  const result = reportSchema.safeParse(raw);
  if (!result.success) return { ok: false, error: formatIssues(result.error, 'report').join('; ') };
  if (!venues.includes(result.data.venue)) {
    return { ok: false, error: `report.venue: unknown venue "${result.data.venue}"; this account has ${venues.map((v) => `"${v}"`).join(', ')}` };
  }
  return { ok: true, value: result.data };
}
