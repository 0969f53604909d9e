/**
 * `npm run server`: a local Temporal dev server with the Web UI and persistence, our search attributes
 * registered, for running guards by hand (gRPC 127.0.0.1:7233, UI http://127.0.0.1:8233, data in .temporal/dev.db).
 */
import path from 'node:path';
import { PROJECT_ROOT } from './temporal/binaries';
import { startDevServer } from './temporal/dev-server';

async function main(): Promise<void> {
  const dbFilename = process.env.TEMPORAL_DB ?? path.join(PROJECT_ROOT, '.temporal', 'dev.db');
  const server = await startDevServer({ port: 7233, uiPort: 8233, dbFilename, log: (l) => console.log(l) });
  console.log(`Temporal dev server on ${server.address}, Web UI ${server.uiUrl}, data in ${dbFilename}. Ctrl-C stops it.`);
  const stop = () => void server.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  server.process.once('exit', (code) => {
    console.error(`Temporal dev server exited (${code})`);
    process.exit(1);
  });
}

main().catch((err) => {
  console.error((err as Error).message);
  process.exit(1);
});
