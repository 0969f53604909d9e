/**
 * The workflow tier: the real guard workflow (the prebuilt bundle, with the guard's payload converter) on the shared
 * Temporal dev server, with stub activities the test drives. No exchange, no ccxt: every branch of the workflow
 * (reads failing or hanging, venues refusing the shutdown, late orders, alerts that fail) is one switch away and
 * runs in seconds.
 *
 *   const h = await startWorkflowHarness('smoke');
 *   h.stubs.venue('spot').setHoldings({ balances: { USDT: '6000' } }).setOpenOrders(3);
 *   await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: ['spot'] });
 *   ...
 *   expect(await h.historyHasFailedWorkflowTask(h.breaker.handle(accountId))).toEqual([]);
 *   await h.stop();
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { CancelPass, ClosePass, GuardActivities, VenueReading } from '../../src/activities';
import type { Alert } from '../../src/api/contract';
import type { WatcherPlan } from '../../src/domain/watcher';
import { VenueFailureType } from '../../src/api/failures';
import { BreakerClient } from '../../src/client';
import { payloadConverterPath } from '../../src/worker-factory';
import { pollUntil } from '../../tooling/poll';
import { RehearsalKey, rehearsalKey, rehearsalTrustAnchor } from '../../tooling/rehearsal-trust';
import type { AuditEntry } from '../../src/domain/audit';
import type { OperatorActionName, TrustView } from '../../src/domain/trust';
import type { TrustAnchor } from '../../src/trust/anchor';
import { append as appendAudit } from '../../src/audit/log';
import { TrustLoad, loadTrustFor } from '../../src/trust/load';

/** The activities a venue stub answers. */
export type VenueActivity = 'readVenue' | 'cancelAllOpenOrders' | 'closePositions';

/** A failure a stub throws: an ApplicationFailure with one of the venue failure types the real activities raise. */
export interface StubFailure {
  type: VenueFailureType;
  /** @default "<venue>: stub <type>" */
  message?: string;
  /**
   * Non-retryable failures reach the workflow at once; retryable ones are retried by the workflow's retry policy
   * (reads: 5 attempts over ~15 s; cancels and closes: for ever).
   * @default false, except VenueAuthFailed and VenueRejected, which the real activities never retry
   */
  nonRetryable?: boolean;
}

/** What a venue read returns (the stub adds `venue` and `asOf`). */
export type StubHoldings = Pick<VenueReading, 'balances'> & Partial<Pick<VenueReading, 'prices' | 'positions'>>;

/** One call of a stub activity, in the order the worker ran them. */
export interface StubCall {
  activity: VenueActivity | 'sendAlert' | 'watchAccount';
  venue?: string;
  /** Temporal's attempt number (1 for the first try). */
  attempt: number;
  at: number;
}

type Behaviour = { kind: 'answer' } | { kind: 'fail'; failure: StubFailure } | { kind: 'hang'; gate: Gate };

/** A promise the test opens; hanging stubs wait on it (or on their own cancellation). */
class Gate {
  readonly opened: Promise<void>;
  open!: () => void;
  constructor() {
    this.opened = new Promise((resolve) => (this.open = resolve));
  }
}

/**
 * Waits for `gate` while heartbeating, so that a hanging stub ends as soon as its activity is cancelled: by the
 * workflow, by a heartbeat timeout seen by the server, or by the worker shutting down (which cancels running
 * activities at once, the grace time being 0).
 */
async function hangUntil(gate: Gate): Promise<void> {
  const ctx = Context.current();
  ctx.heartbeat();
  const beat = setInterval(() => ctx.heartbeat(), 500);
  try {
    await Promise.race([gate.opened, ctx.cancelled]);
  } finally {
    clearInterval(beat);
  }
}

function toFailure(venue: string, failure: StubFailure): ApplicationFailure {
  const nonRetryable = failure.nonRetryable ?? (failure.type === VenueFailureType.AuthFailed || failure.type === VenueFailureType.Rejected);
  return ApplicationFailure.create({
    type: failure.type,
    message: failure.message ?? `${venue}: stub ${failure.type}`,
    nonRetryable,
    details: [{ venue, errorClass: 'StubFailure' }],
  });
}

/** One venue as the stub activities see it. Setters return `this` so that a venue is set up in one expression. */
export class VenueStub {
  /** What a read returns; a read of a venue without holdings fails (non-retryable VenueRejected), never "zero". */
  holdings: StubHoldings | undefined;
  /** Open orders, normal and conditional: the next cancel pass cancels them all. */
  openOrders = 0;
  /** Orders a pass cannot clear (a bot re-placing them at once): reported open after every pass while > 0. */
  stubbornOrders = 0;
  /** Open positions: the next close pass closes them all. */
  openPositions = 0;
  /** Orders cancelled and positions closed by all passes so far. */
  cancelled = 0;
  closed = 0;
  /** Calls per activity, every attempt counted. */
  readonly calls: Record<VenueActivity, number> = { readVenue: 0, cancelAllOpenOrders: 0, closePositions: 0 };
  private readonly behaviour: Record<VenueActivity, Behaviour> = {
    readVenue: { kind: 'answer' },
    cancelAllOpenOrders: { kind: 'answer' },
    closePositions: { kind: 'answer' },
  };

  constructor(readonly id: string) {}

  setHoldings(holdings: StubHoldings): this {
    this.holdings = holdings;
    return this;
  }

  setOpenOrders(count: number): this {
    this.openOrders = count;
    return this;
  }

  /** Orders placed after a trip (a bot that has not stopped): the next sweep must find and cancel them. */
  addLateOrders(count: number): this {
    this.openOrders += count;
    return this;
  }

  setStubbornOrders(count: number): this {
    this.stubbornOrders = count;
    return this;
  }

  setOpenPositions(count: number): this {
    this.openPositions = count;
    return this;
  }

  /** Makes every call of `activity` throw `failure` until {@link answer} or {@link hang}. */
  fail(activity: VenueActivity, failure: StubFailure): this {
    this.behaviour[activity] = { kind: 'fail', failure };
    return this;
  }

  /** Reads fail with `failure` (e.g. `{ type: VenueFailureType.Unavailable }`, retried by the workflow). */
  failReads(failure: StubFailure): this {
    return this.fail('readVenue', failure);
  }

  /** The venue refuses the emergency shutdown: non-retryable VenueAuthFailed, as for a revoked API key. */
  refuseCancels(message?: string): this {
    return this.fail('cancelAllOpenOrders', { type: VenueFailureType.AuthFailed, nonRetryable: true, ...(message ? { message } : {}) });
  }

  /** Makes calls of `activity` wait until {@link release} (or until they are cancelled). */
  hang(activity: VenueActivity): this {
    if (this.behaviour[activity].kind !== 'hang') this.behaviour[activity] = { kind: 'hang', gate: new Gate() };
    return this;
  }

  /** Lets hanging calls of `activity` go on (they answer) and later calls answer at once. */
  release(activity: VenueActivity): this {
    const current = this.behaviour[activity];
    this.behaviour[activity] = { kind: 'answer' };
    if (current.kind === 'hang') current.gate.open();
    return this;
  }

  /** Back to answering normally (ends a {@link fail}; releases a {@link hang}). */
  answer(activity: VenueActivity): this {
    return this.release(activity);
  }

  /** @internal What a call does before answering: throw, wait, or nothing. */
  async enter(activity: VenueActivity): Promise<void> {
    this.calls[activity] += 1;
    for (;;) {
      const behaviour = this.behaviour[activity];
      if (behaviour.kind === 'answer') return;
      if (behaviour.kind === 'fail') throw toFailure(this.id, behaviour.failure);
      // Released: the behaviour set by then decides (answer, or a failure set meanwhile).
      await hangUntil(behaviour.gate);
    }
  }
}

export type AlertMode = 'deliver' | 'fail' | 'hang';

/** The alert channel. */
export class AlertStub {
  /** Every alert the activity was called with, every attempt, whatever the mode. */
  readonly received: Alert[] = [];
  /** Alerts whose delivery succeeded. */
  readonly delivered: Alert[] = [];
  private mode: AlertMode = 'deliver';
  private gate = new Gate();

  /**
   * deliver: record and succeed; fail: throw (a retryable Error, as an unreachable webhook does); hang: never answer
   * until the mode changes (or the activity is cancelled, e.g. by its start-to-close timeout or the worker stopping).
   */
  setMode(mode: AlertMode): this {
    this.mode = mode;
    if (mode !== 'hang') {
      this.gate.open();
      this.gate = new Gate();
    }
    return this;
  }

  kinds(): Alert['kind'][] {
    return this.received.map((a) => a.kind);
  }

  /** @internal */
  async deliver(alert: Alert): Promise<void> {
    this.received.push(alert);
    while (this.mode === 'hang') await hangUntil(this.gate);
    if (this.mode === 'fail') throw new Error('stub: alert webhook answered 503');
    this.delivered.push(alert);
  }
}

/**
 * The watcher stub: records each watcher the guard starts and runs it (heartbeating) until the guard cancels it,
 * the test ends it, or the test makes it fail. The test speaks for it by sending `watcherObservation` signals.
 */
export class WatcherStub {
  /** Every watcher started, in order (each attempt). */
  readonly plans: WatcherPlan[] = [];
  /** Generations whose activity saw its cancellation. */
  readonly cancelled: number[] = [];
  private failWith: string | null = null;
  private gate = new Gate();

  /** Makes running and future watchers fail with this message (null: run normally). */
  setFailure(message: string | null): this {
    this.failWith = message;
    this.gate.open();
    this.gate = new Gate();
    return this;
  }

  /** Ends every running watcher normally (as its hand-over after hours does). */
  endAll(): void {
    this.gate.open();
    this.gate = new Gate();
  }

  /** @internal */
  async run(plan: WatcherPlan): Promise<{ ended: 'handover' }> {
    this.plans.push(plan);
    const ctx = Context.current();
    const timer = setInterval(() => ctx.heartbeat(), 500);
    try {
      for (;;) {
        if (this.failWith !== null) throw new Error(this.failWith);
        const gate = this.gate;
        let cancellation: unknown;
        const outcome = await Promise.race([gate.opened.then(() => 'gate' as const), ctx.cancelled.catch((err: unknown) => ((cancellation = err), 'cancelled' as const))]);
        if (outcome === 'cancelled') {
          this.cancelled.push(plan.generation);
          throw cancellation;
        }
        if (this.failWith === null) return { ended: 'handover' };
      }
    } finally {
      clearInterval(timer);
    }
  }
}

/**
 * The trust anchor and the audit log, for real: a rehearsal anchor (every account listed, with the operators alice,
 * bob and carol, each allowed every action) and the real audit store in a temporary directory, so that what a guard
 * records and what a new run recalls go through the same code as on a worker.
 */
export class TrustStub {
  readonly alice = rehearsalKey('alice');
  readonly bob = rehearsalKey('bob');
  readonly carol = rehearsalKey('carol');
  /** Every operator key the harness's client holds (it signs with the one a request names). */
  readonly operatorKeys: RehearsalKey[] = [this.alice, this.bob, this.carol];
  readonly auditDir = mkdtempSync(join(tmpdir(), 'breaker-audit-'));
  private readonly approvals = new Map<string, TrustView['approval']>();
  private readonly roles = new Map<string, Record<string, OperatorActionName[]>>();
  private readonly bots = new Map<string, TrustView['bots']>();
  private failWith: string | null = null;
  private readonly everyAction = rehearsalTrustAnchor({
    operators: this.operatorKeys.map((key) => ({ key })),
    approval: (accountId) => this.approvals.get(accountId) ?? null,
    bots: (accountId) => this.bots.get(accountId) ?? null,
  });
  /** The rehearsal anchor, with the roles set by {@link setRoles}. */
  readonly anchor: TrustAnchor = {
    source: this.everyAction.source,
    hasAnyAccount: true,
    accounts: () => [],
    viewOf: (accountId) => {
      const view = this.everyAction.viewOf(accountId);
      const roles = this.roles.get(accountId);
      return roles ? { ...view, operators: view.operators.map((o) => ({ ...o, actions: roles[o.id] ?? o.actions })) } : view;
    },
  };

  /** The actions each named operator may take on this account (others keep every action). */
  setRoles(accountId: string, roles: Record<string, OperatorActionName[]>): this {
    this.roles.set(accountId, roles);
    return this;
  }

  /** Resets and disables of this account need a second operator, within `windowSeconds`. */
  requireApproval(accountId: string, windowSeconds = 900): this {
    this.approvals.set(accountId, { actions: ['reset', 'disable'], windowSeconds });
    return this;
  }

  /** Reports of this account must be signed by one of these bots. */
  requireSignedReports(accountId: string, bots: { key: RehearsalKey; venues: string[] }[]): this {
    this.bots.set(accountId, bots.map(({ key, venues }) => ({ id: key.id, publicKey: key.publicKey, venues })));
    return this;
  }

  /** Makes loadTrust fail (null: answer again). */
  setFailure(message: string | null): this {
    this.failWith = message;
    return this;
  }

  /** @internal */
  async load(accountId: string): Promise<TrustLoad> {
    if (this.failWith !== null) throw new Error(this.failWith);
    return loadTrustFor(this.anchor, this.auditDir, accountId);
  }

  /** @internal */
  async append(accountId: string, entries: AuditEntry[]): Promise<{ written: number }> {
    return { written: (await appendAudit(this.auditDir, accountId, entries)).written.length };
  }
}

/** What the test holds to drive the stub activities. */
export class StubController {
  readonly trust = new TrustStub();
  readonly alerts = new AlertStub();
  readonly watcher = new WatcherStub();
  /** Every stub call, in order. */
  readonly log: StubCall[] = [];
  private readonly venues = new Map<string, VenueStub>();

  /** The stub of a venue, created on first use; a venue never named here is "not configured on this worker". */
  venue(id: string): VenueStub {
    let stub = this.venues.get(id);
    if (!stub) {
      stub = new VenueStub(id);
      this.venues.set(id, stub);
    }
    return stub;
  }

  /** Calls of one activity (optionally for one venue). */
  callsOf(activity: StubCall['activity'], venue?: string): StubCall[] {
    return this.log.filter((c) => c.activity === activity && (venue === undefined || c.venue === venue));
  }

  /** Opens every hanging stub (so that nothing waits when the worker stops). */
  releaseAll(): void {
    for (const stub of this.venues.values()) for (const activity of ['readVenue', 'cancelAllOpenOrders', 'closePositions'] as const) stub.release(activity);
    this.alerts.setMode('deliver');
    this.watcher.endAll();
  }

  private enterVenue(activity: VenueActivity, venue: string): Promise<VenueStub> {
    this.log.push({ activity, venue, attempt: Context.current().info.attempt, at: Date.now() });
    const stub = this.venues.get(venue);
    if (!stub) {
      // As the real worker answers for a venue it has no client for.
      throw toFailure(venue, { type: VenueFailureType.Rejected, message: `venue "${venue}" is not configured on this worker (stub)` });
    }
    return stub.enter(activity).then(() => stub);
  }

  /**
   * The stub activities. Typed as the real ones, so that a change of an activity's signature or result is a type
   * error here.
   */
  activities(): GuardActivities {
    return {
      // As the real check: a venue never named here is "not configured on this worker".
      checkVenueBindings: async (venues: string[]): Promise<string[]> =>
        venues.filter((v) => !this.venues.has(v)).map((v) => `venue "${v}" is not configured on this worker (stub)`),
      readVenue: async (venue: string, _referenceCurrency: string): Promise<VenueReading> => {
        const stub = await this.enterVenue('readVenue', venue);
        if (!stub.holdings) throw toFailure(venue, { type: VenueFailureType.Rejected, message: `${venue}: stub has no holdings (call setHoldings)` });
        const { balances, prices = {}, positions = [] } = stub.holdings;
        return { venue, balances: { ...balances }, prices: { ...prices }, positions: positions.map((p) => ({ ...p })), asOf: new Date().toISOString() };
      },
      cancelAllOpenOrders: async (venue: string): Promise<CancelPass> => {
        const stub = await this.enterVenue('cancelAllOpenOrders', venue);
        const cancelled = stub.openOrders;
        stub.openOrders = 0;
        stub.cancelled += cancelled;
        return { venue, cancelled, openAfter: stub.stubbornOrders };
      },
      closePositions: async (venue: string): Promise<ClosePass> => {
        const stub = await this.enterVenue('closePositions', venue);
        const closed = stub.openPositions;
        stub.openPositions = 0;
        stub.closed += closed;
        return { venue, closed, remaining: 0 };
      },
      watchAccount: async (plan: WatcherPlan) => {
        this.log.push({ activity: 'watchAccount', attempt: Context.current().info.attempt, at: Date.now() });
        return this.watcher.run(plan);
      },
      loadTrust: async (accountId: string) => this.trust.load(accountId),
      appendAudit: async (accountId: string, entries: AuditEntry[]) => this.trust.append(accountId, entries),
      sendAlert: async (alert: Alert): Promise<void> => {
        this.log.push({ activity: 'sendAlert', ...(alert.venue ? { venue: alert.venue } : {}), attempt: Context.current().info.attempt, at: Date.now() });
        await this.alerts.deliver(alert);
      },
    };
  }
}

/** A WorkflowTaskFailed event: the workflow code threw (or could not decode something) while handling a task. */
export interface FailedWorkflowTask {
  runId: string;
  eventId: string;
  /** e.g. WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE */
  cause: string;
  message: string;
}

export interface WorkflowHarness {
  stubs: StubController;
  /** A typed client on this harness's task queue. */
  breaker: BreakerClient;
  client: Client;
  worker: Worker;
  taskQueue: string;
  /**
   * The WorkflowTaskFailed events of every run of the workflow (continue-as-new followed back to the first run),
   * oldest first; `[]` is "no failed workflow task". WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND is left out unless
   * `includeServerRaces`: the server fails a task that completes the run (continue-as-new) when a message arrived
   * meanwhile, and the worker simply retries it; no workflow code failed.
   */
  historyHasFailedWorkflowTask(handle: WorkflowHandle, options?: { includeServerRaces?: boolean }): Promise<FailedWorkflowTask[]>;
  /** Polls `read` until `done` holds (for what changes asynchronously: a shutdown in progress, stub calls). */
  eventually<T>(read: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs?: number): Promise<T>;
  /**
   * Stops the worker and closes the connections. Stubs still hanging are not released: the shutdown cancels them
   * (as it would a real activity), so they end without answering.
   */
  stop(): Promise<void>;
}

let runtimeInstalled = false;

const { EventType, WorkflowTaskFailedCause } = temporal.api.enums.v1;

async function failedWorkflowTasks(client: Client, handle: WorkflowHandle, includeServerRaces: boolean): Promise<FailedWorkflowTask[]> {
  const found: FailedWorkflowTask[][] = [];
  // Newest run first (describe follows continue-as-new), then back through each run's predecessor.
  let runId: string | undefined = (await handle.describe()).runId;
  const seen = new Set<string>();
  while (runId && !seen.has(runId)) {
    seen.add(runId);
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    const events = history.events ?? [];
    const run: string = runId;
    found.unshift(
      events
        .filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        .map((e) => {
          const attributes = e.workflowTaskFailedEventAttributes;
          return {
            runId: run,
            eventId: String(e.eventId ?? ''),
            cause: WorkflowTaskFailedCause[attributes?.cause ?? 0] ?? String(attributes?.cause),
            message: attributes?.failure?.message ?? '',
          };
        })
        .filter((f) => includeServerRaces || f.cause !== 'WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND'),
    );
    runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  return found.flat();
}

/**
 * Starts a worker running the real guard workflow with stub activities, on a task queue of its own (so that test
 * files running in parallel never take each other's tasks), against the server of jest's global setup.
 * @param name goes into the task queue name, for reading the Temporal UI
 */
export async function startWorkflowHarness(name: string): Promise<WorkflowHarness> {
  const address = process.env.TEST_TEMPORAL_ADDRESS;
  const bundle = process.env.TEST_WORKFLOW_BUNDLE;
  if (!address || !bundle) throw new Error('TEST_TEMPORAL_ADDRESS / TEST_WORKFLOW_BUNDLE are not set: run workflow tests through jest (globalSetup)');
  if (!runtimeInstalled) {
    // Stopping a worker cancels hanging stubs and leaves guards running without a worker; both make core warn.
    // Tests assert on state and history instead, so only errors are printed.
    try {
      Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
    } catch {
      // The test file created a worker or runtime before: keep that runtime.
    }
    runtimeInstalled = true;
  }
  const stubs = new StubController();
  const taskQueue = `wf-${name}-${randomBytes(4).toString('hex')}`;
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue,
    workflowBundle: { codePath: bundle },
    // The bundle was built with the guard's payload converter (bundleGuardWorkflows); the worker side must match.
    dataConverter: { payloadConverterPath: payloadConverterPath() },
    activities: stubs.activities(),
    stickyQueueScheduleToStartTimeout: '3 seconds',
  });
  const running = worker.run();
  // Histories of the oversized-input tests exceed gRPC's default 4 MB message limit.
  const connection = await Connection.connect({ address, channelArgs: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 } });
  const client = new Client({ connection });
  let stopped = false;
  return {
    stubs,
    breaker: new BreakerClient(client, taskQueue, { operatorKeys: stubs.trust.operatorKeys }),
    client,
    worker,
    taskQueue,
    historyHasFailedWorkflowTask: (handle, options) => failedWorkflowTasks(client, handle, options?.includeServerRaces ?? false),
    eventually: (read, done, timeoutMs = 20_000) => pollUntil(read, done, { what: 'the condition', timeoutMs, intervalMs: 50 }),
    async stop() {
      if (stopped) return;
      stopped = true;
      worker.shutdown();
      await running;
      await connection.close();
      await nativeConnection.close();
    },
  };
}

/** An account id no other test uses. */
export function uniqueAccount(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
