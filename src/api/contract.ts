/**
 * The public contract of portfolio-breaker: names that operators, bots and other Temporal clients type, and the
 * payloads they exchange. Imported by the workflow, the client, the CLI and the tests. Changing anything here is a
 * breaking change for users.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AccountConfig, AccountConfigInput } from '../domain/config';
import type { BreakerState, BreakerStateName } from '../domain/breaker';
import type { GuardCounters, GuardEvent, GuardState, VenueShutdownProgress } from '../domain/guard';
import type { BalanceReport } from '../domain/report';
import type { DecimalString } from '../domain/money';

export type { AccountConfig, AccountConfigInput, BalanceReport, BreakerStateName, GuardEvent, GuardState, DecimalString };

/** The task queue every guard and worker uses. */
export const TASK_QUEUE = 'portfolio-breaker';
/** The workflow type name. */
export const WORKFLOW_TYPE = 'accountGuard';

/** The workflow id of an account's guard: `guard-<accountId>`. */
export function guardWorkflowId(accountId: string): string {
  return `guard-${accountId}`;
}

/** Input of the `accountGuard` workflow. `state` is set only by continue-as-new. */
export interface GuardInput {
  config: AccountConfigInput;
  /** Carried across continue-as-new; never set it yourself. */
  state?: GuardState;
}

/** Search attributes the guard keeps current, so the Temporal UI and `temporal workflow list` find accounts. */
export const SEARCH_ATTRIBUTE_DEFINITIONS = {
  BreakerState: 'Keyword',
  BreakerLossPct: 'Double',
  BreakerAccount: 'Keyword',
} as const;
export const BreakerStateAttribute = defineSearchAttributeKey('BreakerState', 'KEYWORD');
export const BreakerLossPctAttribute = defineSearchAttributeKey('BreakerLossPct', 'DOUBLE');
export const BreakerAccountAttribute = defineSearchAttributeKey('BreakerAccount', 'KEYWORD');

/** Operator actions carry who and why; both end up in the guard's events. */
export interface OperatorRequest {
  operator: string;
  reason: string;
}

/** What the `state` query (and every update) answers. */
export interface GuardStateView {
  accountId: string;
  /** Active, Warning, Triggered or Disabled. */
  state: BreakerStateName;
  breaker: BreakerState;
  referenceCurrency: string;
  initialCapital: DecimalString;
  warningPct: DecimalString;
  thresholdPct: DecimalString;
  /** Loss in percent of capital, two decimals, from the last complete valuation; negative when up. */
  lossPct: DecimalString | null;
  totalValue: DecimalString | null;
  pnl: DecimalString | null;
  lastValuationAt: string | null;
  perVenueValue: Record<string, DecimalString>;
  /** Per venue: last accepted `seq`. */
  lastSeq: Record<string, number | null>;
  /** Emergency-shutdown progress per venue (empty until the breaker trips). */
  shutdown: Record<string, VenueShutdownProgress>;
  shutdownInProgress: boolean;
  counters: GuardCounters;
}

/** What `reportBalances` answers: the resulting state and what became of this report. */
export interface ReportAnswer extends GuardStateView {
  /** accepted, or ignored as a duplicate (same `seq`) or stale (lower `seq`). */
  outcome: 'accepted' | 'duplicate' | 'stale';
}

/** An alert the guard raises (trip, venue refusing credentials, ...). Carries no secrets. */
export interface Alert {
  kind: 'CircuitBreakerTriggered' | 'VenueAuthFailed' | 'VenueRejected' | 'ShutdownComplete';
  accountId: string;
  venue?: string;
  message: string;
  at: string;
}

/** Fire-and-forget report from a bot. Invalid payloads are dropped and recorded as `ReportRejected` events. */
export const balanceReportSignal = defineSignal<[BalanceReport]>('balanceReport');
/** Same payload as {@link balanceReportSignal}; answers with the resulting state or a validation error. */
export const reportBalancesUpdate = defineUpdate<ReportAnswer, [BalanceReport]>('reportBalances');
/** Leave Triggered (the only way out). */
export const resetUpdate = defineUpdate<GuardStateView, [OperatorRequest]>('reset');
/** Switch the breaker off (not allowed while Triggered). */
export const disableUpdate = defineUpdate<GuardStateView, [OperatorRequest]>('disable');
/** Switch a disabled breaker back on. */
export const enableUpdate = defineUpdate<GuardStateView, [OperatorRequest]>('enable');
/** The current state; always answers. */
export const stateQuery = defineQuery<GuardStateView>('state');
/** The guard's whole state as carried across continue-as-new (config, per-venue seq and holdings, events); for diagnostics. */
export const snapshotQuery = defineQuery<GuardState>('snapshot');
/** Recent events (risk events, rejected reports, venue failures), newest last. */
export const eventsQuery = defineQuery<GuardEvent[]>('events');
