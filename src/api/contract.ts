/**
 * The public contract of portfolio-breaker: names that operators, bots and other Temporal clients type, and the
 * payloads they exchange. Imported by the workflow, the client, the CLI and the tests. Changing anything here is a
 * breaking change for users.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { WatcherObservation } from '../domain/watcher';
import type { AccountConfig, AccountConfigInput, BlindPolicy } from '../domain/config';
import type { BreakerState, BreakerStateName, TripCause } from '../domain/breaker';
import type { Alert, GuardCounters, GuardEvent, GuardState, ReportOutcome, VenueShutdownProgress } from '../domain/guard';
import type { ApproveRequest, OperatorRequest, ResyncRequest } from '../domain/operator';
import type { BalanceReport } from '../domain/report';
import type { DecimalString } from '../domain/money';
import type { GuardStateView } from '../domain/view';

export type {
  AccountConfig,
  AccountConfigInput,
  Alert,
  BalanceReport,
  BlindPolicy,
  BreakerState,
  BreakerStateName,
  DecimalString,
  GuardCounters,
  GuardEvent,
  GuardState,
  GuardStateView,
  ApproveRequest,
  OperatorRequest,
  ResyncRequest,
  TripCause,
  VenueShutdownProgress,
};

/** The task queue every guard and worker uses. */
export const TASK_QUEUE = 'portfolio-breaker';
/** The workflow type name. */
export const WORKFLOW_TYPE = 'accountGuard';

/** The workflow id of an account's guard: `guard-<accountId>`. */
export function guardWorkflowId(accountId: string): string {
  return `guard-${accountId}`;
}

/**
 * Input of the `accountGuard` workflow: `{"config": {...}}`. `state` is set only by continue-as-new: a run started
 * by a client with a state is refused.
 */
export interface GuardInput {
  config: AccountConfigInput;
  /** Carried across continue-as-new; never set it yourself. */
  state?: GuardState;
  /**
   * An operator's signed `configure` of this config (`{ operator, reason, auth }`, signed over `{ config: <canonical
   * JSON of the parsed config> }`), needed when the config differs from the account's last accepted one in the audit
   * log: without it such a guard starts Triggered. `breaker start --key` signs it.
   */
  signedBy?: OperatorRequest;
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

/** What `reportBalances` answers: the resulting state and what became of this report. */
export interface ReportAnswer extends GuardStateView {
  /** accepted, or ignored as a duplicate (same `seq`) or stale (lower `seq`). */
  outcome: ReportOutcome;
}

/** Fire-and-forget report from a bot. Invalid payloads are dropped and recorded as `ReportRejected` events. */
export const balanceReportSignal = defineSignal<[BalanceReport]>('balanceReport');
/** Same payload as {@link balanceReportSignal}; answers with the resulting state or a validation error. */
export const reportBalancesUpdate = defineUpdate<ReportAnswer, [BalanceReport]>('reportBalances');
/**
 * What the guard's watcher sends when it has something to say (a change of level, a breach, a feed falling back to
 * polling, orders on a Triggered account, or its periodic snapshot). Validated like any other input; an observation
 * from a watcher the guard has since replaced is ignored.
 */
export const watcherObservationSignal = defineSignal<[WatcherObservation]>('watcherObservation');
/*
 * Operator actions. A guard whose worker has a trust anchor (every guard started on this version) accepts them only
 * signed (`auth`, see OperatorRequest) by an operator the anchor lists for the account, with that action among their
 * permissions; anything else is refused with an `Unauthorised` failure, recorded (OperatorActionRefused) and alerted.
 */
/** Leave Triggered (the only way out). */
export const resetUpdate = defineUpdate<GuardStateView, [OperatorRequest]>('reset');
/** Switch the breaker off (not allowed while Triggered). */
export const disableUpdate = defineUpdate<GuardStateView, [OperatorRequest]>('disable');
/** Switch a disabled breaker back on. */
export const enableUpdate = defineUpdate<GuardStateView, [OperatorRequest]>('enable');
/** Trip the breaker now: the manual kill switch. Same shutdown and events as a loss trip, with the reason recorded. */
export const haltUpdate = defineUpdate<GuardStateView, [OperatorRequest]>('halt');
/**
 * Set a venue's last accepted `seq` (a number, or null to accept the next report whatever its `seq`): for a bot that
 * restarted its sequence, or after a report with a runaway `seq`.
 */
export const resyncSeqUpdate = defineUpdate<GuardStateView, [ResyncRequest]>('resyncSeq');
/**
 * A second operator approves a pending reset or disable (accounts whose anchor requires it): `requestId` is the id
 * `pendingApprovals` in state lists; the approver must be a different operator allowed the same action.
 */
export const approveUpdate = defineUpdate<GuardStateView, [ApproveRequest]>('approve');
/** The current state; always answers. */
export const stateQuery = defineQuery<GuardStateView>('state');
/** The guard's whole state as carried across continue-as-new (config, per-venue seq and holdings, events); for diagnostics. */
export const snapshotQuery = defineQuery<GuardState>('snapshot');
/** Recent events (risk events, rejected reports, venue failures), newest last. */
export const eventsQuery = defineQuery<GuardEvent[]>('events');
