/**
 * The breaker state machine: a pure `transition(state, input, limits)` that decides and executes nothing.
 *
 * Boundaries are inclusive: a loss of exactly the warning level warns, a loss of exactly the threshold trips.
 * For a risk limit the safe side of "equal" is the side that acts.
 *
 * Triggered is latched: only an operator's reset leaves it. Portfolio updates, enables and disables do not.
 *
 * A breaker trips for one of three causes: a loss at or beyond the threshold, a valuation that has been blind (a
 * venue or price unknown or stale) for too long under the fail-closed policy, or an operator's halt.
 */
import { Decimal, DecimalString } from './money';

/** Breaker state names, as shown in queries and in the `BreakerState` search attribute. */
export const BreakerStateName = {
  Active: 'Active',
  Warning: 'Warning',
  Triggered: 'Triggered',
  Disabled: 'Disabled',
} as const;
export type BreakerStateName = (typeof BreakerStateName)[keyof typeof BreakerStateName];

/** Whether the emergency shutdown after a trigger is still running or every venue has confirmed zero open orders. */
export type ShutdownStatus = 'inProgress' | 'flat';

/**
 * Why a breaker warns or trips. `recalled`: a run started (after a termination, or a history reset) while the audit
 * log, which lives outside Temporal, holds a trip no signed reset has cleared.
 */
export type TripCause = 'loss' | 'blind' | 'halt' | 'recalled';

/** A level the account has reached: from its loss, or from how long the valuation has been blind. */
export type RiskLevel = 'ok' | 'warning' | 'breach';

/** Each state carries only its own fields; the whole union round-trips through JSON. */
export type BreakerState =
  | { name: 'Active' }
  | { name: 'Warning'; since: string; cause: Exclude<TripCause, 'halt' | 'recalled'> }
  | {
      name: 'Triggered';
      at: string;
      cause: TripCause;
      /** In words: the loss, what the guard could not value, or the operator's reason. */
      reason: string;
      /** The loss (percent of capital) and total value when it tripped; null when no valuation was possible. */
      lossPct: DecimalString | null;
      totalValue: DecimalString | null;
      shutdown: ShutdownStatus;
      flatAt?: string;
    }
  | { name: 'Disabled'; at: string; operator: string; reason: string };

/** What can happen to a breaker. `at` is an ISO-8601 timestamp supplied by the caller (the workflow clock). */
export type BreakerInput =
  | {
      type: 'PortfolioUpdate';
      at: string;
      /** Null when the account cannot be valued at all (a venue never read). */
      totalValue: DecimalString | null;
      lossPct: DecimalString | null;
      /** Set while the valuation is blind under the fail-closed policy: the level that blindness has reached. */
      blind?: { level: Exclude<RiskLevel, 'ok'>; reason: string };
    }
  | { type: 'ResetRequested'; at: string; operator: string; reason: string }
  /** An operator trips the breaker now (the manual kill switch). */
  | { type: 'HaltRequested'; at: string; operator: string; reason: string; lossPct: DecimalString | null; totalValue: DecimalString | null }
  | { type: 'DisableRequested'; at: string; operator: string; reason: string }
  | { type: 'EnableRequested'; at: string; operator: string; reason: string }
  /** Every venue confirmed zero open orders (and zero positions when auto-close is on). */
  | { type: 'ShutdownConfirmed'; at: string }
  /** The audit log holds a trip of this account that no reset cleared: the breaker is Triggered again. */
  | { type: 'TripRecalled'; at: string; reason: string; lossPct: DecimalString | null; totalValue: DecimalString | null };
export type BreakerInputType = BreakerInput['type'];

/** Risk events the breaker records; the names of the original design are kept. */
export type RiskEvent =
  | { type: 'WarningTriggered'; at: string; cause: Exclude<TripCause, 'halt' | 'recalled'>; reason: string; lossPct: DecimalString | null; totalValue: DecimalString | null }
  | { type: 'WarningCleared'; at: string; lossPct: DecimalString | null; totalValue: DecimalString | null }
  | {
      type: 'CircuitBreakerTriggered';
      at: string;
      cause: TripCause;
      reason: string;
      lossPct: DecimalString | null;
      totalValue: DecimalString | null;
      /** Who halted it (cause "halt"). */
      operator?: string;
    }
  | { type: 'CircuitBreakerReset'; at: string; operator: string; reason: string }
  | { type: 'SystemShutdown'; at: string }
  | { type: 'BreakerDisabled'; at: string; operator: string; reason: string }
  | { type: 'BreakerEnabled'; at: string; operator: string; reason: string };

/** Work the shell must do. */
export type BreakerCommand = { type: 'EmergencyShutdown'; closePositions: boolean };

export interface BreakerLimits {
  /** Loss in percent of capital at which the breaker warns (inclusive). */
  warningPct: DecimalString;
  /** Loss in percent of capital at which the breaker trips (inclusive). */
  thresholdPct: DecimalString;
  autoClosePositions: boolean;
}

export interface Transition {
  state: BreakerState;
  events: RiskEvent[];
  commands: BreakerCommand[];
  /** Set when the input is not allowed in this state; `state` is then unchanged and nothing is recorded. */
  rejection?: string;
}

export function assertNever(value: never): never {
  throw new Error(`Unexpected value: ${JSON.stringify(value)}`);
}

const stay = (state: BreakerState): Transition => ({ state, events: [], commands: [] });
const reject = (state: BreakerState, rejection: string): Transition => ({ state, events: [], commands: [], rejection });

/** The level a loss has reached against the limits. */
export function lossLevel(lossPct: DecimalString, limits: BreakerLimits): RiskLevel {
  const loss = new Decimal(lossPct);
  if (loss.gte(limits.thresholdPct)) return 'breach';
  if (loss.gte(limits.warningPct)) return 'warning';
  return 'ok';
}

const RANK: Record<RiskLevel, number> = { ok: 0, warning: 1, breach: 2 };

/** The account's level and what put it there: the worse of the loss and the blindness; the loss wins a tie. */
function assess(input: Extract<BreakerInput, { type: 'PortfolioUpdate' }>, limits: BreakerLimits): { level: RiskLevel; cause: 'loss' | 'blind'; reason: string } {
  const byLoss = input.lossPct === null ? 'ok' : lossLevel(input.lossPct, limits);
  if (input.blind && RANK[input.blind.level] > RANK[byLoss]) return { level: input.blind.level, cause: 'blind', reason: input.blind.reason };
  const loss = input.lossPct === null ? '' : `loss ${new Decimal(input.lossPct).toFixed(2)} % of capital`;
  const limit = byLoss === 'breach' ? ` (threshold ${limits.thresholdPct} %)` : byLoss === 'warning' ? ` (warning at ${limits.warningPct} %)` : '';
  return { level: byLoss, cause: 'loss', reason: `${loss}${limit}` };
}

function onPortfolioUpdate(
  state: BreakerState,
  input: Extract<BreakerInput, { type: 'PortfolioUpdate' }>,
  limits: BreakerLimits,
): Transition {
  const { at, lossPct, totalValue } = input;
  switch (state.name) {
    case 'Triggered': // latched
    case 'Disabled': // an operator switched the breaker off; values are still recorded by the guard
      return stay(state);
    case 'Active':
    case 'Warning': {
      // Nothing known (a venue never valued, blindness not yet escalated) is no news: it clears nothing.
      if (input.lossPct === null && input.blind === undefined) return stay(state);
      const { level, cause, reason } = assess(input, limits);
      if (level === 'breach') return trip(at, cause, reason, lossPct, totalValue, limits);
      if (level === 'warning') {
        if (state.name === 'Warning' && state.cause === cause) return stay(state);
        return {
          state: { name: 'Warning', since: state.name === 'Warning' ? state.since : at, cause },
          events: state.name === 'Warning' ? [] : [{ type: 'WarningTriggered', at, cause, reason, lossPct, totalValue }],
          commands: [],
        };
      }
      if (state.name === 'Active') return stay(state);
      return { state: { name: 'Active' }, events: [{ type: 'WarningCleared', at, lossPct, totalValue }], commands: [] };
    }
    default:
      return assertNever(state);
  }
}

function trip(
  at: string,
  cause: TripCause,
  reason: string,
  lossPct: DecimalString | null,
  totalValue: DecimalString | null,
  limits: BreakerLimits,
  operator?: string,
): Transition {
  return {
    state: { name: 'Triggered', at, cause, reason, lossPct, totalValue, shutdown: 'inProgress' },
    events: [{ type: 'CircuitBreakerTriggered', at, cause, reason, lossPct, totalValue, ...(operator !== undefined ? { operator } : {}) }],
    commands: [{ type: 'EmergencyShutdown', closePositions: limits.autoClosePositions }],
  };
}

/**
 * Decides what a breaker does with one input. Pure and deterministic: no clock, no I/O, no randomness.
 *
 * @param state the current state
 * @param input what happened
 * @param limits the account's warning and trip levels
 * @returns the next state, the risk events to record, the commands to run, or a rejection
 */
export function transition(state: BreakerState, input: BreakerInput, limits: BreakerLimits): Transition {
  switch (input.type) {
    case 'PortfolioUpdate':
      return onPortfolioUpdate(state, input, limits);
    case 'ResetRequested': {
      if (state.name !== 'Triggered') return reject(state, `reset applies only to a Triggered breaker; it is ${state.name}`);
      const { at, operator, reason } = input;
      return { state: { name: 'Active' }, events: [{ type: 'CircuitBreakerReset', at, operator, reason }], commands: [] };
    }
    case 'HaltRequested': {
      if (state.name === 'Triggered') return reject(state, 'the breaker is already Triggered');
      // A halt tightens protection, so it is allowed from every other state, Disabled included.
      const { at, operator, reason, lossPct, totalValue } = input;
      return trip(at, 'halt', `halted by ${operator}: ${reason}`, lossPct, totalValue, limits, operator);
    }
    case 'DisableRequested': {
      if (state.name === 'Triggered') {
        return reject(state, 'a Triggered breaker cannot be disabled; reset it first (the latch is the point)');
      }
      if (state.name === 'Disabled') return reject(state, 'the breaker is already Disabled');
      const { at, operator, reason } = input;
      return {
        state: { name: 'Disabled', at, operator, reason },
        events: [{ type: 'BreakerDisabled', at, operator, reason }],
        commands: [],
      };
    }
    case 'EnableRequested': {
      if (state.name !== 'Disabled') return reject(state, `enable applies only to a Disabled breaker; it is ${state.name}`);
      const { at, operator, reason } = input;
      // Back to Active; the next valuation decides whether the account is in warning or breach.
      return { state: { name: 'Active' }, events: [{ type: 'BreakerEnabled', at, operator, reason }], commands: [] };
    }
    case 'TripRecalled': {
      // The latch outlives the run: from any state (Disabled included: a history reset may have brought it back).
      if (state.name === 'Triggered') return stay(state);
      return trip(input.at, 'recalled', input.reason, input.lossPct, input.totalValue, limits);
    }
    case 'ShutdownConfirmed': {
      // Only the first confirmation after a trigger is an event; a confirmation that arrives after a reset is stale.
      if (state.name !== 'Triggered' || state.shutdown === 'flat') return stay(state);
      return { state: { ...state, shutdown: 'flat', flatAt: input.at }, events: [{ type: 'SystemShutdown', at: input.at }], commands: [] };
    }
    default:
      return assertNever(input);
  }
}
