import { rmSync } from 'node:fs';
import type { DevServer } from '../../tooling/temporal/dev-server';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __devServer?: DevServer }).__devServer?.stop();
  // This run's bundle (see global-setup.ts); the variable is set only once the bundle was written.
  if (process.env.TEST_WORKFLOW_BUNDLE) rmSync(process.env.TEST_WORKFLOW_BUNDLE, { force: true });
}
