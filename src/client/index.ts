/**
 * A typed client for bots and operators. Any Temporal client can drive a guard (see the README for the `temporal`
 * CLI); this one adds types and the naming conventions.
 */
import { Client, WorkflowHandle, WorkflowHandleWithFirstExecutionRunId, WorkflowIdConflictPolicy } from '@temporalio/client';
import {
  AccountConfigInput,
  BalanceReport,
  BreakerAccountAttribute,
  BreakerStateAttribute,
  GuardEvent,
  GuardStateView,
  OperatorRequest,
  ReportAnswer,
  TASK_QUEUE,
  balanceReportSignal,
  disableUpdate,
  enableUpdate,
  eventsQuery,
  guardWorkflowId,
  reportBalancesUpdate,
  resetUpdate,
  stateQuery,
} from '../api/contract';
import { parseAccountConfig } from '../domain/config';
import type { accountGuard } from '../workflows/account-guard';

export class BreakerClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string = TASK_QUEUE,
  ) {}

  handle(accountId: string): WorkflowHandle<typeof accountGuard> {
    return this.client.workflow.getHandle(guardWorkflowId(accountId));
  }

  /**
   * Starts the guard of an account, or returns the running one (starting twice is harmless).
   * @throws Error with every config problem when the config is invalid (nothing is started)
   */
  async startGuard(config: AccountConfigInput): Promise<WorkflowHandleWithFirstExecutionRunId<typeof accountGuard>> {
    const parsed = parseAccountConfig(config);
    if (!parsed.ok) throw new Error(`invalid account config: ${parsed.error}`);
    return this.client.workflow.start<typeof accountGuard>('accountGuard', {
      workflowId: guardWorkflowId(parsed.value.accountId),
      taskQueue: this.taskQueue,
      args: [{ config: parsed.value }],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      typedSearchAttributes: [
        { key: BreakerStateAttribute, value: 'Active' },
        { key: BreakerAccountAttribute, value: parsed.value.accountId },
      ],
    });
  }

  /** Sends a report and waits for the resulting state (rejects with the validation error for a bad payload). */
  report(accountId: string, report: BalanceReport): Promise<ReportAnswer> {
    return this.handle(accountId).executeUpdate(reportBalancesUpdate, { args: [report] });
  }

  /** Fire-and-forget report. */
  signalReport(accountId: string, report: BalanceReport): Promise<void> {
    return this.handle(accountId).signal(balanceReportSignal, report);
  }

  state(accountId: string): Promise<GuardStateView> {
    return this.handle(accountId).query(stateQuery);
  }

  events(accountId: string): Promise<GuardEvent[]> {
    return this.handle(accountId).query(eventsQuery);
  }

  reset(accountId: string, request: OperatorRequest): Promise<GuardStateView> {
    return this.handle(accountId).executeUpdate(resetUpdate, { args: [request] });
  }

  disable(accountId: string, request: OperatorRequest): Promise<GuardStateView> {
    return this.handle(accountId).executeUpdate(disableUpdate, { args: [request] });
  }

  enable(accountId: string, request: OperatorRequest): Promise<GuardStateView> {
    return this.handle(accountId).executeUpdate(enableUpdate, { args: [request] });
  }
}
