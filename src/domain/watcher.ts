/**
 * The watcher's contract with the guard, and its one decision: when to speak.
 *
 * A watcher is a long-running activity the guard starts (src/activities/watcher.ts). It follows each of the
 * account's venues through WebSocket streams (REST polling when a stream is down or silent), values the account at
 * every change with the same pure core, and signals the guard an observation: at once when the breaker level it sees
 * changes, on a breach, when a venue's feed changes between streaming and polling, or when orders appear on a
 * Triggered account; otherwise a snapshot every `snapshotIntervalSeconds`. The guard stays the one place where a
 * decision becomes durable: an observation is only evidence, validated here like any other input (any Temporal
 * client can send the signal).
 */
import { z } from 'zod';
import type { RiskLevel } from './breaker';
import type { AccountConfig } from './config';
import { MAX_ERROR_CHARS, MAX_POSITIONS_PER_REPORT, MAX_PRICES_PER_REPORT, MAX_VENUE_ID_CHARS, clip } from './limits';
import { DecimalString, Parsed } from './money';
import { PositionReport, assetMap, balancesSchema, positionSchema } from './report';
import { boundedArray, decimalString, got, oneOf, rule, strictObject, validate, wholeNumber } from './validation';

/** Where a venue's data comes from right now. */
export const FEED_MODES = ['streaming', 'polling'] as const;
export type FeedMode = (typeof FEED_MODES)[number];

/** Why the watcher spoke. */
export const OBSERVATION_REASONS = ['start', 'level', 'breach', 'feed', 'orders', 'snapshot', 'latched'] as const;
export type ObservationReason = (typeof OBSERVATION_REASONS)[number];

/** The health of one venue's feed, as the watcher measures it on its own clock. */
export interface FeedHealth {
  mode: FeedMode;
  /** Seconds between the freshest data the watcher holds (last stream event or good poll) and the observation. */
  dataAgeSeconds: number | null;
  /** Times a stream was found down or silent and the venue fell back to polling, since the watcher started. */
  fallbacks: number;
  /** The last stream or poll error, if the feed is degraded. */
  lastError: string | null;
}

/** What the watcher knows of one venue. */
export interface WatchedVenue {
  feed: FeedHealth;
  /** Holdings and prices of held assets (reference currency); absent until the venue was first read. */
  reading?: { balances: Record<string, DecimalString>; prices: Record<string, DecimalString>; positions: PositionReport[] };
  /** Orders seen opening on the venue's order stream since the last observation (watched only while Triggered). */
  ordersOpened: number;
}

/** One observation: the signal `watcherObservation` carries it. */
export interface WatcherObservation {
  /** The watcher that sent it; the guard ignores observations of a watcher it has replaced. */
  generation: number;
  reason: ObservationReason;
  /** The level the watcher computed (informational: the guard values the account again itself). */
  level: RiskLevel | null;
  venues: Record<string, WatchedVenue>;
  /**
   * The audit log holds a trip of this account that no reset cleared, while this watcher was started for an untripped
   * guard: its history was reset to before the trip, or the guard restarted. Only a hint (any client can send this
   * signal): the guard then reads the audit log itself, through its trusted `loadTrust`, and trips if it is so.
   */
  latched?: boolean;
}

/** Everything a watcher needs, built by the guard from its config. Carries no secrets. */
export interface WatcherPlan {
  accountId: string;
  generation: number;
  /** While true, the watcher reports orders that appear on the order streams (to be cancelled at once). */
  triggered: boolean;
  venues: string[];
  referenceCurrency: string;
  initialCapital: DecimalString;
  warningPct: DecimalString;
  thresholdPct: DecimalString;
  ignoreAssets: string[];
  snapshotIntervalSeconds: number;
  pollIntervalSeconds: number;
  streamSilenceSeconds: number;
}

export function watcherPlan(config: AccountConfig, generation: number, triggered: boolean): WatcherPlan {
  return {
    accountId: config.accountId,
    generation,
    triggered,
    venues: [...config.venues],
    referenceCurrency: config.referenceCurrency,
    initialCapital: config.initialCapital,
    warningPct: config.warningPct,
    thresholdPct: config.thresholdPct,
    ignoreAssets: [...config.blindPolicy.ignoreAssets],
    snapshotIntervalSeconds: config.watch.snapshotIntervalSeconds,
    pollIntervalSeconds: config.watch.pollIntervalSeconds,
    streamSilenceSeconds: config.watch.streamSilenceSeconds,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Validation (the signal is open to any Temporal client)

/** A non-negative number of seconds, at most a year (an age on the watcher's clock), or null before any data. */
const ageSeconds = rule<number | null>((v) =>
  v === null || (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 31_536_000) ? undefined : `must be null or a number of seconds from 0 to 31536000, got ${got(v)}`,
);

const feedSchema = strictObject(
  {
    mode: oneOf(FEED_MODES),
    dataAgeSeconds: ageSeconds,
    fallbacks: wholeNumber(0, Number.MAX_SAFE_INTEGER),
    lastError: z.union([z.string().transform((e) => clip(e, MAX_ERROR_CHARS)), z.null()]),
  },
  '{"mode": "streaming", "dataAgeSeconds": 0.2, "fallbacks": 0, "lastError": null}',
);

const watchedVenueSchema = strictObject(
  {
    feed: feedSchema,
    reading: strictObject({
      balances: balancesSchema,
      prices: assetMap(decimalString({ positive: true }), MAX_PRICES_PER_REPORT),
      positions: boundedArray(positionSchema, { max: MAX_POSITIONS_PER_REPORT, what: 'positions' }),
    }).optional(),
    ordersOpened: wholeNumber(0, 1_000_000),
  },
  '{"feed": {...}, "reading": {"balances": {"USDT": "100"}, "prices": {}, "positions": []}, "ordersOpened": 0}',
);

function observationSchema(venues: readonly string[]) {
  const list = venues.map((v) => JSON.stringify(v)).join(', ');
  return strictObject(
    {
      generation: wholeNumber(1, Number.MAX_SAFE_INTEGER),
      reason: oneOf(OBSERVATION_REASONS),
      level: z.union([oneOf(['ok', 'warning', 'breach'] as const), z.null()]),
      venues: z.record(z.string(), z.unknown()).superRefine((map, ctx) => {
        for (const key of Object.keys(map)) {
          if (key.length > MAX_VENUE_ID_CHARS || !venues.includes(key)) {
            ctx.addIssue({ code: 'custom', message: `unknown venue ${got(key)}; this account has ${list}` });
            return;
          }
        }
      }).pipe(z.record(z.string(), watchedVenueSchema)),
      latched: z.boolean().optional(),
    },
    '{"generation": 1, "reason": "snapshot", "level": "ok", "venues": {...}}',
  );
}

/**
 * Validates an observation against the account's venues.
 * @returns the observation, or every problem found in one message; never throws
 */
export function parseWatcherObservation(raw: unknown, venues: readonly string[]): Parsed<WatcherObservation> {
  return validate<WatcherObservation>(observationSchema(venues), raw, 'observation');
}

// ---------------------------------------------------------------------------------------------------------------
// When the watcher speaks

/** What the watcher last told the guard. */
export interface Spoken {
  /** Watcher clock, milliseconds (monotonic). */
  atMs: number;
  level: RiskLevel | null;
  modes: Record<string, FeedMode>;
}

/** What the watcher sees now. */
export interface Seen {
  nowMs: number;
  /** When the watcher started (same clock). */
  startedMs: number;
  /** The level of a complete valuation; null while some venue has not been read. */
  level: RiskLevel | null;
  modes: Record<string, FeedMode>;
  ordersOpened: number;
}

/**
 * A change of level below a breach, or of a feed's mode, is told at most this often: a price flapping around the
 * warning level must not become a signal (and four history events) per tick. A breach and orders are told at once.
 */
export const MIN_SPEAK_INTERVAL_MS = 1_000;

/**
 * Whether the watcher should signal the guard now, and why. At once on its first complete valuation, on a breach
 * (again after every snapshot interval while it lasts), and when orders opened on a Triggered account; on a change of
 * level or of a venue's feed mode, at most once per {@link MIN_SPEAK_INTERVAL_MS}; otherwise once per snapshot
 * interval.
 */
export function reasonToSpeak(last: Spoken | null, now: Seen, snapshotIntervalSeconds: number): ObservationReason | null {
  if (now.ordersOpened > 0) return 'orders';
  if (last !== null && now.level === 'breach' && last.level !== 'breach') return 'breach';
  if (last !== null && now.nowMs - last.atMs < MIN_SPEAK_INTERVAL_MS) return null;
  // Before the first complete valuation the feeds' health is still worth a snapshot (a venue that cannot be read).
  if (last === null) return now.level !== null ? 'start' : now.nowMs - now.startedMs >= snapshotIntervalSeconds * 1000 ? 'snapshot' : null;
  if (now.level !== null && now.level !== last.level) return now.level === 'breach' ? 'breach' : 'level';
  for (const [venue, mode] of Object.entries(now.modes)) if (last.modes[venue] !== mode) return 'feed';
  if (now.nowMs - last.atMs >= snapshotIntervalSeconds * 1000) return now.level === 'breach' ? 'breach' : 'snapshot';
  return null;
}
