/**
 * The worker process: `npm run worker`. Configured by environment:
 * - Temporal's environment configuration (src/temporal-connection.ts, README "Connecting to Temporal"): TEMPORAL_ADDRESS
 *   (default 127.0.0.1:7233 when nothing is configured), TEMPORAL_NAMESPACE (default "default"), TEMPORAL_API_KEY,
 *   TEMPORAL_TLS_* (mTLS certificate, key, server CA), or a profile of TEMPORAL_CONFIG_FILE chosen by TEMPORAL_PROFILE.
 * - BREAKER_VENUES (JSON array) or BREAKER_VENUES_FILE: venue ids, ccxt classes and the names of the environment
 *   variables holding each venue's key and secret (see README). Secrets stay in this process.
 * - BREAKER_PAPER_HOSTS (optional): non-loopback hosts a `paper` venue may route to (comma-separated).
 * - ALERT_WEBHOOK_URL (optional): alerts are POSTed there as JSON, besides being logged.
 * - BREAKER_TASK_QUEUE (optional, default portfolio-breaker), BREAKER_WORKFLOW_BUNDLE (optional: a prebuilt bundle).
 * - BREAKER_HEALTH_FILE (optional): touched every few seconds while the worker is running (polling its task queue), so
 *   that a container health check can tell a live worker from a wedged or stopped one by the file's age.
 */
import { writeFileSync } from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { createVenueClient } from './exchanges/ccxt-factory';
import { SCOPE, credentialsFor, loadVenueSpecs, modeOf } from './exchanges/venues';
import { loadTemporalConnection } from './temporal-connection';
import { createGuardWorker } from './worker-factory';

/** How often the health file is touched; the compose health check allows three missed beats. */
const HEALTH_EVERY_MS = 10_000;

async function main(): Promise<void> {
  const specs = loadVenueSpecs();
  const venues = new Map(specs.map((spec) => [spec.id, createVenueClient(spec, credentialsFor(spec))]));
  const temporal = loadTemporalConnection(process.env);
  const connection = await NativeConnection.connect(temporal.nativeConnectOptions);
  const worker = await createGuardWorker({
    connection,
    namespace: temporal.namespace,
    venues,
    taskQueue: process.env.BREAKER_TASK_QUEUE,
    alertWebhookUrl: process.env.ALERT_WEBHOOK_URL,
    workflowBundle: process.env.BREAKER_WORKFLOW_BUNDLE ? { codePath: process.env.BREAKER_WORKFLOW_BUNDLE } : undefined,
  });
  console.log(`portfolio-breaker worker ready on ${temporal.describe()} (task queue ${worker.options.taskQueue})`);
  // Each venue's mode first: a live venue acts on real money.
  for (const s of specs) {
    const scope = SCOPE[s.exchange];
    console.log(
      `  ${s.id}: ${modeOf(s).toUpperCase()} ${s.exchange}${s.routeTo ? ` via ${s.routeTo}` : ''}, account ${s.account ?? 'any (paper)'}\n` +
        `    flattens: ${scope.covers}\n    leaves open: ${scope.leavesOpen}`,
    );
  }
  const healthFile = process.env.BREAKER_HEALTH_FILE;
  const beat = healthFile
    ? setInterval(() => {
        if (worker.getState() === 'RUNNING') writeFileSync(healthFile, new Date().toISOString());
      }, HEALTH_EVERY_MS)
    : undefined;
  await worker.run();
  clearInterval(beat);
  await connection.close();
}

main().catch((err) => {
  console.error(`worker failed: ${(err as Error).message}`);
  process.exit(1);
});
