/**
 * Account configuration: what a guard protects and at which loss levels it acts.
 */
import { z } from 'zod';
import { Decimal, DecimalString, Parsed } from './money';
import { decimalString, formatIssues } from './validation';

/** Reference currencies the guard can value an account in (ccxt tickers are quoted against them). */
export const REFERENCE_CURRENCIES = ['USDT', 'USDC'] as const;
export type ReferenceCurrency = (typeof REFERENCE_CURRENCIES)[number];

export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const VENUE_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,39}$/;

export const DEFAULT_WARNING_PCT = '3';
export const DEFAULT_THRESHOLD_PCT = '5';
export const DEFAULT_VALUATION_INTERVAL_SECONDS = 60;
export const DEFAULT_SWEEP_INTERVAL_SECONDS = 30;

/** A validated account configuration, as carried in the guard's input and state. */
export interface AccountConfig {
  /** Identifies the account; the guard's workflow id is `guard-<accountId>`. */
  accountId: string;
  /** Capital the loss is measured against, in the reference currency. */
  initialCapital: DecimalString;
  referenceCurrency: ReferenceCurrency;
  /** Loss in percent of capital at which the breaker warns (inclusive). @default "3" */
  warningPct: DecimalString;
  /** Loss in percent of capital at which the breaker trips (inclusive). @default "5" */
  thresholdPct: DecimalString;
  /** Close positions with reduce-only market orders after the cancels are confirmed. @default false */
  autoClosePositions: boolean;
  /** Venue ids (as configured on the worker) that hold this account's funds. */
  venues: string[];
  /** How often the guard values the account itself, whatever bots report. @default 60 */
  valuationIntervalSeconds: number;
  /**
   * While Triggered: how often every venue is swept again for orders placed after the trigger, and how soon a venue
   * that refused the shutdown (e.g. revoked credentials) is retried. @default 30
   */
  sweepIntervalSeconds: number;
}

/** What an operator may send: the same fields, with defaults for the optional ones. */
export type AccountConfigInput = Partial<AccountConfig> & Pick<AccountConfig, 'accountId' | 'initialCapital' | 'venues'>;

const schema = z
  .object({
    accountId: z.string().regex(ACCOUNT_ID_PATTERN, 'must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit'),
    initialCapital: decimalString({ positive: true }),
    referenceCurrency: z.enum(REFERENCE_CURRENCIES).default('USDT'),
    warningPct: decimalString({ positive: true }).default(DEFAULT_WARNING_PCT),
    thresholdPct: decimalString({ positive: true }).default(DEFAULT_THRESHOLD_PCT),
    autoClosePositions: z.boolean().default(false),
    venues: z
      .array(z.string().regex(VENUE_ID_PATTERN, 'must be lower-case letters, digits, "_" or "-" (e.g. "binance-spot")'))
      .min(1, 'must list at least one venue')
      .refine((v) => new Set(v).size === v.length, 'must not list a venue twice'),
    valuationIntervalSeconds: z.int().min(1).max(86_400).default(DEFAULT_VALUATION_INTERVAL_SECONDS),
    sweepIntervalSeconds: z.int().min(1).max(3_600).default(DEFAULT_SWEEP_INTERVAL_SECONDS),
  })
  .strict()
  .superRefine((c, ctx) => {
    const warning = new Decimal(c.warningPct);
    const threshold = new Decimal(c.thresholdPct);
    if (threshold.gt(100)) ctx.addIssue({ code: 'custom', path: ['thresholdPct'], message: `must be at most 100, got "${c.thresholdPct}"` });
    if (!warning.lt(threshold)) {
      ctx.addIssue({
        code: 'custom',
        path: ['warningPct'],
        message: `must be below thresholdPct ("${c.thresholdPct}"), got "${c.warningPct}"`,
      });
    }
  });

/**
 * Validates an account configuration and fills in defaults.
 * @returns the config, or every problem found, one per line
 */
export function parseAccountConfig(raw: unknown): Parsed<AccountConfig> {
  const result = schema.safeParse(raw);
  if (!result.success) return { ok: false, error: formatIssues(result.error, 'config').join('; ') };
  return { ok: true, value: result.data };
}
