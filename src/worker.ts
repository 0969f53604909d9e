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
 * - BREAKER_TRUST_FILE (required): the trust anchor, the accounts this worker serves with their venues, operators'
 *   public keys and roles, approvals and bot keys (src/trust/anchor.ts, README "Security model").
 * - BREAKER_AUDIT_DIR (required): the audit log's directory, outside Temporal (src/audit/log.ts); shared by every
 *   worker of the deployment.
 * - BREAKER_CODEC_KEYS or BREAKER_CODEC_KEYS_FILE (optional): encrypt every payload in history (src/codec/encryption.ts).
 * - BREAKER_HEALTH_FILE (optional): touched every few seconds while the worker is running (polling its task queue), so
 *   that a container health check can tell a live worker from a wedged or stopped one by the file's age.
 */
import { accessSync, constants, writeFileSync } from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { createVenueClient } from './exchanges/ccxt-factory';
import { SCOPE, credentialsFor, loadVenueSpecs, modeOf } from './exchanges/venues';
import { loadTemporalConnection } from './temporal-connection';
import { createGuardWorker } from './worker-factory';
import { anchorVenueProblems, loadTrustAnchor } from './trust/anchor';
import { payloadCodecsFromEnv } from './codec/encryption';

/** The audit directory, which must exist and be writable: a guard whose audit writes fail alerts, but better not start so. */
function auditDirFrom(env: NodeJS.ProcessEnv): string {
  const dir = env.BREAKER_AUDIT_DIR;
  if (!dir) throw new Error('No audit log: set BREAKER_AUDIT_DIR to a directory (shared by every worker) where each account\'s hash-chained audit log is kept');
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new Error(`BREAKER_AUDIT_DIR ${dir}: not a writable directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return dir;
}

/** How often the health file is touched; the compose health check allows three missed beats. */
const HEALTH_EVERY_MS = 10_000;

async function main(): Promise<void> {
  const specs = loadVenueSpecs();
  const trust = loadTrustAnchor();
  const bindings = anchorVenueProblems(trust, specs);
  if (bindings.length > 0) throw new Error(bindings.join('; '));
  const auditDir = auditDirFrom(process.env);
  const payloadCodecs = payloadCodecsFromEnv(process.env);
  const venues = new Map(specs.map((spec) => [spec.id, createVenueClient(spec, credentialsFor(spec))]));
  const temporal = loadTemporalConnection(process.env);
  const connection = await NativeConnection.connect(temporal.nativeConnectOptions);
  const worker = await createGuardWorker({
    connection,
    namespace: temporal.namespace,
    venues,
    taskQueue: process.env.BREAKER_TASK_QUEUE,
    alertWebhookUrl: process.env.ALERT_WEBHOOK_URL,
    trust,
    auditDir,
    payloadCodecs,
    workflowBundle: process.env.BREAKER_WORKFLOW_BUNDLE ? { codePath: process.env.BREAKER_WORKFLOW_BUNDLE } : undefined,
  });
  console.log(`portfolio-breaker worker ready on ${temporal.describe()} (task queue ${worker.options.taskQueue})`);
  console.log(
    `  trust anchor: ${trust.source}; accounts ${trust.accounts().join(', ') || 'none by name'}${trust.hasAnyAccount ? ' and "*" (every other account: paper rehearsal)' : ''}\n` +
      `  audit log: ${auditDir}; history ${payloadCodecs.length > 0 ? 'encrypted (BREAKER_CODEC_KEYS)' : 'NOT encrypted (set BREAKER_CODEC_KEYS to encrypt it)'}`,
  );
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
