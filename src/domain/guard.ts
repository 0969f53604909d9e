/**
 * The guard as one pure decider: `decide(state, message) -> { state, commands, reply }`.
 *
 * Everything one account's guard knows is the plain, versioned JSON {@link GuardState}; everything that can happen
 * to it is a {@link GuardMessage} (a bot report, a venue reading, a cancel pass finished or refused, a timer due, an
 * alert delivered, an operator request, ...); everything it wants done is a {@link GuardCommand} (read a venue,
 * cancel, close, alert, start a timer, publish search attributes). The workflow only routes messages here and runs
 * the commands, each on its own, each reporting back as a message. Per-venue shutdown progress, alert bookkeeping,
 * read scheduling and the never-blind policy all live here and are unit-tested without Temporal.
 *
 * Nothing here waits for anything: an alert in flight never delays a shutdown, a read, a sweep or continue-as-new,
 * because each is only a field of the state and a command.
 */
import { AccountConfig } from './config';
import { BreakerInput, BreakerState, RiskEvent, RiskLevel, Transition, assertNever, transition } from './breaker';
import { MAX_ERROR_CHARS, MAX_PENDING_ALERTS, MAX_RECENT_EVENTS, MAX_RECENT_EVENTS_BYTES, clip } from './limits';
import { Decimal, DecimalString, toDecimalString } from './money';
import { ApproveRequest, OperatorRequest, actionArgs, parseApproveRequest, parseOperatorRequest, parseResyncRequest } from './operator';
import { AuditEntry, auditEntryOf, auditValuation } from './audit';
import { canonicalJson } from './signing';
import {
  MAX_SIGNED_VALIDITY_SECONDS,
  OperatorActionName,
  TrustView,
  UsedNonces,
  authenticateOperator,
  authenticateReport,
  parseTrustView,
  pruneNonces,
} from './trust';
import { PositionReport, parseBalanceReport } from './report';
import { PriceBook, Valuation, VenueHoldings, describeBlindSpots, valuePortfolio } from './valuation';
import { FeedHealth, WatcherPlan, parseWatcherObservation, watcherPlan } from './watcher';

export const GUARD_STATE_VERSION = 2;

/** Pause between passes over a venue that still shows open orders or positions (a bot still placing orders). */
export const PASS_RETRY_SECONDS = 1;
/** A venue's price read, asked for because a report lacks prices, is not repeated sooner than this. */
export const PRICE_READ_MIN_INTERVAL_SECONDS = 10;
/** Undelivered alerts are sent again this often. */
export const ALERT_RETRY_SECONDS = 60;
/** A watcher that failed is started again after this many seconds per failure in a row, up to a minute. */
export const WATCHER_RESTART_SECONDS = 5;
/**
 * The guard reads its trust view (and the audit log's memory of an unreset trip) again this often: a run whose
 * history was reset to before a trip trips again within this time. (A key revoked in the anchor stops working at
 * once: every operator request reads the anchor first.) Each read costs about 6 history events: 72 an hour.
 */
export const TRUST_REFRESH_SECONDS = 300;
/** Audit entries whose write failed are sent again this often. */
export const AUDIT_RETRY_SECONDS = 30;
/** At most this many audit entries wait to be written; beyond, the oldest are dropped and counted. */
export const MAX_PENDING_AUDIT = 500;
/** Refused operator requests alert at most this often (a flood of forged requests must not flood the pager). */
export const REFUSAL_ALERT_SECONDS = 60;

// ---------------------------------------------------------------------------------------------------------------
// State

/** An alert the guard raises (trip, venue refusing credentials, blind valuation, ...). Carries no secrets. */
export interface Alert {
  /** Unique per account; a webhook can use it to drop a repeat delivery. */
  id: string;
  kind:
    | 'CircuitBreakerTriggered'
    | 'VenueAuthFailed'
    | 'VenueRejected'
    | 'ShutdownComplete'
    | 'ValuationBlind'
    | 'AssetUnpriced'
    | 'CancellationIgnored'
    | 'WatcherDown'
    /** An operator request was refused: unsigned, badly signed, replayed, expired or not allowed. */
    | 'UnauthorisedAction'
    /** The worker's trust anchor (or the audit log's memory) could not be read: no operator can loosen the guard meanwhile. */
    | 'TrustAnchorUnavailable'
    /** Audit entries could not be written to the audit log. */
    | 'AuditUndelivered';
  accountId: string;
  venue?: string;
  message: string;
  at: string;
}

/** Events the guard records besides the breaker's own. */
export type GuardEvent =
  | RiskEvent
  | { type: 'ReportRejected'; at: string; error: string }
  | { type: 'VenueShutdownFailed'; at: string; venue: string; error: string }
  | { type: 'VenueReadFailed'; at: string; venue: string; error: string }
  /** A sweep while Triggered found and cancelled orders placed after the trigger. */
  | { type: 'OrdersSwept'; at: string; venue: string; cancelled: number }
  /** Part of the account could not be valued with fresh data. */
  | { type: 'ValuationBlind'; at: string; reason: string }
  | { type: 'ValuationRestored'; at: string }
  /** An asset with no known price (counted as zero). */
  | { type: 'AssetUnpriced'; at: string; venue: string; asset: string; amount: DecimalString }
  | { type: 'SeqResynchronised'; at: string; venue: string; from: number | null; to: number | null; operator: string; reason: string }
  | { type: 'AlertUndelivered'; at: string; id: string; kind: Alert['kind']; error: string }
  | { type: 'CancellationIgnored'; at: string }
  /** A venue's live feed changed between streaming and polling (a stream dropped, fell silent, or came back). */
  | { type: 'FeedChanged'; at: string; venue: string; mode: FeedHealth['mode']; error: string | null }
  /** The watcher ended with an error; the guard starts it again (and values the account itself meanwhile). */
  | { type: 'WatcherStopped'; at: string; generation: number; error: string }
  | { type: 'WatcherRestored'; at: string; generation: number }
  /** A `watcherObservation` signal that failed validation (any Temporal client can send one). */
  | { type: 'ObservationRejected'; at: string; error: string }
  /** A signed operator action, checked against the trust anchor and carried out. */
  | { type: 'OperatorActionAccepted'; at: string; action: string; operator: string; keyId: string; approvedBy?: string; reason: string; nonce: string; args?: string }
  /** The account's config as accepted at a guard's start (its first, or a signed change): written to the audit log only. */
  | { type: 'GuardConfigured'; at: string; operator: string | null; keyId: string | null; reason: string | null; config: string }
  /** An operator request refused: who it claimed to be, and why it was refused. Nothing else changed. */
  | { type: 'OperatorActionRefused'; at: string; action: string; operator: string; error: string }
  /** A reset or disable that needs a second operator: it waits in `pendingApprovals` until approved or expired. */
  | { type: 'ApprovalRequested'; at: string; requestId: string; action: string; operator: string; keyId: string; reason: string; nonce: string; expiresAt: string }
  /** The trust anchor could not be loaded (first failure of a streak). */
  | { type: 'TrustLoadFailed'; at: string; error: string }
  /** Audit entries could not be written (first failure of a streak). */
  | { type: 'AuditFailed'; at: string; error: string };

/** The guard's own reads of one venue. Tickets let an update wait for a read that started after it. */
export interface VenueReads {
  /** Ticket of the read under way, if any. */
  inFlight: number | null;
  /** Ticket of a read asked for while another was under way; it starts when that one ends. */
  queued: number | null;
  /** Highest ticket finished (read or failed). */
  done: number;
  /** The venue's `lastSeq` when the read under way started: a bot report accepted meanwhile is newer. */
  seqAtRequest: number | null;
  lastDoneAt: string | null;
  /** Set while reads fail; cleared by the next good one. */
  lastError: string | null;
}

export interface VenueState {
  /** Highest `seq` accepted from bots; null before the first report (or after a resync to "any"). */
  lastSeq: number | null;
  holdings?: VenueHoldings;
  reads: VenueReads;
}

/** Emergency-shutdown progress of one venue, shown in the `state` query. */
export interface VenueShutdownProgress {
  status: 'pending' | 'cancelling' | 'closing' | 'flat' | 'failed';
  /** The pass under way, if any. */
  pass: 'cancel' | 'close' | null;
  /** Orders cancelled since the trigger (shutdown and sweeps). */
  cancelled: number;
  /** Open orders seen at the last check; null before the first. */
  openOrders: number | null;
  /** Positions closed since the trigger (only with autoClosePositions). */
  positionsClosed: number;
  /** Open positions seen at the last check (only with autoClosePositions). */
  openPositions: number | null;
  attempts: number;
  lastError?: string;
  updatedAt: string;
}

/** The emergency shutdown, then the sweeps that keep the account flat while Triggered. Stored once. */
export interface Flatten {
  /** Distinguishes this trip's passes from a previous trip's late results. */
  round: number;
  orderedAt: string;
  closePositions: boolean;
  /** Every venue confirmed flat once (SystemShutdown recorded); later passes are sweeps. */
  confirmed: boolean;
  venues: Record<string, VenueShutdownProgress>;
}

export interface PendingAlert {
  alert: Alert;
  inFlight: boolean;
  attempts: number;
  /** Set once a delivery failed: when it first did, and the last error (shown in the `state` query). */
  failedSince?: string;
  lastError?: string;
}

export interface GuardCounters {
  reportsAccepted: number;
  reportsDuplicate: number;
  reportsStale: number;
  reportsRejected: number;
  valuations: number;
  alertsDropped: number;
  /** Watcher observations used, and those refused (invalid) or ignored (from a watcher since replaced). */
  observations: number;
  observationsRejected: number;
  observationsIgnored: number;
  /** Reports refused because the account requires its bots' signatures and this one had none or a wrong one. */
  reportsUnauthenticated?: number;
  /** Operator requests refused by the trust checks. */
  operatorRequestsRefused?: number;
  /** Audit entries dropped because too many waited to be written. */
  auditDropped?: number;
}

/**
 * Behaviour that changed after guards were already running, switched on per run by the workflow (with `patched`)
 * so that the histories of older runs still replay.
 */
export interface GuardFeatures {
  /** Run a watcher (config.watch) and skip the periodic read of venues it keeps fresh. */
  watcher: boolean;
  /** Publish the loss search attribute in whole percent, not tenths: fewer visibility writes. */
  coarseSearchAttributes: boolean;
  /** Operator actions (and, when the anchor lists bot keys, reports) are checked against the worker's trust anchor; events are written to the audit log. */
  trust?: boolean;
}

/** A reset or disable waiting for a second operator. */
export interface PendingApproval {
  /** The request's nonce: what `approve` names. */
  id: string;
  action: OperatorActionName;
  args: Record<string, unknown>;
  operator: string;
  keyId: string;
  reason: string;
  requestedAt: string;
  expiresAt: string;
}

/** What the guard knows of the trust anchor, and the audit entries on their way to the log. */
export interface TrustState {
  view?: TrustView;
  loadedAt?: string;
  /** Loads failed in a row, and the last error. */
  failures: number;
  lastError: string | null;
  usedNonces: UsedNonces;
  approvals: PendingApproval[];
  lastRefusalAlertAt?: string;
  /**
   * Until the run's first trust load: the start input's signed configure (null when unsigned), to check the config
   * against the account's last accepted one; then absent.
   */
  configToCheck?: { signedBy: unknown };
}

export interface AuditState {
  /**
   * This run's id: the prefix of the entry ids it writes (with a counter carried across continue-as-new), so that a
   * run created by a history reset never reuses an id the log already holds (the store would skip it as written).
   */
  runId: string;
  nextId: number;
  pending: AuditEntry[];
  inFlight: boolean;
  failedSince?: string;
  lastError?: string;
}

/** The guard's watcher: which one is current, and the health of each venue's feed as it last reported. */
export interface WatcherState {
  generation: number;
  /** The watcher was started for a Triggered breaker (it then reports orders appearing on the order streams). */
  triggered: boolean;
  running: boolean;
  startedAt: string;
  /** This generation has spoken at least once (its streams were up). */
  spoke?: boolean;
  lastHeardAt: string | null;
  /** Per venue: the feed's health as last reported, and when (workflow clock). */
  feeds: Record<string, FeedHealth & { reportedAt: string }>;
  /** Failures in a row (reset by the next observation). */
  failures: number;
  lastError: string | null;
}

/** Timers the guard keeps: periodic valuation and sweep, the blind-policy deadline, alert retries, venue passes. */
export type TimerName = 'valuation' | 'sweep' | 'blind' | 'alerts' | 'watcher' | 'trust' | 'audit' | `pass:${string}`;

/** The whole guard state. The same JSON feeds queries and continue-as-new. */
export interface GuardState {
  version: typeof GUARD_STATE_VERSION;
  config: AccountConfig;
  breaker: BreakerState;
  venues: Record<string, VenueState>;
  prices: PriceBook;
  /** The last valuation the breaker saw (complete: every venue known). */
  lastValuation?: Valuation;
  /** Set while part of the account cannot be valued with fresh data. */
  blind?: { since: string; reason: string };
  /** Assets held with no known price, by "venue/asset", with when they were first seen so. */
  unpriced: Record<string, { venue: string; asset: string; amount: DecimalString; since: string }>;
  events: GuardEvent[];
  counters: GuardCounters;
  flatten?: Flatten;
  alerts: { nextId: number; pending: PendingAlert[] };
  /** Armed timers and when each is due. */
  timers: Partial<Record<TimerName, string>>;
  readTicket: number;
  flattenRounds: number;
  /** Search attributes as last published, so that they are written only on change. */
  published: { state: string; lossPct: string | null } | null;
  /** Set by each run's `Started`; absent (all off) in runs that predate them. */
  features?: GuardFeatures;
  watcher?: WatcherState;
  /** When the breaker last changed state (a trip, reset, disable or enable), as this run's history knows it. */
  breakerChangedAt?: string;
  /** Set when features.trust is on. */
  trust?: TrustState;
  audit?: AuditState;
}

/** What the guard reads from a venue itself: the same shape a bot reports, minus `seq`. */
export interface VenueReading {
  venue: string;
  balances: Record<string, DecimalString>;
  prices: Record<string, DecimalString>;
  positions: PositionReport[];
  asOf: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Messages, commands, replies

export type OperatorAction = OperatorActionName | 'approve';

export type GuardMessage =
  /** The run began; `continued` when it carries state from continue-as-new. */
  /** `signedBy`: the start input's signed `configure` (or null), checked against the audit log's last accepted config. */
  | { type: 'Started'; at: string; continued: boolean; features?: GuardFeatures; runId?: string; signedBy?: unknown }
  /** `validating`: the update's validator asks; a missing or wrong signature then passes, so that the handler counts and records it. */
  | { type: 'ReportReceived'; at: string; report: unknown; validating?: boolean }
  /** A report whose payload could not be decoded (unknown encoding, invalid JSON such as `NaN`). */
  | { type: 'ReportUndecodable'; at: string; error: string }
  | { type: 'VenueRead'; at: string; venue: string; ticket: number; reading: VenueReading }
  | { type: 'VenueReadFailed'; at: string; venue: string; ticket: number; error: string }
  | { type: 'CancelPassDone'; at: string; venue: string; round: number; cancelled: number; openAfter: number }
  | { type: 'ClosePassDone'; at: string; venue: string; round: number; closed: number; remaining: number }
  | { type: 'PassRefused'; at: string; venue: string; round: number; failureType: string; error: string }
  | { type: 'TimerFired'; at: string; timer: TimerName }
  | { type: 'AlertDelivered'; at: string; id: string }
  | { type: 'AlertFailed'; at: string; id: string; error: string }
  /**
   * `validating`: the update's validator asks; trust failures then pass, so that the handler records and alerts them
   * (a validator's refusal leaves no trace in history).
   */
  | { type: 'OperatorRequested'; at: string; action: OperatorAction; request: unknown; validating?: boolean }
  /** What the `loadTrust` activity answered: `{ view, latch, recentNonces }` (checked here: any worker could answer). */
  | { type: 'TrustLoaded'; at: string; result: unknown }
  | { type: 'TrustLoadFailed'; at: string; error: string }
  | { type: 'AuditWritten'; at: string; ids: string[] }
  | { type: 'AuditWriteFailed'; at: string; error: string }
  /** Someone asked Temporal to cancel the guard's run. */
  | { type: 'CancellationRequested'; at: string }
  /** A `watcherObservation` signal (validated here: any client can send one). */
  | { type: 'WatcherObserved'; at: string; observation: unknown }
  /** The watcher activity ended: `error` null when it handed over on its own (it runs for hours, then ends). */
  | { type: 'WatcherEnded'; at: string; generation: number; error: string | null };

export type GuardCommand =
  | { type: 'ReadVenue'; venue: string; ticket: number; referenceCurrency: string }
  | { type: 'CancelOrders'; venue: string; round: number }
  | { type: 'ClosePositions'; venue: string; round: number }
  | { type: 'SendAlert'; alert: Alert }
  | { type: 'StartTimer'; timer: TimerName; seconds: number }
  /** Start this watcher; the workflow stops the one it replaces. */
  | { type: 'StartWatcher'; plan: WatcherPlan }
  /** Read this account's view of the worker's trust anchor, and the audit log's memory of an unreset trip. */
  | { type: 'LoadTrust'; accountId: string }
  /** Append these entries to the account's audit log (idempotent by eventId). */
  | { type: 'WriteAudit'; accountId: string; entries: AuditEntry[] }
  /** `lossPct` rounded for the search attribute (a double there, not money). */
  | { type: 'PublishSearchAttributes'; state: string; accountId: string; lossPct: string | null };

export type ReportOutcome = 'accepted' | 'duplicate' | 'stale';

export interface Rejection {
  /** The ApplicationFailure type a caller sees: InvalidReport, InvalidOperatorRequest, NotAllowedInThisState. */
  type: string;
  message: string;
}

export interface GuardReply {
  rejection?: Rejection;
  outcome?: ReportOutcome;
  /** Reads (venue → ticket) the answer should wait for: they started after the request and always finish. */
  waitFor?: Record<string, number>;
}

export interface Decision {
  state: GuardState;
  commands: GuardCommand[];
  reply?: GuardReply;
}

// ---------------------------------------------------------------------------------------------------------------
// Creating and carrying state

const emptyReads = (): VenueReads => ({ inFlight: null, queued: null, done: 0, seqAtRequest: null, lastDoneAt: null, lastError: null });

export function createGuardState(config: AccountConfig): GuardState {
  return {
    version: GUARD_STATE_VERSION,
    config,
    breaker: { name: 'Active' },
    venues: Object.fromEntries(config.venues.map((v) => [v, { lastSeq: null, reads: emptyReads() }])),
    prices: {},
    unpriced: {},
    events: [],
    counters: {
      reportsAccepted: 0,
      reportsDuplicate: 0,
      reportsStale: 0,
      reportsRejected: 0,
      valuations: 0,
      alertsDropped: 0,
      observations: 0,
      observationsRejected: 0,
      observationsIgnored: 0,
    },
    alerts: { nextId: 1, pending: [] },
    timers: {},
    readTicket: 0,
    flattenRounds: 0,
    published: null,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Small pure helpers. Each takes a Work (the state being built plus the commands so far) and mutates only it.

interface Work {
  state: GuardState;
  commands: GuardCommand[];
  at: string;
}

function addEvents(w: Work, events: readonly GuardEvent[]): void {
  if (events.length === 0) return;
  let all = w.state.events.concat(events);
  if (all.length > MAX_RECENT_EVENTS) all = all.slice(all.length - MAX_RECENT_EVENTS);
  // Bounded in bytes too: a few large events must not push the carried state towards the payload limit.
  while (all.length > 1 && JSON.stringify(all).length > MAX_RECENT_EVENTS_BYTES) all = all.slice(Math.ceil(all.length / 10));
  w.state = { ...w.state, events: all };
  queueAudit(w, events);
}

/** Risk events and operator actions go to the audit log too, outside Temporal (features.trust). */
function queueAudit(w: Work, events: readonly GuardEvent[]): void {
  const audit = w.state.audit;
  if (!audit || w.state.features?.trust !== true) return;
  const v = w.state.lastValuation;
  const valuation = auditValuation(v?.totalValue, v?.lossPct);
  let nextId = audit.nextId;
  const added: AuditEntry[] = [];
  for (const event of events) {
    const entry = auditEntryOf(event, valuation);
    if (entry) added.push({ eventId: `${audit.runId}-${nextId++}`, ...entry });
  }
  if (added.length === 0) return;
  let pending = audit.pending.concat(added);
  if (pending.length > MAX_PENDING_AUDIT) {
    const dropped = pending.length - MAX_PENDING_AUDIT;
    pending = pending.slice(dropped);
    w.state = { ...w.state, counters: { ...w.state.counters, auditDropped: (w.state.counters.auditDropped ?? 0) + dropped } };
  }
  w.state = { ...w.state, audit: { ...audit, nextId, pending } };
  flushAudit(w);
}

/** At most this many entries per write. */
const AUDIT_BATCH = 100;

function flushAudit(w: Work): void {
  const audit = w.state.audit;
  if (!audit || audit.inFlight || audit.pending.length === 0) return;
  w.state = { ...w.state, audit: { ...audit, inFlight: true } };
  w.commands.push({ type: 'WriteAudit', accountId: w.state.config.accountId, entries: audit.pending.slice(0, AUDIT_BATCH) });
}

const secondsBetween = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;
const addSeconds = (at: string, seconds: number) => new Date(Date.parse(at) + seconds * 1000).toISOString();

/** Arms a timer unless one of that name is already due at or before the wanted time. */
function arm(w: Work, timer: TimerName, seconds: number): void {
  const due = addSeconds(w.at, seconds);
  const current = w.state.timers[timer];
  if (current !== undefined && current <= due) return;
  w.state = { ...w.state, timers: { ...w.state.timers, [timer]: due } };
  w.commands.push({ type: 'StartTimer', timer, seconds: Math.max(0, seconds) });
}

function raiseAlert(w: Work, kind: Alert['kind'], message: string, venue?: string): void {
  const { nextId, pending } = w.state.alerts;
  const alert: Alert = { id: `${w.state.config.accountId}-${nextId}`, kind, accountId: w.state.config.accountId, message: clip(message, MAX_ERROR_CHARS), at: w.at, ...(venue ? { venue } : {}) };
  let kept = pending.concat({ alert, inFlight: true, attempts: 1 });
  if (kept.length > MAX_PENDING_ALERTS) {
    w.state = { ...w.state, counters: { ...w.state.counters, alertsDropped: w.state.counters.alertsDropped + kept.length - MAX_PENDING_ALERTS } };
    kept = kept.slice(kept.length - MAX_PENDING_ALERTS);
  }
  w.state = { ...w.state, alerts: { nextId: nextId + 1, pending: kept } };
  w.commands.push({ type: 'SendAlert', alert });
}

function setVenue(w: Work, venue: string, update: Partial<VenueState>): void {
  const current = w.state.venues[venue] ?? { lastSeq: null, reads: emptyReads() };
  w.state = { ...w.state, venues: { ...w.state.venues, [venue]: { ...current, ...update } } };
}

/**
 * Asks for a read of a venue and returns the ticket to wait for: a read already queued is shared; a read under way
 * is not (it may have started before the caller's request), so one is queued behind it.
 */
function requestRead(w: Work, venue: string): number {
  const v = w.state.venues[venue];
  if (!v) return 0;
  if (v.reads.queued !== null) return v.reads.queued;
  const ticket = w.state.readTicket + 1;
  w.state = { ...w.state, readTicket: ticket };
  if (v.reads.inFlight !== null) {
    setVenue(w, venue, { reads: { ...v.reads, queued: ticket } });
  } else {
    setVenue(w, venue, { reads: { ...v.reads, inFlight: ticket, seqAtRequest: v.lastSeq } });
    w.commands.push({ type: 'ReadVenue', venue, ticket, referenceCurrency: w.state.config.referenceCurrency });
  }
  return ticket;
}

/** A read ended (well or not): record it and start the queued one. */
function finishRead(w: Work, venue: string, ticket: number, error: string | null): void {
  const v = w.state.venues[venue]!;
  const reads: VenueReads = { ...v.reads, inFlight: null, done: Math.max(v.reads.done, ticket), lastDoneAt: w.at, lastError: error };
  setVenue(w, venue, { reads });
  if (reads.queued !== null) {
    const next = reads.queued;
    setVenue(w, venue, { reads: { ...reads, queued: null, inFlight: next, seqAtRequest: w.state.venues[venue]!.lastSeq } });
    w.commands.push({ type: 'ReadVenue', venue, ticket: next, referenceCurrency: w.state.config.referenceCurrency });
  }
}

function nonZero(balances: Record<string, DecimalString>): Record<string, DecimalString> {
  return Object.fromEntries(Object.entries(balances).filter(([, amount]) => !new Decimal(amount).isZero()));
}

function learnPrices(w: Work, venue: string, prices: Record<string, DecimalString>, at = w.at): void {
  const entries = Object.entries(prices);
  if (entries.length === 0) return;
  const book = { ...w.state.prices };
  for (const [asset, price] of entries) {
    // A quote from a fresher source is kept (a bot's report may be newer than the watcher's last tick).
    const known = book[asset];
    if (known && known.at > at) continue;
    book[asset] = { price, at, venue };
  }
  w.state = { ...w.state, prices: book };
}

/** Keeps only quotes of assets some venue holds, so that the price book stays bounded by the holdings. */
function pruneAssets(w: Work): void {
  const held = new Set<string>();
  for (const v of Object.values(w.state.venues)) for (const asset of Object.keys(v.holdings?.balances ?? {})) held.add(asset);
  if (Object.keys(w.state.prices).every((a) => held.has(a))) return;
  w.state = { ...w.state, prices: Object.fromEntries(Object.entries(w.state.prices).filter(([a]) => held.has(a))) };
}

// ---------------------------------------------------------------------------------------------------------------
// Breaker and the never-blind policy

/** Applies a breaker transition: its events, and the emergency shutdown it may order. */
function applyTransition(w: Work, result: Transition): void {
  w.state = { ...w.state, breaker: result.state, ...(result.state.name !== w.state.breaker.name ? { breakerChangedAt: w.at } : {}) };
  addEvents(w, result.events);
  for (const command of result.commands) {
    if (command.type === 'EmergencyShutdown' && result.state.name === 'Triggered') startFlatten(w, command.closePositions, result.state.reason);
  }
}

/** The level blindness has reached under the policy, or undefined while it has not (or the policy never escalates). */
function blindLevel(state: GuardState, at: string): Exclude<RiskLevel, 'ok'> | undefined {
  const { blind } = state;
  const policy = state.config.blindPolicy;
  if (!blind || policy.action !== 'failClosed') return undefined;
  const elapsed = secondsBetween(blind.since, at);
  if (elapsed >= policy.tripAfterSeconds) return 'breach';
  if (elapsed >= policy.warnAfterSeconds) return 'warning';
  return undefined;
}

/**
 * Values the account as known now and lets the breaker decide. Blind spots (a venue never valued or stale, a price
 * stale) become a visible condition with an event and an alert, and under the fail-closed policy a warning and
 * then a trip; a venue whose data is missing or old is read again (not more often than every few seconds).
 * An asset never priced counts as zero, which can only overstate a loss.
 */
function evaluate(w: Work): void {
  const s = w.state;
  const { config } = s;
  const holdings = Object.fromEntries(Object.entries(s.venues).map(([v, vs]) => [v, vs.holdings]));
  const valuation = valuePortfolio(holdings, config.venues, s.prices, config.initialCapital, config.referenceCurrency, w.at, config.blindPolicy);

  const newlyUnpriced = [...new Set(trackUnpriced(w, valuation))];

  // A venue whose first read is still under way is starting, not blind.
  const starting = (venue: string) => { const r = s.venues[venue]?.reads; return r !== undefined && r.done === 0 && r.inFlight !== null; };
  const spots = describeBlindSpots({ ...valuation, missingVenues: valuation.missingVenues.filter((v) => !starting(v)) }, w.at);
  if (spots.length > 0) {
    const reason = clip(spots.join('; '), MAX_ERROR_CHARS);
    if (!w.state.blind) {
      w.state = { ...w.state, blind: { since: w.at, reason } };
      addEvents(w, [{ type: 'ValuationBlind', at: w.at, reason }]);
      if (config.blindPolicy.action !== 'ignore') raiseAlert(w, 'ValuationBlind', `cannot value the account with fresh data: ${reason}`);
    } else if (w.state.blind.reason !== reason) {
      w.state = { ...w.state, blind: { ...w.state.blind, reason } };
    }
  } else if (w.state.blind) {
    w.state = { ...w.state, blind: undefined };
    addEvents(w, [{ type: 'ValuationRestored', at: w.at }]);
  }
  const blind = w.state.blind;
  if (blind && config.blindPolicy.action === 'failClosed') {
    const elapsed = secondsBetween(blind.since, w.at);
    const next = [config.blindPolicy.warnAfterSeconds, config.blindPolicy.tripAfterSeconds].find((t) => t > elapsed);
    if (next !== undefined) arm(w, 'blind', next - elapsed);
  }

  // Fetch what is missing or old; reads are paced so that a venue that keeps failing is not hammered. An asset
  // with no price is looked up at once when it appears; after that the periodic valuation retries.
  const paced = new Set([...valuation.missingVenues, ...valuation.staleVenues.map((s) => s.venue), ...valuation.stalePrices.map((p) => p.venue)]);
  for (const venue of newlyUnpriced) requestRead(w, venue);
  for (const venue of paced) {
    const reads = w.state.venues[venue]?.reads;
    if (!reads || reads.inFlight !== null || reads.queued !== null) continue;
    if (reads.lastDoneAt !== null && secondsBetween(reads.lastDoneAt, w.at) < PRICE_READ_MIN_INTERVAL_SECONDS) continue;
    requestRead(w, venue);
  }

  const level = blindLevel(w.state, w.at);
  const input: BreakerInput = {
    type: 'PortfolioUpdate',
    at: w.at,
    totalValue: valuation.complete ? valuation.totalValue : null,
    lossPct: valuation.complete ? valuation.lossPct : null,
    ...(level && blind ? { blind: { level, reason: `valuation blind for ${Math.round(secondsBetween(blind.since, w.at))} s: ${blind.reason}` } } : {}),
  };
  if (valuation.complete) {
    w.state = { ...w.state, lastValuation: valuation, counters: { ...w.state.counters, valuations: w.state.counters.valuations + 1 } };
  }
  applyTransition(w, transition(w.state.breaker, input, config));
}

/** Keeps the list of assets without any price, with an event and an alert when one appears; returns their venues. */
function trackUnpriced(w: Work, valuation: Valuation): string[] {
  const appeared: string[] = [];
  const next: GuardState['unpriced'] = {};
  for (const u of valuation.unpriced) {
    const key = `${u.venue}/${u.asset}`;
    const known = w.state.unpriced[key];
    next[key] = { ...u, since: known?.since ?? w.at };
    if (!known) {
      appeared.push(u.venue);
      addEvents(w, [{ type: 'AssetUnpriced', at: w.at, venue: u.venue, asset: u.asset, amount: u.amount }]);
      if (w.state.config.blindPolicy.action !== 'ignore') {
        raiseAlert(w, 'AssetUnpriced', `${u.venue}: no price for ${u.amount} ${u.asset}; counted as zero (list it in blindPolicy.ignoreAssets if it is worthless)`, u.venue);
      }
    }
  }
  w.state = { ...w.state, unpriced: next };
  return appeared;
}

// ---------------------------------------------------------------------------------------------------------------
// Emergency shutdown and sweeps

function startFlatten(w: Work, closePositions: boolean, reason: string): void {
  const round = w.state.flattenRounds + 1;
  const venues: Record<string, VenueShutdownProgress> = {};
  for (const venue of w.state.config.venues) {
    venues[venue] = { status: 'cancelling', pass: 'cancel', cancelled: 0, openOrders: null, positionsClosed: 0, openPositions: null, attempts: 1, updatedAt: w.at };
    w.commands.push({ type: 'CancelOrders', venue, round });
  }
  w.state = { ...w.state, flattenRounds: round, flatten: { round, orderedAt: w.at, closePositions, confirmed: false, venues } };
  raiseAlert(w, 'CircuitBreakerTriggered', `${reason}; cancelling every open order on every venue`);
  arm(w, 'sweep', w.state.config.sweepIntervalSeconds);
}

function setProgress(w: Work, venue: string, update: Partial<VenueShutdownProgress>): VenueShutdownProgress {
  const f = w.state.flatten!;
  const next = { ...f.venues[venue]!, ...update, updatedAt: w.at };
  w.state = { ...w.state, flatten: { ...f, venues: { ...f.venues, [venue]: next } } };
  return next;
}

/** Starts a pass over a venue unless one is under way. */
function startPass(w: Work, venue: string, pass: 'cancel' | 'close'): void {
  const f = w.state.flatten;
  const p = f?.venues[venue];
  if (!f || !p || p.pass !== null) return;
  const status = p.status === 'flat' ? 'flat' : pass === 'close' ? 'closing' : 'cancelling';
  setProgress(w, venue, { pass, status, attempts: p.attempts + 1 });
  w.commands.push(pass === 'cancel' ? { type: 'CancelOrders', venue, round: f.round } : { type: 'ClosePositions', venue, round: f.round });
}

/** True while a cancel or close pass is under way on some venue (continue-as-new prefers to wait for its end). */
export function passUnderWay(state: GuardState): boolean {
  return state.flatten !== undefined && Object.values(state.flatten.venues).some((p) => p.pass !== null);
}

/** Records SystemShutdown once, when every venue has confirmed flat after the trigger. */
function confirmIfFlat(w: Work): void {
  const f = w.state.flatten;
  if (!f || f.confirmed || w.state.breaker.name !== 'Triggered') return;
  if (!Object.values(f.venues).every((p) => p.status === 'flat' && p.pass === null)) return;
  w.state = { ...w.state, flatten: { ...f, confirmed: true } };
  applyTransition(w, transition(w.state.breaker, { type: 'ShutdownConfirmed', at: w.at }, w.state.config));
  raiseAlert(w, 'ShutdownComplete', `every venue confirmed zero open orders${f.closePositions ? ' and zero positions' : ''}`);
}

/** A pass result belongs to the current trip's shutdown, or is late and ignored. */
function currentPass(state: GuardState, venue: string, round: number): VenueShutdownProgress | undefined {
  if (state.breaker.name !== 'Triggered' || state.flatten?.round !== round) return undefined;
  return state.flatten.venues[venue];
}

function onCancelPass(w: Work, m: Extract<GuardMessage, { type: 'CancelPassDone' }>): void {
  const p = currentPass(w.state, m.venue, m.round);
  if (!p) return;
  const wasFlat = p.status === 'flat';
  setProgress(w, m.venue, { pass: null, cancelled: p.cancelled + m.cancelled, openOrders: m.openAfter });
  if (wasFlat && m.cancelled > 0) addEvents(w, [{ type: 'OrdersSwept', at: w.at, venue: m.venue, cancelled: m.cancelled }]);
  if (m.openAfter > 0) {
    setProgress(w, m.venue, { status: 'cancelling' });
    arm(w, `pass:${m.venue}`, PASS_RETRY_SECONDS);
  } else if (w.state.flatten!.closePositions) {
    if (!wasFlat) setProgress(w, m.venue, { status: 'closing' });
    startPass(w, m.venue, 'close');
  } else {
    setProgress(w, m.venue, { status: 'flat', lastError: undefined });
  }
  confirmIfFlat(w);
}

function onClosePass(w: Work, m: Extract<GuardMessage, { type: 'ClosePassDone' }>): void {
  const p = currentPass(w.state, m.venue, m.round);
  if (!p) return;
  setProgress(w, m.venue, { pass: null, positionsClosed: p.positionsClosed + m.closed, openPositions: m.remaining });
  if (m.remaining > 0) {
    setProgress(w, m.venue, { status: 'closing' });
    arm(w, `pass:${m.venue}`, PASS_RETRY_SECONDS);
  } else {
    setProgress(w, m.venue, { status: 'flat', lastError: undefined });
  }
  confirmIfFlat(w);
}

/** A venue refused a pass (credentials, permissions, a rejected request): shown, alerted once, retried at the next sweep. */
function onPassRefused(w: Work, m: Extract<GuardMessage, { type: 'PassRefused' }>): void {
  const p = currentPass(w.state, m.venue, m.round);
  if (!p) return;
  const error = clip(`${m.failureType}: ${m.error}`, MAX_ERROR_CHARS);
  setProgress(w, m.venue, { pass: null, status: 'failed', lastError: error });
  // Once per streak (until the venue is flat again): each sweep restarts the pass, which moves `failed` back to
  // `cancelling`, so the status alone would page again at every sweep of a venue that keeps refusing.
  if (p.lastError === undefined) {
    addEvents(w, [{ type: 'VenueShutdownFailed', at: w.at, venue: m.venue, error }]);
    raiseAlert(w, m.failureType === 'VenueAuthFailed' ? 'VenueAuthFailed' : 'VenueRejected', `${m.venue} refused the emergency shutdown: ${error}`, m.venue);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Messages

function onReport(w: Work, raw: unknown, validating = false): GuardReply {
  const parsed = parseBalanceReport(raw, w.state.config.venues);
  if (!parsed.ok) return rejectReport(w, parsed.error);
  const report = parsed.value;
  // The validator leaves the signature to the handler (which records a refusal): one check per report, not two.
  if (w.state.features?.trust === true && !validating) {
    // Checked before seq: a forged report must not move the sequence (a huge seq would make the real bot's stale).
    const signed = authenticateReport(w.state.trust?.view, w.state.config.accountId, raw as Record<string, unknown>, report.venue);
    if (!signed.ok) {
      w.state = { ...w.state, counters: { ...w.state.counters, reportsUnauthenticated: (w.state.counters.reportsUnauthenticated ?? 0) + 1 } };
      return rejectReport(w, signed.error, 'UnauthenticatedReport');
    }
  }
  const venue = w.state.venues[report.venue]!;
  const counters = { ...w.state.counters };
  if (venue.lastSeq !== null && report.seq <= venue.lastSeq) {
    const outcome = report.seq === venue.lastSeq ? 'duplicate' : 'stale';
    if (outcome === 'duplicate') counters.reportsDuplicate += 1;
    else counters.reportsStale += 1;
    w.state = { ...w.state, counters };
    return { outcome };
  }
  const { maxSeqJump } = w.state.config;
  if (venue.lastSeq !== null && report.seq - venue.lastSeq > maxSeqJump) {
    return rejectReport(
      w,
      `report.seq: jumps from ${venue.lastSeq} to ${report.seq}, more than maxSeqJump (${maxSeqJump}); ` +
        `if the bot restarted its sequence, an operator can resynchronise ${report.venue} with resyncSeq`,
    );
  }
  counters.reportsAccepted += 1;
  const holdings: VenueHoldings = {
    balances: nonZero(report.balances),
    positions: report.positions ?? [],
    asOf: report.asOf ?? w.at,
    receivedAt: w.at,
    source: 'bot',
  };
  w.state = { ...w.state, counters };
  setVenue(w, report.venue, { lastSeq: report.seq, holdings });
  learnPrices(w, report.venue, report.prices ?? {});
  const ticketsBefore = w.state.readTicket;
  evaluate(w);
  pruneAssets(w);
  // Reads this report caused (prices it lacks): the update's answer waits for them.
  const waitFor: Record<string, number> = {};
  for (const c of w.commands) if (c.type === 'ReadVenue' && c.ticket > ticketsBefore) waitFor[c.venue] = c.ticket;
  for (const [v, vs] of Object.entries(w.state.venues)) if (vs.reads.queued !== null && vs.reads.queued > ticketsBefore) waitFor[v] = vs.reads.queued;
  return { outcome: 'accepted', ...(Object.keys(waitFor).length > 0 ? { waitFor } : {}) };
}

function rejectReport(w: Work, error: string, type = 'InvalidReport'): GuardReply {
  const message = clip(error, MAX_ERROR_CHARS);
  w.state = { ...w.state, counters: { ...w.state.counters, reportsRejected: w.state.counters.reportsRejected + 1 } };
  addEvents(w, [{ type: 'ReportRejected', at: w.at, error: message }]);
  return { rejection: { type, message } };
}

function onVenueRead(w: Work, m: Extract<GuardMessage, { type: 'VenueRead' }>): void {
  const v = w.state.venues[m.venue];
  if (!v || v.reads.inFlight !== m.ticket) return;
  learnPrices(w, m.venue, m.reading.prices);
  // A bot report accepted while the read was under way is newer than the reading: keep the report.
  if (v.lastSeq === v.reads.seqAtRequest) {
    setVenue(w, m.venue, {
      holdings: { balances: nonZero(m.reading.balances), positions: m.reading.positions, asOf: m.reading.asOf, receivedAt: w.at, source: 'guard' },
    });
  }
  finishRead(w, m.venue, m.ticket, null);
  evaluate(w);
  pruneAssets(w);
}

function onVenueReadFailed(w: Work, m: Extract<GuardMessage, { type: 'VenueReadFailed' }>): void {
  const v = w.state.venues[m.venue];
  if (!v || v.reads.inFlight !== m.ticket) return;
  const error = clip(m.error, MAX_ERROR_CHARS);
  // One event per failure streak, not per attempt: a venue down for a day must not flood the events.
  if (v.reads.lastError === null) addEvents(w, [{ type: 'VenueReadFailed', at: w.at, venue: m.venue, error }]);
  finishRead(w, m.venue, m.ticket, error);
  evaluate(w);
}

function onTimer(w: Work, timer: TimerName): void {
  const due = w.state.timers[timer];
  // A timer from an earlier arming (re-armed sooner since) or no longer wanted.
  if (due === undefined || w.at < due) return;
  const timers = { ...w.state.timers };
  delete timers[timer];
  w.state = { ...w.state, timers };
  const triggered = w.state.breaker.name === 'Triggered' && w.state.flatten !== undefined;
  if (timer === 'valuation') {
    // A venue the watcher keeps fresh needs no read of the guard's own (one less activity in history per venue and
    // interval); a venue it does not (or no watcher) is read as before.
    for (const venue of w.state.config.venues) if (!keptFreshByWatcher(w.state, venue, w.at)) requestRead(w, venue);
    arm(w, 'valuation', w.state.config.valuationIntervalSeconds);
  } else if (timer === 'sweep') {
    if (!triggered) return;
    for (const venue of w.state.config.venues) startPass(w, venue, 'cancel');
    arm(w, 'sweep', w.state.config.sweepIntervalSeconds);
  } else if (timer === 'blind') {
    evaluate(w);
  } else if (timer === 'alerts') {
    resendAlerts(w);
  } else if (timer === 'watcher') {
    if (watching(w.state) && !w.state.watcher?.running) startWatcher(w);
  } else if (timer === 'trust') {
    if (w.state.trust) w.commands.push({ type: 'LoadTrust', accountId: w.state.config.accountId });
  } else if (timer === 'audit') {
    flushAudit(w);
  } else if (timer.startsWith('pass:')) {
    const venue = timer.slice('pass:'.length);
    const p = w.state.flatten?.venues[venue];
    if (triggered && p && p.pass === null && (p.status === 'cancelling' || p.status === 'closing')) startPass(w, venue, 'cancel');
  } else {
    assertNever(timer as never);
  }
}

function resendAlerts(w: Work): void {
  const pending = w.state.alerts.pending.map((p) => {
    if (p.inFlight) return p;
    w.commands.push({ type: 'SendAlert', alert: p.alert });
    return { ...p, inFlight: true, attempts: p.attempts + 1 };
  });
  w.state = { ...w.state, alerts: { ...w.state.alerts, pending } };
}

function onAlertFailed(w: Work, m: Extract<GuardMessage, { type: 'AlertFailed' }>): void {
  const entry = w.state.alerts.pending.find((p) => p.alert.id === m.id);
  if (!entry) return;
  if (entry.attempts === 1) addEvents(w, [{ type: 'AlertUndelivered', at: w.at, id: m.id, kind: entry.alert.kind, error: clip(m.error, MAX_ERROR_CHARS) }]);
  const error = clip(m.error, MAX_ERROR_CHARS);
  const pending = w.state.alerts.pending.map((p) => (p.alert.id === m.id ? { ...p, inFlight: false, failedSince: p.failedSince ?? w.at, lastError: error } : p));
  w.state = { ...w.state, alerts: { ...w.state.alerts, pending } };
  arm(w, 'alerts', ALERT_RETRY_SECONDS);
}

/** Parses an operator request of any action: its own fields, and the arguments its signature covers. */
function parseRequest(w: Work, action: OperatorAction, raw: unknown): { ok: true; request: OperatorRequest & Record<string, unknown> } | { ok: false; reply: GuardReply } {
  const parsed = action === 'resyncSeq' ? parseResyncRequest(raw, w.state.config.venues) : action === 'approve' ? parseApproveRequest(raw) : parseOperatorRequest(raw, action);
  if (!parsed.ok) return { ok: false, reply: { rejection: { type: 'InvalidOperatorRequest', message: parsed.error } } };
  return { ok: true, request: parsed.value as OperatorRequest & Record<string, unknown> };
}

/** Who signed an accepted action, for its events and the audit log. */
interface Signer {
  operator: string;
  keyId: string;
  nonce: string;
  approvedBy?: string;
  approverKeyId?: string;
}

function onOperator(w: Work, m: Extract<GuardMessage, { type: 'OperatorRequested' }>): GuardReply {
  const parsed = parseRequest(w, m.action, m.request);
  if (!parsed.ok) return parsed.reply;
  const request = parsed.request;
  // Guards whose run predates the trust anchor (their histories replay as they ran) take requests as before.
  if (w.state.features?.trust !== true || !w.state.trust) return carryOut(w, m.action as OperatorActionName, request, undefined);

  const trust = { ...w.state.trust, usedNonces: pruneNonces(w.state.trust.usedNonces, w.at), approvals: w.state.trust.approvals.filter((a) => a.expiresAt > w.at) };
  w.state = { ...w.state, trust };
  const args = actionArgs(request);
  const pending = m.action === 'approve' ? trust.approvals.find((a) => a.id === (request as unknown as ApproveRequest).requestId) : undefined;
  if (m.action === 'approve' && !pending) {
    const known = trust.approvals.map((a) => a.id).join(', ') || 'none';
    return { rejection: { type: 'NotAllowedInThisState', message: `approve.requestId: no pending request ${JSON.stringify(args.requestId)} (pending: ${known}); it may have expired` } };
  }
  // Checked against the anchor as it is now: when the read just made failed, a key revoked since the last good read
  // could still pass, so nothing is loosened until the anchor can be read again.
  const anchorNow = trust.failures > 0 ? undefined : trust.view;
  if (trust.failures > 0 && !m.validating) {
    return refuseOperator(w, m.action, request.operator, `${m.action}: the worker's trust anchor could not be read (${trust.lastError ?? 'unknown error'}); nothing was changed, try again once it can`);
  }
  const auth = authenticateOperator({
    trust: anchorNow ?? trust.view,
    accountId: w.state.config.accountId,
    action: m.action,
    permission: pending ? pending.action : (m.action as OperatorActionName),
    args,
    operator: request.operator,
    reason: request.reason,
    auth: request.auth,
    usedNonces: trust.usedNonces,
    at: w.at,
  });
  if (!auth.ok) {
    // The validator lets it through, so that the handler records it: a validator's refusal leaves no trace.
    if (m.validating) return {};
    return refuseOperator(w, m.action, request.operator, auth.error);
  }
  if (pending && pending.operator === request.operator) {
    if (m.validating) return {};
    return refuseOperator(w, m.action, request.operator, `approve: ${request.operator} asked for this ${pending.action}; a different operator must approve it`);
  }
  const nonce = request.auth!.nonce;
  w.state = { ...w.state, trust: { ...trust, usedNonces: { ...trust.usedNonces, [nonce]: request.auth!.expiresAt } } };
  if (pending) {
    w.state = { ...w.state, trust: { ...w.state.trust!, approvals: w.state.trust!.approvals.filter((a) => a.id !== pending.id) } };
    const request2 = { ...pending.args, operator: pending.operator, reason: pending.reason } as OperatorRequest & Record<string, unknown>;
    return carryOut(w, pending.action, request2, { operator: pending.operator, keyId: pending.keyId, nonce: pending.id, approvedBy: request.operator, approverKeyId: auth.keyId });
  }
  const action = m.action as OperatorActionName;
  const approval = trust.view?.approval;
  if (approval && approval.actions.includes(action)) {
    // Refused now if the action is not allowed in this state: no point waiting for a second operator.
    const check = transition(w.state.breaker, breakerInputOf(w, action, request), w.state.config);
    if (action !== 'resyncSeq' && check.rejection !== undefined) return { rejection: { type: 'NotAllowedInThisState', message: check.rejection } };
    const entry: PendingApproval = {
      id: nonce,
      action,
      args,
      operator: request.operator,
      keyId: auth.keyId,
      reason: request.reason,
      requestedAt: w.at,
      expiresAt: addSeconds(w.at, approval.windowSeconds),
    };
    w.state = { ...w.state, trust: { ...w.state.trust!, approvals: w.state.trust!.approvals.concat(entry) } };
    addEvents(w, [{ type: 'ApprovalRequested', at: w.at, requestId: entry.id, action, operator: entry.operator, keyId: entry.keyId, reason: entry.reason, nonce, expiresAt: entry.expiresAt }]);
    return {};
  }
  return carryOut(w, action, request, { operator: request.operator, keyId: auth.keyId, nonce });
}

function refuseOperator(w: Work, action: string, operator: string, error: string): GuardReply {
  const message = clip(error, MAX_ERROR_CHARS);
  const trust = w.state.trust!;
  w.state = { ...w.state, counters: { ...w.state.counters, operatorRequestsRefused: (w.state.counters.operatorRequestsRefused ?? 0) + 1 } };
  addEvents(w, [{ type: 'OperatorActionRefused', at: w.at, action, operator: clip(operator), error: message }]);
  const last = trust.lastRefusalAlertAt;
  if (last === undefined || secondsBetween(last, w.at) >= REFUSAL_ALERT_SECONDS) {
    w.state = { ...w.state, trust: { ...w.state.trust!, lastRefusalAlertAt: w.at } };
    raiseAlert(w, 'UnauthorisedAction', `an operator request was refused: ${message}`);
  }
  return { rejection: { type: 'Unauthorised', message } };
}

function breakerInputOf(w: Work, action: Exclude<OperatorActionName, 'resyncSeq'> | 'resyncSeq', request: OperatorRequest): BreakerInput {
  const base = { at: w.at, operator: request.operator, reason: request.reason };
  return action === 'reset'
    ? { type: 'ResetRequested', ...base }
    : action === 'disable'
      ? { type: 'DisableRequested', ...base }
      : action === 'enable'
        ? { type: 'EnableRequested', ...base }
        : { type: 'HaltRequested', ...base, lossPct: w.state.lastValuation?.lossPct ?? null, totalValue: w.state.lastValuation?.totalValue ?? null };
}

/** Carries out an operator action (authenticated, or from a run that predates the trust anchor). */
function carryOut(w: Work, action: OperatorActionName, request: OperatorRequest & Record<string, unknown>, signer: Signer | undefined): GuardReply {
  const accepted = (): void => {
    if (!signer) return;
    const args = actionArgs(request);
    addEvents(w, [
      {
        type: 'OperatorActionAccepted',
        at: w.at,
        action,
        operator: signer.operator,
        keyId: signer.approverKeyId ? `${signer.keyId}+${signer.approverKeyId}` : signer.keyId,
        ...(signer.approvedBy ? { approvedBy: signer.approvedBy } : {}),
        reason: request.reason,
        nonce: signer.nonce,
        ...(Object.keys(args).length > 0 ? { args: clip(canonicalJson(args), 200) } : {}),
      },
    ]);
  };
  if (action === 'resyncSeq') {
    const { venue, seq } = request as unknown as { venue: string; seq: number | null };
    const from = w.state.venues[venue]!.lastSeq;
    accepted();
    setVenue(w, venue, { lastSeq: seq });
    addEvents(w, [{ type: 'SeqResynchronised', at: w.at, venue, from, to: seq, operator: request.operator, reason: request.reason }]);
    return {};
  }
  const result = transition(w.state.breaker, breakerInputOf(w, action, request), w.state.config);
  if (result.rejection !== undefined) return { rejection: { type: 'NotAllowedInThisState', message: result.rejection } };
  accepted();
  applyTransition(w, result);
  if (action === 'reset') {
    // The operator has taken over: outstanding shutdown work is abandoned, and the account is valued afresh.
    w.state = { ...w.state, flatten: undefined };
  }
  if (action === 'reset' || action === 'enable') evaluate(w);
  return {};
}

// ---------------------------------------------------------------------------------------------------------------
// The trust anchor and the audit log

/** What `loadTrust` answers. */
interface TrustLoad {
  view: TrustView;
  latch: { tripped: boolean; at?: string; reason?: string };
  recentNonces: string[];
  /** The account's last accepted config (canonical JSON), absent for a new account. */
  config?: string;
}

function parseTrustLoad(raw: unknown, accountId: string): { ok: true; value: TrustLoad } | { ok: false; error: string } {
  if (typeof raw !== 'object' || raw === null) return { ok: false, error: 'loadTrust: answered something that is not an object' };
  const r = raw as Record<string, unknown>;
  const view = parseTrustView(r.view);
  if (!view.ok) return { ok: false, error: `loadTrust: ${view.error}` };
  if (view.value.accountId !== accountId) return { ok: false, error: `loadTrust: answered the view of account ${JSON.stringify(clip(view.value.accountId))}, not ${accountId}` };
  const latch = r.latch as Record<string, unknown> | undefined;
  if (typeof latch !== 'object' || latch === null || typeof latch.tripped !== 'boolean') return { ok: false, error: 'loadTrust: latch.tripped must be a boolean' };
  const nonces = Array.isArray(r.recentNonces) ? r.recentNonces.filter((n): n is string => typeof n === 'string' && n.length <= 64).slice(0, 1_000) : [];
  return {
    ok: true,
    value: {
      view: view.value,
      latch: { tripped: latch.tripped, ...(typeof latch.at === 'string' ? { at: clip(latch.at, 40) } : {}), ...(typeof latch.reason === 'string' ? { reason: clip(latch.reason, 200) } : {}) },
      recentNonces: nonces,
      ...(typeof r.config === 'string' && r.config.length <= 16_384 ? { config: r.config } : {}),
    },
  };
}

function onTrustLoaded(w: Work, raw: unknown): void {
  const trust = w.state.trust;
  if (!trust) return;
  const parsed = parseTrustLoad(raw, w.state.config.accountId);
  if (!parsed.ok) return onTrustLoadFailed(w, parsed.error);
  const { view, latch, recentNonces } = parsed.value;
  // Nonces the audit log saw recently: a request already used by an earlier run is not replayed on this one.
  const usedNonces = { ...trust.usedNonces };
  for (const n of recentNonces) usedNonces[n] ??= addSeconds(w.at, MAX_SIGNED_VALIDITY_SECONDS);
  w.state = { ...w.state, trust: { ...trust, view, loadedAt: w.at, failures: 0, lastError: null, usedNonces } };
  arm(w, 'trust', TRUST_REFRESH_SECONDS);
  checkConfig(w, parsed.value.config);
  // Only a trip later than anything this run knows of its breaker: a trip this run has since reset (its reset not yet
  // in the log, or the read made before it was written) is not recalled; one from before a termination, or from
  // after the point a history reset went back to, is.
  const changedAt = w.state.breakerChangedAt;
  if (latch.tripped && w.state.breaker.name !== 'Triggered' && (changedAt === undefined || latch.at === undefined || latch.at > changedAt)) {
    const reason = clip(
      `the audit log holds a trip${latch.at ? ` of ${latch.at}` : ''}${latch.reason ? ` (${latch.reason})` : ''} that no signed reset has cleared; ` +
        'this run (after a termination, a restart or a history reset) is Triggered until an operator resets it',
      MAX_ERROR_CHARS,
    );
    const v = w.state.lastValuation;
    // Alerted like every trip, once, by the shutdown it starts.
    applyTransition(w, transition(w.state.breaker, { type: 'TripRecalled', at: w.at, reason, lossPct: v?.lossPct ?? null, totalValue: v?.totalValue ?? null }, w.state.config));
  }
}

/**
 * A new run's config against the account's last accepted one (the audit log's): the same, or the account's first, is
 * accepted; a change needs an operator's signed `configure` (start input `signedBy`). An unsigned or badly signed
 * change (looser thresholds, more capital: a way to disarm the guard by restarting it) starts the guard Triggered.
 */
function checkConfig(w: Work, lastConfig: string | undefined): void {
  const trust = w.state.trust;
  if (!trust?.configToCheck) return;
  const { signedBy } = trust.configToCheck;
  w.state = { ...w.state, trust: { ...trust, configToCheck: undefined } };
  delete w.state.trust!.configToCheck;
  const mine = canonicalJson(w.state.config);
  if (lastConfig === mine) return;
  // For the audit log only (the account's accepted limits, a few hundred bytes): the recent events stay for risk.
  const accept = (operator: string | null, keyId: string | null, reason: string | null) =>
    queueAudit(w, [{ type: 'GuardConfigured', at: w.at, operator, keyId, reason, config: mine }]);
  const parsed = signedBy === null || signedBy === undefined ? undefined : parseOperatorRequest(signedBy, 'configure');
  if (parsed?.ok) {
    const auth = authenticateOperator({
      trust: w.state.trust!.view,
      accountId: w.state.config.accountId,
      action: 'configure',
      permission: 'configure',
      args: { config: mine },
      operator: parsed.value.operator,
      reason: parsed.value.reason,
      auth: parsed.value.auth,
      usedNonces: w.state.trust!.usedNonces,
      at: w.at,
    });
    if (auth.ok) {
      const nonce = parsed.value.auth!.nonce;
      w.state = { ...w.state, trust: { ...w.state.trust!, usedNonces: { ...w.state.trust!.usedNonces, [nonce]: parsed.value.auth!.expiresAt } } };
      accept(parsed.value.operator, auth.keyId, parsed.value.reason);
      return;
    }
    if (lastConfig !== undefined) return refuseConfig(w, parsed.value.operator, auth.error, lastConfig, mine);
  } else if (parsed && lastConfig !== undefined) {
    return refuseConfig(w, '(unparsed)', parsed.error, lastConfig, mine);
  }
  // The account's first guard: nothing to loosen yet; its config becomes the one later changes are checked against.
  if (lastConfig === undefined) return accept(null, null, null);
  refuseConfig(w, '(nobody)', 'configure: unsigned: a config other than the account\'s last accepted one needs an operator\'s signed configure (breaker start --key)', lastConfig, mine);
}

/** Fields whose values differ between two canonical configs, for the reason. */
function changedFields(before: string, after: string): string {
  let a: Record<string, unknown> = {};
  try {
    a = JSON.parse(before) as Record<string, unknown>;
  } catch {
    return 'the config';
  }
  const b = JSON.parse(after) as Record<string, unknown>;
  const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k]));
  return fields.map((k) => `${k} ${clip(canonicalJson(a[k]) ?? 'none', 24)} → ${clip(canonicalJson(b[k]) ?? 'none', 24)}`).join(', ') || 'the config';
}

function refuseConfig(w: Work, operator: string, error: string, lastConfig: string, mine: string): void {
  refuseOperator(w, 'configure', operator, error);
  if (w.state.breaker.name === 'Triggered') return;
  const v = w.state.lastValuation;
  const reason = clip(`started with a config other than the account's last accepted one (${changedFields(lastConfig, mine)}) and no valid signed configure: ${error}`, MAX_ERROR_CHARS);
  applyTransition(w, transition(w.state.breaker, { type: 'TripRecalled', at: w.at, reason, lossPct: v?.lossPct ?? null, totalValue: v?.totalValue ?? null }, w.state.config));
}

function onTrustLoadFailed(w: Work, error: string): void {
  const trust = w.state.trust;
  if (!trust) return;
  const message = clip(error, MAX_ERROR_CHARS);
  const failures = trust.failures + 1;
  w.state = { ...w.state, trust: { ...trust, failures, lastError: message } };
  if (failures === 1) {
    addEvents(w, [{ type: 'TrustLoadFailed', at: w.at, error: message }]);
    raiseAlert(w, 'TrustAnchorUnavailable', `the worker's trust anchor could not be read (${message}); operators cannot act on this guard until it can`);
  }
  arm(w, 'trust', Math.min(TRUST_REFRESH_SECONDS, 5 * failures));
}

function onAuditWritten(w: Work, ids: readonly string[]): void {
  const audit = w.state.audit;
  if (!audit) return;
  const written = new Set(ids);
  const rest: AuditState = { ...audit, inFlight: false, pending: audit.pending.filter((e) => !written.has(e.eventId)) };
  delete rest.failedSince;
  delete rest.lastError;
  w.state = { ...w.state, audit: rest };
  flushAudit(w);
}

function onAuditWriteFailed(w: Work, error: string): void {
  const audit = w.state.audit;
  if (!audit) return;
  const message = clip(error, MAX_ERROR_CHARS);
  w.state = { ...w.state, audit: { ...audit, inFlight: false, failedSince: audit.failedSince ?? w.at, lastError: message } };
  if (audit.failedSince === undefined) {
    addEvents(w, [{ type: 'AuditFailed', at: w.at, error: message }]);
    raiseAlert(w, 'AuditUndelivered', `audit entries could not be written (${message}); they are kept and sent again`);
  }
  arm(w, 'audit', AUDIT_RETRY_SECONDS);
}

/** A run's start with the trust anchor: its trust and audit state, and the first load of the anchor. */
function startTrust(w: Work, runId: string | undefined, signedBy: unknown, continued: boolean): void {
  if (w.state.features?.trust !== true) return;
  const trust: TrustState = {
    ...(w.state.trust ?? { failures: 0, lastError: null, usedNonces: {}, approvals: [] }),
    // A new run (started by a client) has its config checked at its first trust load; a continued one was checked.
    ...(continued ? {} : { configToCheck: { signedBy } }),
  };
  const audit: AuditState = w.state.audit ?? { runId: '', nextId: 1, pending: [], inFlight: false };
  // A write in flight when the previous run ended is sent again (idempotent by eventId); new entries carry this run's id.
  w.state = { ...w.state, trust, audit: { ...audit, runId: runId ?? w.state.config.accountId, inFlight: false } };
  w.commands.push({ type: 'LoadTrust', accountId: w.state.config.accountId });
  flushAudit(w);
}

function onStarted(w: Work, continued: boolean, features: GuardFeatures | undefined, runId: string | undefined, signedBy: unknown): void {
  w.state = { ...w.state, features: features ?? { watcher: false, coarseSearchAttributes: false } };
  startTrust(w, runId, signedBy, continued);
  // Every run starts its own watcher: a previous run's watcher stops when its run ends (its heartbeat finds it gone).
  if (watching(w.state)) startWatcher(w);
  if (!continued) {
    for (const venue of w.state.config.venues) requestRead(w, venue);
    arm(w, 'valuation', w.state.config.valuationIntervalSeconds);
    return;
  }
  // A new run after continue-as-new: whatever was under way in the previous run is started again. Every effect is
  // idempotent (reads, cancel-all, reduce-only closes; alerts carry an id), so repeating one is harmless, while
  // waiting for the old run's effects would let continue-as-new delay protection.
  const timers = w.state.timers;
  w.state = { ...w.state, timers: {} };
  for (const [timer, due] of Object.entries(timers) as [TimerName, string][]) arm(w, timer, Math.max(0, secondsBetween(w.at, due)));
  if (w.state.timers.valuation === undefined) arm(w, 'valuation', w.state.config.valuationIntervalSeconds);
  for (const [venue, v] of Object.entries(w.state.venues)) {
    if (v.reads.inFlight !== null) w.commands.push({ type: 'ReadVenue', venue, ticket: v.reads.inFlight, referenceCurrency: w.state.config.referenceCurrency });
  }
  const f = w.state.flatten;
  if (f && w.state.breaker.name === 'Triggered') {
    for (const [venue, p] of Object.entries(f.venues)) {
      if (p.pass === 'cancel') w.commands.push({ type: 'CancelOrders', venue, round: f.round });
      if (p.pass === 'close') w.commands.push({ type: 'ClosePositions', venue, round: f.round });
    }
    if (w.state.timers.sweep === undefined) arm(w, 'sweep', 0);
  }
  for (const p of w.state.alerts.pending) if (p.inFlight) w.commands.push({ type: 'SendAlert', alert: p.alert });
}

// ---------------------------------------------------------------------------------------------------------------
// The watcher

function watching(state: GuardState): boolean {
  return state.features?.watcher === true && state.config.watch.enabled;
}

/** True when the watcher's data of this venue is younger than the valuation interval: no read of the guard's own. */
function keptFreshByWatcher(state: GuardState, venue: string, at: string): boolean {
  const h = state.venues[venue]?.holdings;
  return watching(state) && state.watcher?.running === true && h?.source === 'watcher' && secondsBetween(h.receivedAt, at) < state.config.valuationIntervalSeconds;
}

/** Starts a new watcher generation, for the breaker as it is now. */
function startWatcher(w: Work): void {
  const previous = w.state.watcher;
  const generation = (previous?.generation ?? 0) + 1;
  const triggered = w.state.breaker.name === 'Triggered';
  w.state = {
    ...w.state,
    watcher: {
      generation,
      triggered,
      running: true,
      startedAt: w.at,
      spoke: false,
      lastHeardAt: previous?.lastHeardAt ?? null,
      feeds: previous?.feeds ?? {},
      failures: previous?.failures ?? 0,
      lastError: previous?.lastError ?? null,
    },
  };
  w.commands.push({ type: 'StartWatcher', plan: watcherPlan(w.state.config, generation, triggered) });
}

/** A watcher started for an Active guard does not report new orders: it is replaced when the breaker trips (and back). */
function syncWatcher(w: Work): void {
  const wc = w.state.watcher;
  if (!watching(w.state) || !wc?.running) return;
  if (wc.triggered !== (w.state.breaker.name === 'Triggered')) startWatcher(w);
}

function onWatcherObserved(w: Work, raw: unknown): void {
  const counters = w.state.counters;
  const parsed = parseWatcherObservation(raw, w.state.config.venues);
  if (!parsed.ok) {
    const error = clip(parsed.error, MAX_ERROR_CHARS);
    w.state = { ...w.state, counters: { ...counters, observationsRejected: counters.observationsRejected + 1 } };
    addEvents(w, [{ type: 'ObservationRejected', at: w.at, error }]);
    return;
  }
  const o = parsed.value;
  const wc = w.state.watcher;
  // From a watcher since replaced, or one that ended (its last words may arrive after its end): ignored.
  if (!wc || o.generation !== wc.generation || !wc.running) {
    w.state = { ...w.state, counters: { ...counters, observationsIgnored: counters.observationsIgnored + 1 } };
    return;
  }
  const feeds = { ...wc.feeds };
  for (const [venue, seen] of Object.entries(o.venues)) {
    const before = feeds[venue];
    if (before ? before.mode !== seen.feed.mode : seen.feed.mode === 'polling') {
      addEvents(w, [{ type: 'FeedChanged', at: w.at, venue, mode: seen.feed.mode, error: seen.feed.lastError }]);
    }
    feeds[venue] = { ...seen.feed, reportedAt: w.at };
    if (seen.reading) {
      // Fresh as of the watcher's data, measured as an age on its own clock: no comparison of two machines' clocks.
      const freshAt = addSeconds(w.at, -(seen.feed.dataAgeSeconds ?? 0));
      const current = w.state.venues[venue]?.holdings;
      // A bot's report received after the watcher's data was fresh is the newer account.
      if (!current || current.receivedAt <= freshAt) {
        setVenue(w, venue, {
          holdings: { balances: nonZero(seen.reading.balances), positions: seen.reading.positions, asOf: freshAt, receivedAt: freshAt, source: 'watcher' },
        });
      }
      learnPrices(w, venue, seen.reading.prices, freshAt);
    }
    // Orders placed on a Triggered account are cancelled now, not at the next sweep.
    if (seen.ordersOpened > 0 && w.state.breaker.name === 'Triggered') startPass(w, venue, 'cancel');
  }
  if (wc.failures > 0) addEvents(w, [{ type: 'WatcherRestored', at: w.at, generation: wc.generation }]);
  // The watcher found a trip in the audit log that this run does not know (a history reset, a restart): the guard
  // reads the log itself, through its trusted activity, and trips if it is so (onTrustLoaded).
  if (o.latched === true && w.state.trust && w.state.breaker.name !== 'Triggered') w.commands.push({ type: 'LoadTrust', accountId: w.state.config.accountId });
  // The first words of a watcher started for a Triggered guard: its order streams are up from here on, so one sweep
  // now covers orders placed between the trip's passes and that subscription.
  if (!wc.spoke && wc.triggered && w.state.breaker.name === 'Triggered') for (const venue of w.state.config.venues) startPass(w, venue, 'cancel');
  w.state = {
    ...w.state,
    watcher: { ...w.state.watcher!, feeds, lastHeardAt: w.at, failures: 0, lastError: null, spoke: true },
    counters: { ...w.state.counters, observations: w.state.counters.observations + 1 },
  };
  evaluate(w);
  pruneAssets(w);
}

function onWatcherEnded(w: Work, m: Extract<GuardMessage, { type: 'WatcherEnded' }>): void {
  const wc = w.state.watcher;
  if (!wc || m.generation !== wc.generation || !wc.running) return;
  if (m.error === null) {
    // It handed over after its run time: the next one starts now.
    w.state = { ...w.state, watcher: { ...wc, running: false } };
    startWatcher(w);
    return;
  }
  const error = clip(m.error, MAX_ERROR_CHARS);
  const failures = wc.failures + 1;
  w.state = { ...w.state, watcher: { ...wc, running: false, failures, lastError: error } };
  if (failures === 1) {
    addEvents(w, [{ type: 'WatcherStopped', at: w.at, generation: m.generation, error }]);
    raiseAlert(w, 'WatcherDown', `the watcher stopped (${error}); losses are seen at the valuation interval until it is back`);
  }
  arm(w, 'watcher', Math.min(60, WATCHER_RESTART_SECONDS * failures));
}

/**
 * Search attributes are written only when the breaker state or the loss changes (to 0.1 %, or to whole percent with
 * `coarseSearchAttributes`): each write costs a visibility update, and a report that moves the loss by a hundredth
 * must not cost one.
 */
function publishIfChanged(w: Work): void {
  const v = w.state.lastValuation;
  const coarse = w.state.features?.coarseSearchAttributes === true;
  const lossPct = v ? (coarse ? new Decimal(v.lossPct).toDecimalPlaces(0, Decimal.ROUND_FLOOR).toFixed() : toDecimalString(new Decimal(v.lossPct), 1)) : null;
  const current = { state: w.state.breaker.name, lossPct };
  const last = w.state.published;
  if (last && last.state === current.state && last.lossPct === current.lossPct) return;
  w.state = { ...w.state, published: current };
  w.commands.push({ type: 'PublishSearchAttributes', state: current.state, accountId: w.state.config.accountId, lossPct });
}

/**
 * Decides what the guard does with one message. Pure and deterministic: the time is the message's `at`.
 * A message that is refused (`reply.rejection`) may still change the state (a rejected report is counted and
 * recorded); an update's validator calls this and discards the result.
 */
export function decide(state: GuardState, message: GuardMessage): Decision {
  const w: Work = { state, commands: [], at: message.at };
  let reply: GuardReply | undefined;
  switch (message.type) {
    case 'Started':
      onStarted(w, message.continued, message.features, message.runId, message.signedBy);
      break;
    case 'ReportReceived':
      reply = onReport(w, message.report, message.validating);
      break;
    case 'ReportUndecodable':
      reply = rejectReport(w, `report: the payload could not be decoded (${message.error}); send JSON (encoding json/plain) with amounts as decimal strings`);
      break;
    case 'VenueRead':
      onVenueRead(w, message);
      break;
    case 'VenueReadFailed':
      onVenueReadFailed(w, message);
      break;
    case 'CancelPassDone':
      onCancelPass(w, message);
      break;
    case 'ClosePassDone':
      onClosePass(w, message);
      break;
    case 'PassRefused':
      onPassRefused(w, message);
      break;
    case 'TimerFired':
      onTimer(w, message.timer);
      break;
    case 'AlertDelivered':
      w.state = { ...w.state, alerts: { ...w.state.alerts, pending: w.state.alerts.pending.filter((p) => p.alert.id !== message.id) } };
      break;
    case 'AlertFailed':
      onAlertFailed(w, message);
      break;
    case 'OperatorRequested':
      reply = onOperator(w, message);
      break;
    case 'CancellationRequested':
      // A cancellation request would stop protection, and any Temporal client (or a click in the Web UI) can send
      // one: the guard records it, alerts, and goes on. Retiring a guard is a deliberate `terminate`.
      addEvents(w, [{ type: 'CancellationIgnored', at: w.at }]);
      raiseAlert(w, 'CancellationIgnored', 'a cancellation of the guard was requested and ignored: the guard keeps protecting the account (terminate the workflow to retire it)');
      break;
    case 'WatcherObserved':
      onWatcherObserved(w, message.observation);
      break;
    case 'WatcherEnded':
      onWatcherEnded(w, message);
      break;
    case 'TrustLoaded':
      onTrustLoaded(w, message.result);
      break;
    case 'TrustLoadFailed':
      onTrustLoadFailed(w, message.error);
      break;
    case 'AuditWritten':
      onAuditWritten(w, message.ids);
      break;
    case 'AuditWriteFailed':
      onAuditWriteFailed(w, message.error);
      break;
    default:
      assertNever(message);
  }
  syncWatcher(w);
  publishIfChanged(w);
  return { state: w.state, commands: w.commands, ...(reply ? { reply } : {}) };
}
