/**
 * A typed client for bots and operators. Any Temporal client can drive a guard (see the README for the `temporal`
 * CLI); this one adds types and the naming conventions.
 */
import { randomUUID } from 'node:crypto';
import {
  Client,
  ServiceError,
  WorkflowHandle,
  WorkflowHandleWithFirstExecutionRunId,
  WorkflowIdConflictPolicy,
  isGrpcServiceError,
} from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import {
  AccountConfigInput,
  BalanceReport,
  BreakerAccountAttribute,
  BreakerStateAttribute,
  GuardEvent,
  GuardStateView,
  OperatorRequest,
  ReportAnswer,
  ResyncRequest,
  TASK_QUEUE,
  balanceReportSignal,
  disableUpdate,
  enableUpdate,
  eventsQuery,
  guardWorkflowId,
  haltUpdate,
  resyncSeqUpdate,
  snapshotQuery,
  reportBalancesUpdate,
  resetUpdate,
  stateQuery,
  approveUpdate,
} from '../api/contract';
import { AccountConfig, parseAccountConfig } from '../domain/config';
import type { ApproveRequest } from '../domain/operator';
import { signBotReport, signOperatorRequest } from '../trust/sign-request';
import { canonicalJson } from '../domain/signing';
import type { accountGuard } from '../workflows/account-guard';

/** Starting a guard for an account whose guard already runs with another config. */
export class GuardConfigMismatchError extends Error {
  constructor(
    readonly accountId: string,
    /** Top-level config fields that differ, e.g. ["thresholdPct"]. */
    readonly fields: string[],
  ) {
    super(
      `the guard of ${accountId} is already running with a different config (${fields.join(', ')} differ); ` +
        'nothing was changed: terminate it first if you mean to replace it',
    );
    this.name = 'GuardConfigMismatchError';
  }
}

/** JSON with object keys sorted, so that two equal configs compare equal whatever order their keys came in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Top-level fields whose values differ. */
function differingFields(a: AccountConfig, b: AccountConfig): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])] as (keyof AccountConfig)[];
  return keys.filter((k) => canonical(a[k]) !== canonical(b[k]));
}

/** How often an update aborted by the continue-as-new race is sent again, and the pause before each try. */
const UPDATE_ATTEMPTS = 5;
const UPDATE_RETRY_MS = 200;

/**
 * True when the server aborted an update because the workflow task carrying it failed: the benign race where a
 * message arrives while the guard's continue-as-new task completes (the server fails that task with
 * UNHANDLED_COMMAND and answers its updates FAILED_PRECONDITION). The update was never decided; sending it again
 * with the same update id is safe.
 */
export function isUpdateAbortedByTaskFailure(err: unknown): boolean {
  const cause = err instanceof ServiceError ? err.cause : undefined;
  return isGrpcServiceError(cause) && cause.code === 9 && /unexpected workflow task failure/.test(cause.details ?? cause.message);
}

/** A key this client signs with: an operator's (or a bot's) id in the trust anchor and its secret key. */
export interface SigningKey {
  id: string;
  secretKey: string;
}

export interface BreakerClientOptions {
  /**
   * Operator keys this client holds: an operator request (reset, disable, ...) is signed with the key whose id is the
   * request's `operator`. A request that already carries `auth`, or names an operator with no key here, is sent as
   * it is (and a guard with a trust anchor refuses it unsigned).
   */
  operatorKeys?: SigningKey[];
  /** A bot key: reports are signed with it (for accounts whose anchor lists bot keys). */
  botKey?: SigningKey;
}

export class BreakerClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string = TASK_QUEUE,
    private readonly options: BreakerClientOptions = {},
  ) {}

  /** The request, signed for this account and action when this client holds the key of the operator it names. */
  private signed<R extends OperatorRequest>(accountId: string, action: string, request: R): R {
    if (request.auth) return request;
    const key = this.options.operatorKeys?.find((k) => k.id === request.operator.trim());
    if (!key) return request;
    const { operator, reason, ...args } = request;
    return signOperatorRequest({ accountId, action, operator, reason, args, secretKey: key.secretKey }) as unknown as R;
  }

  private signedReport(accountId: string, report: BalanceReport): BalanceReport {
    const bot = this.options.botKey;
    return bot && !report.auth ? signBotReport(accountId, report, bot.id, bot.secretKey) : report;
  }

  handle(accountId: string): WorkflowHandle<typeof accountGuard> {
    return this.client.workflow.getHandle(guardWorkflowId(accountId));
  }

  /**
   * Runs an update, sending it again (same update id, so the server never runs it twice) when the continue-as-new
   * race aborted it; any other failure, the guard's refusals included, is thrown at once.
   */
  private async update<R, A>(accountId: string, definition: UpdateDefinition<R, [A]>, arg: A): Promise<R> {
    const updateId = randomUUID();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.handle(accountId).executeUpdate(definition, { args: [arg], updateId });
      } catch (err) {
        if (attempt >= UPDATE_ATTEMPTS || !isUpdateAbortedByTaskFailure(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, UPDATE_RETRY_MS * attempt));
      }
    }
  }

  /**
   * Starts the guard of an account, or returns the running one when it runs with the same config (starting twice is
   * harmless).
   * @throws Error with every config problem when the config is invalid (nothing is started)
   * @throws GuardConfigMismatchError when the account's guard already runs with a different config
   */
  async startGuard(config: AccountConfigInput, signedBy?: { operator: string; reason: string }): Promise<WorkflowHandleWithFirstExecutionRunId<typeof accountGuard>> {
    const parsed = parseAccountConfig(config);
    if (!parsed.ok) throw new Error(`invalid account config: ${parsed.error}`);
    // A config other than the account's last accepted one needs an operator's signed configure (else the guard starts
    // Triggered): signed over the canonical JSON of the config exactly as the guard parses it.
    const signature = signedBy ? this.signed<OperatorRequest & { config: string }>(parsed.value.accountId, 'configure', { ...signedBy, config: canonicalJson(parsed.value) }) : undefined;
    if (signature && !signature.auth) throw new Error(`startGuard: this client holds no key of operator ${JSON.stringify(signedBy!.operator)} to sign the config with`);
    const signedInput = signature ? { signedBy: { operator: signature.operator, reason: signature.reason, auth: signature.auth } } : {};
    const handle = await this.client.workflow.start<typeof accountGuard>('accountGuard', {
      workflowId: guardWorkflowId(parsed.value.accountId),
      taskQueue: this.taskQueue,
      args: [{ config: parsed.value, ...signedInput }],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      typedSearchAttributes: [
        { key: BreakerStateAttribute, value: 'Active' },
        { key: BreakerAccountAttribute, value: parsed.value.accountId },
      ],
    });
    // USE_EXISTING returns a running guard as it is: say so when it is not guarding with this config.
    const running = (await handle.query(snapshotQuery)).config;
    const fields = differingFields(running, parsed.value);
    if (fields.length > 0) throw new GuardConfigMismatchError(parsed.value.accountId, fields);
    return handle;
  }

  /** Sends a report and waits for the resulting state (rejects with the validation error for a bad payload). */
  report(accountId: string, report: BalanceReport): Promise<ReportAnswer> {
    return this.update(accountId, reportBalancesUpdate, this.signedReport(accountId, report));
  }

  /** Fire-and-forget report. */
  signalReport(accountId: string, report: BalanceReport): Promise<void> {
    return this.handle(accountId).signal(balanceReportSignal, this.signedReport(accountId, report));
  }

  state(accountId: string): Promise<GuardStateView> {
    return this.handle(accountId).query(stateQuery);
  }

  events(accountId: string): Promise<GuardEvent[]> {
    return this.handle(accountId).query(eventsQuery);
  }

  reset(accountId: string, request: OperatorRequest): Promise<GuardStateView> {
    return this.update(accountId, resetUpdate, this.signed(accountId, 'reset', request));
  }

  disable(accountId: string, request: OperatorRequest): Promise<GuardStateView> {
    return this.update(accountId, disableUpdate, this.signed(accountId, 'disable', request));
  }

  enable(accountId: string, request: OperatorRequest): Promise<GuardStateView> {
    return this.update(accountId, enableUpdate, this.signed(accountId, 'enable', request));
  }

  /** Trips the breaker now (the manual kill switch). */
  halt(accountId: string, request: OperatorRequest): Promise<GuardStateView> {
    return this.update(accountId, haltUpdate, this.signed(accountId, 'halt', request));
  }

  /** Sets a venue's last accepted `seq` (null: accept the next report whatever its `seq`). */
  resyncSeq(accountId: string, request: ResyncRequest): Promise<GuardStateView> {
    return this.update(accountId, resyncSeqUpdate, this.signed(accountId, 'resyncSeq', request));
  }

  /** Approves another operator's pending reset or disable (`requestId` from state's `pendingApprovals`). */
  approve(accountId: string, request: ApproveRequest): Promise<GuardStateView> {
    return this.update(accountId, approveUpdate, this.signed(accountId, 'approve', request));
  }
}
