/**
 * Account configuration: what a guard protects and at which loss levels it acts.
 */
import { ASSET_PATTERN, ASSET_RULE } from './report';
import { MAX_ASSET_CHARS, MAX_IGNORED_ASSETS, MAX_VENUES_PER_ACCOUNT, MAX_VENUE_ID_CHARS } from './limits';
import { Decimal, DecimalString, Parsed } from './money';
import {
  boundedArray,
  decimalString,
  flag,
  got,
  isPlainObject,
  joinProblems,
  oneOf,
  strictObject,
  text,
  unknownFields,
  validate,
  wholeNumber,
} from './validation';

/** Reference currencies the guard can value an account in (ccxt tickers are quoted against them). */
export const REFERENCE_CURRENCIES = ['USDT', 'USDC'] as const;
export type ReferenceCurrency = (typeof REFERENCE_CURRENCIES)[number];

export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const VENUE_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,39}$/;

export const DEFAULT_WARNING_PCT = '3';
export const DEFAULT_THRESHOLD_PCT = '5';
export const DEFAULT_VALUATION_INTERVAL_SECONDS = 60;
export const DEFAULT_SWEEP_INTERVAL_SECONDS = 30;
export const DEFAULT_MAX_SEQ_JUMP = 1_000_000;

/** What a guard does while part of the account cannot be valued with fresh data. */
export const BLIND_ACTIONS = ['failClosed', 'lastKnownPrice', 'ignore'] as const;
export type BlindAction = (typeof BLIND_ACTIONS)[number];

/** How a guard treats an account it cannot fully value (a venue that stopped answering, an asset without a price). */
export interface BlindPolicy {
  /** What to do while part of the account cannot be valued with fresh data. @default 'failClosed' */
  action: BlindAction;
  /** An unpriced asset whose best-known value (reference currency) is below this is dust: ignored. @default "10" */
  dustValue: DecimalString;
  /** A venue's holdings older than this (seconds) are stale. @default 300, or twice valuationIntervalSeconds if more */
  staleAfterSeconds: number;
  /** failClosed: Warning after the account has been blind this long (seconds). @default 120 */
  warnAfterSeconds: number;
  /** failClosed: trip after the account has been blind this long (seconds). @default 600 */
  tripAfterSeconds: number;
  /** Assets never valued and never alerted on (e.g. delisted dust with no market). @default [] */
  ignoreAssets: string[];
}

/** The blind policy of a config that does not set one (each field also defaults on its own). */
export const DEFAULT_BLIND_POLICY: Readonly<BlindPolicy> = Object.freeze({
  action: 'failClosed',
  dustValue: '10',
  staleAfterSeconds: 300,
  warnAfterSeconds: 120,
  tripAfterSeconds: 600,
  ignoreAssets: [],
});

/**
 * How the guard's watcher follows the account's venues (src/activities/watcher.ts): WebSocket streams where the venue
 * has them, REST polling where not and whenever a stream drops or falls silent.
 */
export interface WatchSettings {
  /** Run a watcher: losses are seen as they happen instead of at the next valuation. @default true */
  enabled: boolean;
  /** With no change worth telling, the watcher still sends the guard a snapshot this often (seconds). @default 60 */
  snapshotIntervalSeconds: number;
  /** REST polling interval of a venue whose streams are down or silent (seconds). @default 2 */
  pollIntervalSeconds: number;
  /** A price stream with no event for this long is silent: the venue falls back to polling (seconds). @default 10 */
  streamSilenceSeconds: number;
}

export const DEFAULT_WATCH: Readonly<WatchSettings> = Object.freeze({
  enabled: true,
  snapshotIntervalSeconds: 60,
  pollIntervalSeconds: 2,
  streamSilenceSeconds: 10,
});

const MAX_VALUATION_INTERVAL_SECONDS = 86_400;
/** Longest duration in a blind policy: one week. */
const MAX_POLICY_SECONDS = 604_800;
/** Cross-field checks compare only values within their own range (out of range, their own message says enough). */
const inPolicyRange = (seconds: number) => seconds >= 1 && seconds <= MAX_POLICY_SECONDS;

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
  /**
   * A report whose `seq` exceeds its venue's last accepted `seq` by more than this is refused (a bot that jumps to
   * 2^53 would otherwise lock out every later report). @default 1000000
   */
  maxSeqJump: number;
  /** How the guard treats an account it cannot fully value. @default {@link DEFAULT_BLIND_POLICY} */
  blindPolicy: BlindPolicy;
  /** The watcher that follows the venues live. @default {@link DEFAULT_WATCH} */
  watch: WatchSettings;
}

/** What an operator may send: the same fields, with defaults for the optional ones (blind policy fields included). */
export type AccountConfigInput = Partial<Omit<AccountConfig, 'blindPolicy' | 'watch'>> &
  Pick<AccountConfig, 'accountId' | 'initialCapital' | 'venues'> & { blindPolicy?: Partial<BlindPolicy>; watch?: Partial<WatchSettings> };

const seconds = (max: number, fallback: number) => wholeNumber(1, max).default(fallback);

const blindPolicySchema = strictObject(
  {
    action: oneOf(BLIND_ACTIONS).default(DEFAULT_BLIND_POLICY.action),
    dustValue: decimalString({ nonNegative: true }).default(DEFAULT_BLIND_POLICY.dustValue),
    // Absent: filled in from the account's valuation interval below (a guard that reads every hour must not call
    // its own holdings stale after five minutes).
    staleAfterSeconds: wholeNumber(1, MAX_POLICY_SECONDS).optional(),
    warnAfterSeconds: seconds(MAX_POLICY_SECONDS, DEFAULT_BLIND_POLICY.warnAfterSeconds),
    tripAfterSeconds: seconds(MAX_POLICY_SECONDS, DEFAULT_BLIND_POLICY.tripAfterSeconds),
    ignoreAssets: boundedArray(text({ max: MAX_ASSET_CHARS, pattern: { regex: ASSET_PATTERN, message: ASSET_RULE } }), {
      max: MAX_IGNORED_ASSETS,
      what: 'assets',
    })
      .refine((v) => new Set(v).size === v.length, 'must not list an asset twice')
      .default(() => []),
  },
  '{"action": "failClosed", "staleAfterSeconds": 300}',
)
  .superRefine((p, ctx) => {
    // Compared only when both are within their own range (otherwise their own messages say enough).
    if (p.warnAfterSeconds >= p.tripAfterSeconds && inPolicyRange(p.warnAfterSeconds) && inPolicyRange(p.tripAfterSeconds)) {
      ctx.addIssue({
        code: 'custom',
        path: ['warnAfterSeconds'],
        message: `must be below tripAfterSeconds (${p.tripAfterSeconds}), got ${p.warnAfterSeconds}`,
      });
    }
  })
  // An absent policy is parsed as {}, so that every field gets its default (and a fresh ignoreAssets array).
  .prefault({});

const watchSchema = strictObject(
  {
    enabled: flag().default(DEFAULT_WATCH.enabled),
    snapshotIntervalSeconds: seconds(3_600, DEFAULT_WATCH.snapshotIntervalSeconds),
    pollIntervalSeconds: seconds(300, DEFAULT_WATCH.pollIntervalSeconds),
    streamSilenceSeconds: seconds(3_600, DEFAULT_WATCH.streamSilenceSeconds),
  },
  '{"enabled": true, "snapshotIntervalSeconds": 60, "pollIntervalSeconds": 2, "streamSilenceSeconds": 10}',
).prefault({});

const schema = strictObject(
  {
    accountId: text({ max: 64, pattern: { regex: ACCOUNT_ID_PATTERN, message: 'must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit' } }),
    initialCapital: decimalString({ positive: true }),
    referenceCurrency: oneOf(REFERENCE_CURRENCIES).default('USDT'),
    warningPct: decimalString({ positive: true }).default(DEFAULT_WARNING_PCT),
    thresholdPct: decimalString({ positive: true }).default(DEFAULT_THRESHOLD_PCT),
    autoClosePositions: flag().default(false),
    venues: boundedArray(
      text({ max: MAX_VENUE_ID_CHARS, pattern: { regex: VENUE_ID_PATTERN, message: 'must be lower-case letters, digits, "_" or "-" (e.g. "binance-spot")' } }),
      { max: MAX_VENUES_PER_ACCOUNT, min: 1, what: 'venues' },
    ).refine((v) => new Set(v).size === v.length, 'must not list a venue twice'),
    valuationIntervalSeconds: seconds(MAX_VALUATION_INTERVAL_SECONDS, DEFAULT_VALUATION_INTERVAL_SECONDS),
    sweepIntervalSeconds: seconds(3_600, DEFAULT_SWEEP_INTERVAL_SECONDS),
    maxSeqJump: wholeNumber(1, Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_SEQ_JUMP),
    blindPolicy: blindPolicySchema,
    watch: watchSchema,
  },
  '{"accountId": "acct-1", "initialCapital": "10000.00", "venues": ["binance-spot"]}',
).superRefine((c, ctx) => {
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
  const stale = c.blindPolicy.staleAfterSeconds;
  // The watcher's snapshots must come more often than holdings go stale, or a quiet, healthy account looks blind.
  const staleOrDefault = stale ?? Math.max(DEFAULT_BLIND_POLICY.staleAfterSeconds, 2 * c.valuationIntervalSeconds);
  if (c.watch.enabled && c.watch.snapshotIntervalSeconds >= staleOrDefault && inPolicyRange(staleOrDefault)) {
    ctx.addIssue({
      code: 'custom',
      path: ['watch', 'snapshotIntervalSeconds'],
      message: `must be below blindPolicy.staleAfterSeconds (${staleOrDefault}), got ${c.watch.snapshotIntervalSeconds}`,
    });
  }
  if (stale !== undefined && stale <= c.valuationIntervalSeconds && inPolicyRange(stale) && c.valuationIntervalSeconds <= MAX_VALUATION_INTERVAL_SECONDS) {
    ctx.addIssue({
      code: 'custom',
      path: ['blindPolicy', 'staleAfterSeconds'],
      message: `must be greater than valuationIntervalSeconds (${c.valuationIntervalSeconds}), got ${stale}`,
    });
  }
}).transform((c): AccountConfig => ({
  ...c,
  blindPolicy: {
    ...c.blindPolicy,
    staleAfterSeconds: c.blindPolicy.staleAfterSeconds ?? Math.max(DEFAULT_BLIND_POLICY.staleAfterSeconds, 2 * c.valuationIntervalSeconds),
  },
}));

/**
 * Validates an account configuration and fills in defaults.
 * @returns the config, or every problem found in one message of at most `MAX_ERROR_CHARS` characters; never throws
 */
export function parseAccountConfig(raw: unknown): Parsed<AccountConfig> {
  return validate<AccountConfig>(schema, raw, 'config');
}

/** Fields that show a config was sent bare, without the `{"config": ...}` wrapper. */
const CONFIG_LOOKING_KEYS = ['accountId', 'initialCapital', 'venues'];
const GUARD_INPUT_FIELDS = ['config', 'state', 'signedBy'];

/**
 * Validates the guard's start input `{ config: {...}, state?: ... }`: the config as {@link parseAccountConfig} does
 * (same messages), the wrapper with messages of its own. `state` (carried across continue-as-new) is not validated
 * here; it is handed back as unknown for the caller.
 * @returns the config with defaults and the state as sent, or one message of at most `MAX_ERROR_CHARS` characters
 */
export function parseGuardInputConfig(raw: unknown): Parsed<{ config: AccountConfig; state: unknown; signedBy: unknown }> {
  if (!isPlainObject(raw)) return { ok: false, error: `input: the guard starts with {"config": {...}}, got ${got(raw)}` };
  const keys = Object.keys(raw);
  if (raw.config === undefined && keys.some((k) => CONFIG_LOOKING_KEYS.includes(k))) {
    return { ok: false, error: 'input.config is required: wrap the account config as {"config": {...}}' };
  }
  const problems: string[] = [];
  const unknown = keys.filter((k) => !GUARD_INPUT_FIELDS.includes(k));
  if (unknown.length) problems.push(`input: ${unknownFields(unknown, GUARD_INPUT_FIELDS.join(', '))}`);
  if (raw.config === undefined) problems.push('input.config: is required: the account config, as {"config": {...}}');
  else {
    const config = parseAccountConfig(raw.config);
    if (config.ok && !problems.length) return { ok: true, value: { config: config.value, state: raw.state, signedBy: raw.signedBy } };
    if (!config.ok) problems.push(config.error);
  }
  return { ok: false, error: joinProblems(problems) };
}
