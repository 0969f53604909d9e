/**
 * Builds a guard worker: the workflow code plus activities bound to this process's venue clients, and bundles the
 * workflow code. Both always use the guard's payload converter (src/api/payload-converter.ts), so that a payload
 * the worker cannot decode reaches the guard as an UndecodablePayload instead of failing its workflow tasks for ever.
 * Bundle the workflows only with {@link bundleGuardWorkflows}: a bundle built without the converter would bring
 * that failure back.
 */
import type { Logger, PayloadCodec } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Worker, WorkerOptions, bundleWorkflowCode } from '@temporalio/worker';
import { createActivities } from './activities';
import type { TrustAnchor } from './trust/anchor';
import { TASK_QUEUE } from './api/contract';
import type { VenueClient } from './exchanges/ccxt-factory';

export interface GuardWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  venues: ReadonlyMap<string, VenueClient>;
  /**
   * A prebuilt workflow bundle (faster start), built by {@link bundleGuardWorkflows}; the workflow sources are
   * bundled (with the payload converter) when omitted.
   */
  workflowBundle?: WorkerOptions['workflowBundle'];
  taskQueue?: string;
  /** Alerts are POSTed here as JSON besides being logged. */
  alertWebhookUrl?: string;
  /**
   * Payload codecs, e.g. `payloadCodecsFromEnv()` (src/codec/encryption.ts) for encrypted history. Their decode must
   * never throw (a throw while decoding an activation fails the workflow task for ever): the encryption codec's
   * default policy turns what it refuses into a payload the guard's converter records as undecodable.
   * @default none: payloads reach the server as the converter wrote them
   */
  payloadCodecs?: PayloadCodec[];
  /**
   * The trust anchor (src/trust/anchor.ts, BREAKER_TRUST_FILE): who may act on each account's guard. A worker
   * without one runs guards that protect but refuse every operator action, and alert.
   */
  trust?: TrustAnchor;
  /** The audit log's directory (BREAKER_AUDIT_DIR): risk events and operator actions, and the memory of unreset trips. */
  auditDir?: string;
}

export function workflowsPath(): string {
  return require.resolve('./workflows');
}

/** The module exporting the guard's `payloadConverter`, for `payloadConverterPath` options. */
export function payloadConverterPath(): string {
  return require.resolve('./api/payload-converter');
}

/**
 * Bundles the guard's workflow code with its payload converter, for `workflowBundle: { code }` or a file passed as
 * `workflowBundle: { codePath }` (e.g. BREAKER_WORKFLOW_BUNDLE).
 * @param options.logger the bundler's logger @default a DefaultLogger at WARN
 */
export async function bundleGuardWorkflows(options: { logger?: Logger } = {}): Promise<{ code: string }> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: workflowsPath(),
    payloadConverterPath: payloadConverterPath(),
    logger: options.logger ?? new DefaultLogger('WARN'),
  });
  return { code };
}

/**
 * Worker options chosen by measurement (bench section A); the benchmark's ceiling worker uses the same, so that its
 * guard/ceiling ratios compare workflow code only. Empty: the SDK defaults, until a figure shows an option pays.
 */
export const WORKER_TUNING: Partial<WorkerOptions> = {};

/**
 * Activity slots of a guard worker: one per running watcher, plus room for reads, alerts and cancel passes.
 * BREAKER_MAX_ACTIVITIES overrides it.
 */
export const MAX_CONCURRENT_ACTIVITIES = Number(process.env.BREAKER_MAX_ACTIVITIES ?? 10_000);

export async function createGuardWorker(options: GuardWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: workflowsPath() }),
    // The same converter as in the bundle: activity inputs and results, and the workflow code when bundled here.
    dataConverter: { payloadConverterPath: payloadConverterPath(), payloadCodecs: options.payloadCodecs ?? [] },
    activities: createActivities({ venues: options.venues, alertWebhookUrl: options.alertWebhookUrl, trust: options.trust, auditDir: options.auditDir }),
    // When a worker dies, its guards' workflow tasks wait this long on its sticky queue before another worker takes
    // them; the default 10 s would add to every recovery.
    stickyQueueScheduleToStartTimeout: '3 seconds',
    // Every running guard's watcher holds one activity slot for as long as it runs (hours). With the SDK's default of
    // 100 slots, 100 watched guards left no slot for anything else: reads, alerts and the emergency cancel passes
    // waited (seen in the benchmark: start-up checks scheduled for 6 minutes). Slots are a count, not a thread; this
    // bounds the guards per worker far above what memory allows (about 2 GB per 1,000 guards, bench section A).
    maxConcurrentActivityTaskExecutions: MAX_CONCURRENT_ACTIVITIES,
    ...WORKER_TUNING,
  });
}
