/**
 * One Temporal dev server and one prebuilt workflow bundle for the whole run of the integration and workflow tiers
 * (a server per test file would cost seconds each; jest runs this module once even though both projects name it).
 * Connection details reach the test workers through the environment.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { resolveTemporalCli } from '../../tooling/temporal/binaries';
import { startDevServer } from '../../tooling/temporal/dev-server';
import { bundleGuardWorkflows } from '../../src/worker-factory';

/**
 * Where this run's bundle goes: one file per run (removed by the teardown), so that two runs on one machine never
 * read each other's bundle, or one half-written.
 */
export const BUNDLE_PATH = path.resolve(__dirname, `../../.cache/workflow-bundle-${process.pid}.js`);

export default async function globalSetup(): Promise<void> {
  const cli = resolveTemporalCli((line) => console.log(line));
  // Suggest continue-as-new after 60 history events instead of thousands, so that every test's guard also
  // proves it survives continue-as-new with its state, seq and pending work.
  const server = await startDevServer({ dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 60 } });
  (globalThis as { __devServer?: typeof server }).__devServer = server;
  process.env.TEST_TEMPORAL_ADDRESS = server.address;
  process.env.TEST_TEMPORAL_CLI = cli;
  // With the guard's payload converter, as every worker runs it.
  const { code } = await bundleGuardWorkflows();
  mkdirSync(path.dirname(BUNDLE_PATH), { recursive: true });
  writeFileSync(BUNDLE_PATH, code);
  process.env.TEST_WORKFLOW_BUNDLE = BUNDLE_PATH;
}
