/**
 * What the `state` query answers: the guard's state as an operator reads it. Pure, so that the workflow, tests and
 * tools compute it the same way.
 */
import type { BreakerState, BreakerStateName } from './breaker';
import type { GuardCounters, GuardState, VenueShutdownProgress, WatcherState } from './guard';
import { Decimal, DecimalString, toDecimalString } from './money';

/** What the `state` query (and every operator update) answers. */
export interface GuardStateView {
  accountId: string;
  /** Active, Warning, Triggered or Disabled. */
  state: BreakerStateName;
  breaker: BreakerState;
  referenceCurrency: string;
  initialCapital: DecimalString;
  warningPct: DecimalString;
  thresholdPct: DecimalString;
  /** Loss in percent of capital, two decimals, from the last valuation of every venue; negative when up. */
  lossPct: DecimalString | null;
  totalValue: DecimalString | null;
  pnl: DecimalString | null;
  lastValuationAt: string | null;
  perVenueValue: Record<string, DecimalString>;
  /** Per venue: last accepted `seq`. */
  lastSeq: Record<string, number | null>;
  /** Per venue: where the holdings in use come from, when they were received, and the last read error if reads fail. */
  venues: Record<string, { holdingsFrom: 'bot' | 'guard' | 'watcher' | null; receivedAt: string | null; readError: string | null }>;
  /**
   * The watcher following the venues live, null when none runs (config.watch.enabled false, or a run that predates
   * it). Per venue: streaming or polling, how old its data was at the last report, fallbacks, and the last error.
   */
  watcher: (Pick<WatcherState, 'generation' | 'running' | 'startedAt' | 'lastHeardAt' | 'failures' | 'lastError' | 'feeds'> & { spoke: boolean }) | null;
  /** Set while part of the account cannot be valued with fresh data (the never-blind policy's condition). */
  blind: { since: string; reason: string; policy: 'failClosed' | 'lastKnownPrice' | 'ignore' } | null;
  /** Assets held with no known price (counted as zero), and since when. */
  unpriced: { venue: string; asset: string; amount: DecimalString; since: string }[];
  /** Emergency-shutdown progress per venue (empty until the breaker trips). */
  shutdown: Record<string, VenueShutdownProgress>;
  shutdownInProgress: boolean;
  /** Alerts raised and not yet delivered (the webhook is failing when this stays above zero). */
  alertsPending: number;
  /**
   * Alerts whose delivery has failed and which are still being retried, oldest first: a condition to act on (the
   * webhook is down, refuses, or is misconfigured), never a silent loss.
   */
  alertsUndelivered: { id: string; kind: string; at: string; failedSince: string; attempts: number; lastError: string }[];
  /**
   * The worker's trust anchor as this guard last loaded it (null in runs that predate it): where it came from, whether
   * it lists the account, its operators (ids and the actions each may take), whether reports must be signed, and the
   * last load error. Public data only.
   */
  trust: {
    source: string | null;
    loadedAt: string | null;
    listed: boolean;
    operators: { id: string; actions: string[] }[];
    approvalRequiredFor: string[];
    botsSignReports: boolean;
    lastError: string | null;
  } | null;
  /** Resets and disables waiting for a second operator's `approve`. */
  pendingApprovals: { id: string; action: string; operator: string; reason: string; requestedAt: string; expiresAt: string }[];
  /** Audit entries not yet written to the audit log (null in runs that predate it); `failedSince` set while writes fail. */
  audit: { pending: number; failedSince: string | null; lastError: string | null } | null;
  counters: GuardCounters;
}

export function viewOf(state: GuardState): GuardStateView {
  const v = state.lastValuation;
  const f = state.flatten;
  return {
    accountId: state.config.accountId,
    state: state.breaker.name,
    breaker: state.breaker,
    referenceCurrency: state.config.referenceCurrency,
    initialCapital: state.config.initialCapital,
    warningPct: state.config.warningPct,
    thresholdPct: state.config.thresholdPct,
    lossPct: v ? toDecimalString(new Decimal(v.lossPct), 2) : null,
    totalValue: v ? v.totalValue : null,
    pnl: v ? v.pnl : null,
    lastValuationAt: v ? v.at : null,
    perVenueValue: v ? v.perVenue : {},
    lastSeq: Object.fromEntries(Object.entries(state.venues).map(([venue, s]) => [venue, s.lastSeq])),
    venues: Object.fromEntries(
      Object.entries(state.venues).map(([venue, s]) => [
        venue,
        { holdingsFrom: s.holdings?.source ?? null, receivedAt: s.holdings?.receivedAt ?? null, readError: s.reads.lastError },
      ]),
    ),
    watcher: state.watcher
      ? (({ generation, running, startedAt, spoke, lastHeardAt, failures, lastError, feeds }) => ({ generation, running, startedAt, spoke: spoke === true, lastHeardAt, failures, lastError, feeds }))(state.watcher)
      : null,
    blind: state.blind ? { ...state.blind, policy: state.config.blindPolicy.action } : null,
    unpriced: Object.values(state.unpriced),
    shutdown: f ? f.venues : {},
    shutdownInProgress:
      state.breaker.name === 'Triggered' && f !== undefined && (!f.confirmed || Object.values(f.venues).some((p) => p.pass !== null || p.status !== 'flat')),
    alertsPending: state.alerts.pending.length,
    alertsUndelivered: state.alerts.pending
      .filter((p) => p.failedSince !== undefined)
      .map((p) => ({ id: p.alert.id, kind: p.alert.kind, at: p.alert.at, failedSince: p.failedSince!, attempts: p.attempts, lastError: p.lastError ?? '' })),
    trust: state.trust
      ? {
          source: state.trust.view?.source ?? null,
          loadedAt: state.trust.loadedAt ?? null,
          listed: state.trust.view?.listed ?? false,
          operators: (state.trust.view?.operators ?? []).map((o) => ({ id: o.id, actions: o.actions })),
          approvalRequiredFor: state.trust.view?.approval?.actions ?? [],
          botsSignReports: (state.trust.view?.bots ?? null) !== null,
          lastError: state.trust.lastError,
        }
      : null,
    pendingApprovals: (state.trust?.approvals ?? []).map(({ id, action, operator, reason, requestedAt, expiresAt }) => ({ id, action, operator, reason, requestedAt, expiresAt })),
    audit: state.audit ? { pending: state.audit.pending.length, failedSince: state.audit.failedSince ?? null, lastError: state.audit.lastError ?? null } : null,
    counters: state.counters,
  };
}
