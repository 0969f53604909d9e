/**
 * The guard aggregate: everything one account's guard knows, as plain versioned JSON, and the pure operations on
 * it. The workflow only routes messages here and runs the commands that come back.
 */
import { AccountConfig } from './config';
import { BreakerCommand, BreakerInput, BreakerState, RiskEvent, Transition, transition } from './breaker';
import { BalanceReport } from './report';
import { Valuation, VenueHoldings, valuePortfolio } from './valuation';

export const GUARD_STATE_VERSION = 1;
/** How many recent events the guard keeps (the `events` query); older ones live in the workflow history. */
export const MAX_RECENT_EVENTS = 200;

/** Events the guard records besides the breaker's own. */
export type GuardEvent =
  | RiskEvent
  | { type: 'ReportRejected'; at: string; error: string }
  | { type: 'VenueShutdownFailed'; at: string; venue: string; error: string }
  | { type: 'VenueReadFailed'; at: string; venue: string; error: string }
  /** A sweep while Triggered found and cancelled orders placed after the trigger. */
  | { type: 'OrdersSwept'; at: string; venue: string; cancelled: number };

export interface VenueState {
  /** Highest `seq` accepted from bots; null before the first report. */
  lastSeq: number | null;
  holdings?: VenueHoldings;
}

/** Emergency-shutdown progress of one venue, shown in the `state` query. */
export interface VenueShutdownProgress {
  status: 'pending' | 'cancelling' | 'closing' | 'flat' | 'failed';
  /** Orders cancelled since the trigger (shutdown and sweeps). */
  cancelled: number;
  /** Open orders seen at the last check; null before the first. */
  openOrders: number | null;
  /** Positions closed since the trigger (only with autoClosePositions). */
  positionsClosed?: number;
  /** Open positions seen at the last check (only with autoClosePositions). */
  openPositions?: number | null;
  attempts: number;
  lastError?: string;
  updatedAt: string;
}

export interface GuardCounters {
  reportsAccepted: number;
  reportsDuplicate: number;
  reportsStale: number;
  reportsRejected: number;
  valuations: number;
}

/** The whole guard state. The same JSON feeds queries and continue-as-new. */
export interface GuardState {
  version: typeof GUARD_STATE_VERSION;
  config: AccountConfig;
  breaker: BreakerState;
  venues: Record<string, VenueState>;
  /** The last complete valuation; incomplete ones never reach the breaker. */
  lastValuation?: Valuation;
  events: GuardEvent[];
  counters: GuardCounters;
  /** Shutdown work ordered by the breaker and not yet confirmed done; survives continue-as-new. */
  pendingShutdown?: { closePositions: boolean; orderedAt: string };
  shutdown: Record<string, VenueShutdownProgress>;
}

export function createGuardState(config: AccountConfig): GuardState {
  return {
    version: GUARD_STATE_VERSION,
    config,
    breaker: { name: 'Active' },
    venues: Object.fromEntries(config.venues.map((v) => [v, { lastSeq: null }])),
    events: [],
    counters: { reportsAccepted: 0, reportsDuplicate: 0, reportsStale: 0, reportsRejected: 0, valuations: 0 },
    shutdown: {},
  };
}

function withEvents(state: GuardState, events: readonly GuardEvent[]): GuardState {
  if (events.length === 0) return state;
  const all = state.events.concat(events);
  return { ...state, events: all.length > MAX_RECENT_EVENTS ? all.slice(all.length - MAX_RECENT_EVENTS) : all };
}

export type ReportOutcome = 'accepted' | 'duplicate' | 'stale';

/**
 * Takes a validated bot report: a report whose `seq` equals the last accepted one is a duplicate, a lower one is
 * stale; both are counted and otherwise ignored.
 */
export function receiveReport(state: GuardState, report: BalanceReport, at: string): { state: GuardState; outcome: ReportOutcome } {
  const venue = state.venues[report.venue] ?? { lastSeq: null };
  if (venue.lastSeq !== null && report.seq <= venue.lastSeq) {
    const outcome = report.seq === venue.lastSeq ? 'duplicate' : 'stale';
    const counters = { ...state.counters };
    if (outcome === 'duplicate') counters.reportsDuplicate += 1;
    else counters.reportsStale += 1;
    return { state: { ...state, counters }, outcome };
  }
  const holdings: VenueHoldings = {
    balances: report.balances,
    prices: report.prices ?? {},
    positions: report.positions ?? [],
    asOf: report.asOf ?? at,
    source: 'bot',
  };
  return {
    state: {
      ...state,
      venues: { ...state.venues, [report.venue]: { lastSeq: report.seq, holdings } },
      counters: { ...state.counters, reportsAccepted: state.counters.reportsAccepted + 1 },
    },
    outcome: 'accepted',
  };
}

/** Records a report that failed validation; the guard's state is otherwise untouched. */
export function rejectReport(state: GuardState, error: string, at: string): GuardState {
  const counters = { ...state.counters, reportsRejected: state.counters.reportsRejected + 1 };
  return withEvents({ ...state, counters }, [{ type: 'ReportRejected', at, error }]);
}

/**
 * Stores holdings the guard read from the venue itself (no `seq`: they do not advance the bots' sequence).
 * A reading is dropped if a bot report was accepted for that venue while the read was under way: the report is
 * newer than the reading, which may have been taken before the bot's snapshot.
 * @param seqAtRequest the venue's `lastSeq` when the read was requested
 */
export function receiveVenueHoldings(state: GuardState, venue: string, holdings: VenueHoldings, seqAtRequest: number | null): GuardState {
  const current = state.venues[venue] ?? { lastSeq: null };
  if (current.lastSeq !== seqAtRequest) return state;
  return { ...state, venues: { ...state.venues, [venue]: { ...current, holdings } } };
}

/** Records that the guard could not read a venue; the last known holdings stay in use. */
export function recordReadFailure(state: GuardState, venue: string, error: string, at: string): GuardState {
  return withEvents(state, [{ type: 'VenueReadFailed', at, venue, error }]);
}

/** Values the account as known now, without deciding anything. */
export function currentValuation(state: GuardState, at: string): Valuation {
  const holdings = Object.fromEntries(Object.entries(state.venues).map(([v, s]) => [v, s.holdings]));
  const { venues, initialCapital, referenceCurrency } = state.config;
  return valuePortfolio(holdings, venues, initialCapital, referenceCurrency, at);
}

/** Venues whose holdings are missing or hold an asset without a price: the guard must read them itself. */
export function venuesNeedingValuation(valuation: Valuation): string[] {
  return [...new Set([...valuation.missingVenues, ...valuation.unpriced.map((u) => u.venue)])];
}

export interface Step {
  state: GuardState;
  commands: BreakerCommand[];
  rejection?: string;
}

function applyTransition(state: GuardState, result: Transition): Step {
  if (result.rejection !== undefined) return { state, commands: [], rejection: result.rejection };
  let next = withEvents({ ...state, breaker: result.state }, result.events);
  for (const command of result.commands) {
    if (command.type === 'EmergencyShutdown') {
      next = {
        ...next,
        pendingShutdown: { closePositions: command.closePositions, orderedAt: result.state.name === 'Triggered' ? result.state.at : '' },
        shutdown: {},
      };
    }
  }
  return { state: next, commands: result.commands };
}

/**
 * Values the account and, if the valuation is complete, feeds it to the breaker. An incomplete valuation (a venue
 * never seen, an asset without a price) never reaches the breaker: a missing venue would look like a loss.
 */
export function evaluate(state: GuardState, at: string): Step & { valuation: Valuation } {
  const valuation = currentValuation(state, at);
  if (!valuation.complete) return { state, commands: [], valuation };
  const counted = { ...state, lastValuation: valuation, counters: { ...state.counters, valuations: state.counters.valuations + 1 } };
  const input: BreakerInput = { type: 'PortfolioUpdate', at, totalValue: valuation.totalValue, lossPct: valuation.lossPct };
  return { ...applyTransition(counted, transition(state.breaker, input, state.config)), valuation };
}

/** An operator's request (reset, disable, enable), checked against the current state. */
export function operate(state: GuardState, input: Extract<BreakerInput, { type: 'ResetRequested' | 'DisableRequested' | 'EnableRequested' }>): Step {
  const step = applyTransition(state, transition(state.breaker, input, state.config));
  if (step.rejection === undefined && input.type === 'ResetRequested') {
    // A reset abandons whatever shutdown work was outstanding; the operator has taken over.
    return { ...step, state: { ...step.state, pendingShutdown: undefined } };
  }
  return step;
}

/** Records one venue's shutdown progress (and a failure event when it fails). */
export function recordShutdownProgress(state: GuardState, venue: string, progress: VenueShutdownProgress): GuardState {
  const next = { ...state, shutdown: { ...state.shutdown, [venue]: progress } };
  if (progress.status === 'failed' && state.shutdown[venue]?.status !== 'failed') {
    return withEvents(next, [{ type: 'VenueShutdownFailed', at: progress.updatedAt, venue, error: progress.lastError ?? 'unknown error' }]);
  }
  return next;
}

/** Records that a sweep while Triggered cancelled orders placed after the trigger. */
export function recordSweep(state: GuardState, venue: string, cancelled: number, at: string): GuardState {
  return cancelled > 0 ? withEvents(state, [{ type: 'OrdersSwept', at, venue, cancelled }]) : state;
}

/** Every venue confirmed flat: the shutdown is done and recorded once. */
export function confirmShutdown(state: GuardState, at: string): GuardState {
  const step = applyTransition(state, transition(state.breaker, { type: 'ShutdownConfirmed', at }, state.config));
  return { ...step.state, pendingShutdown: undefined };
}
