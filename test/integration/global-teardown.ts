import type { DevServer } from '../../tooling/temporal/dev-server';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __devServer?: DevServer }).__devServer?.stop();
}
