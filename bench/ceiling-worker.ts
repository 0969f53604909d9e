/**
 * The ceiling workflow's worker (section A), in a process of its own like the guard's worker, so that its CPU and
 * memory are measured the same way. Configured by environment: TEMPORAL_ADDRESS, BREAKER_TASK_QUEUE,
 * BREAKER_WORKFLOW_BUNDLE (a bundle of bench/ceiling-workflow.ts built with bundleWorkflowCode), BENCH_WORKER_TUNING
 * (JSON: the guard worker's WORKER_TUNING, passed by the bench rather than imported, because importing
 * src/worker-factory would load the activities and ccxt here and inflate this worker's memory). Prints "worker
 * ready" once polling, as src/worker.ts does, so that tooling/crash/worker-process.ts can start it.
 */
import { NativeConnection, Worker, WorkerOptions } from '@temporalio/worker';

async function main(): Promise<void> {
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    taskQueue: process.env.BREAKER_TASK_QUEUE ?? 'bench-ceiling',
    workflowBundle: { codePath: process.env.BREAKER_WORKFLOW_BUNDLE! },
    // The guard worker's tuning, so that the guard/ceiling ratio compares workflow code and nothing else.
    ...(JSON.parse(process.env.BENCH_WORKER_TUNING ?? '{}') as Partial<WorkerOptions>),
  });
  console.log(`ceiling worker ready on ${address} (task queue ${worker.options.taskQueue})`);
  await worker.run();
  await connection.close();
}

main().catch((err) => {
  console.error(`ceiling worker failed: ${(err as Error).message}`);
  process.exit(1);
});
