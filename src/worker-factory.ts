/**
 * Builds a guard worker: the workflow code plus activities bound to this process's venue clients.
 */
import { NativeConnection, Worker, WorkerOptions } from '@temporalio/worker';
import { createActivities } from './activities';
import { TASK_QUEUE } from './api/contract';
import type { VenueClient } from './exchanges/ccxt-factory';

export interface GuardWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  venues: ReadonlyMap<string, VenueClient>;
  /** A prebuilt workflow bundle (faster start); the workflow sources are bundled when omitted. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  taskQueue?: string;
  /** Alerts are POSTed here as JSON besides being logged. */
  alertWebhookUrl?: string;
}

export function workflowsPath(): string {
  return require.resolve('./workflows');
}

export async function createGuardWorker(options: GuardWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: workflowsPath() }),
    activities: createActivities({ venues: options.venues, alertWebhookUrl: options.alertWebhookUrl }),
    // When a worker dies, its guards' workflow tasks wait this long on its sticky queue before another worker takes
    // them; the default 10 s would add to every recovery.
    stickyQueueScheduleToStartTimeout: '3 seconds',
  });
}
