/**
 * The guard worker of the "watched scale" section (bench/watched-scale.ts): src/worker.ts with more activity slots.
 * Every watched guard holds one activity slot for as long as its watcher runs, so with the SDK's default of 100 a
 * worker of 1,000 watched guards has no slot left for their start-up reads, trips and cancel passes (seen: activities
 * scheduled for 6 minutes and never started). The figures are for the guard's code and the real src/worker.ts
 * wiring otherwise: the same venue loading (BREAKER_VENUES_FILE, credentials from the environment) and
 * createGuardWorker, with BENCH_WORKER_TUNING (JSON, Partial<WorkerOptions>) merged into WORKER_TUNING before the
 * worker is built. Prints "worker ready" once polling, which bench/watched-scale.ts waits for.
 */
import { NativeConnection, WorkerOptions } from '@temporalio/worker';
import { createVenueClient } from '../src/exchanges/ccxt-factory';
import { credentialsFor, loadVenueSpecs } from '../src/exchanges/venues';
import { WORKER_TUNING, createGuardWorker } from '../src/worker-factory';

async function main(): Promise<void> {
  const started = performance.now();
  const specs = loadVenueSpecs();
  const venues = new Map(specs.map((spec) => [spec.id, createVenueClient(spec, credentialsFor(spec))]));
  const clientsMs = Math.round(performance.now() - started);
  // This process only: createGuardWorker spreads WORKER_TUNING last, so the bench's slots win over the defaults.
  Object.assign(WORKER_TUNING, JSON.parse(process.env.BENCH_WORKER_TUNING ?? '{}') as Partial<WorkerOptions>);
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const connection = await NativeConnection.connect({ address });
  const worker = await createGuardWorker({
    connection,
    venues,
    taskQueue: process.env.BREAKER_TASK_QUEUE,
    workflowBundle: process.env.BREAKER_WORKFLOW_BUNDLE ? { codePath: process.env.BREAKER_WORKFLOW_BUNDLE } : undefined,
  });
  // The venue count and how long building their clients took (no ids, keys or hosts).
  console.log(`watched worker ready on ${address} (task queue ${worker.options.taskQueue}): ${venues.size} venue clients built in ${clientsMs} ms`);
  await worker.run();
  await connection.close();
}

main().catch((err) => {
  console.error(`watched worker failed: ${(err as Error).message}`);
  process.exit(1);
});
