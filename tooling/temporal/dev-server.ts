/**
 * An embedded Temporal dev server (the `temporal server start-dev` of the Temporal CLI) for the demo, the tests and
 * the benchmark. It registers our search attributes at start so that workflows can upsert them immediately.
 */
import { ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_DEFINITIONS } from '../../src/api/contract';
import { resolveTemporalCli } from './binaries';

export interface DevServerOptions {
  /** SQLite file for persistence; in-memory when omitted. */
  dbFilename?: string;
  /** gRPC port; a free one is picked when omitted. */
  port?: number;
  /** Web UI port; the UI is off (headless) when omitted. */
  uiPort?: number;
  namespace?: string;
  /** Server dynamic config, e.g. `{ 'limit.historyCount.suggestContinueAsNew': 40 }` to exercise continue-as-new. */
  dynamicConfig?: Record<string, string | number | boolean>;
  log?: (line: string) => void;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  namespace: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Asks the OS for a free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until the frontend answers a gRPC call, or the process dies, or the deadline passes. */
async function waitUntilServing(address: string, child: ChildProcess, deadlineMs: number, stderr: () => string) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`Temporal dev server exited with code ${child.exitCode} while starting:\n${stderr()}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`Temporal dev server at ${address} did not answer within ${deadlineMs} ms: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** How often a start that lost a port race is tried again. */
const START_ATTEMPTS = 3;

/**
 * Starts `temporal server start-dev` and resolves once it serves requests. The dev server also listens on internal
 * ports it picks itself; when one of those (or ours) was taken meanwhile by another process on the machine ("address
 * already in use": seen in CI beside other test processes), it exits at once, and the start is tried again with new
 * ports.
 */
export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(options);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !/address already in use/.test(String(err))) throw err;
      options.log?.(`dev server lost a port race (attempt ${attempt}); starting it again on new ports`);
    }
  }
}

async function startDevServerOnce(options: DevServerOptions): Promise<DevServer> {
  const cli = resolveTemporalCli(options.log);
  const port = options.port ?? (await freePort());
  const namespace = options.namespace ?? 'default';
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', namespace,
    '--log-level', 'error'];
  if (options.uiPort !== undefined) args.push('--ui-port', String(options.uiPort));
  else args.push('--headless');
  if (options.dbFilename) args.push('--db-filename', options.dbFilename);
  for (const [key, value] of Object.entries(options.dynamicConfig ?? {})) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTE_DEFINITIONS)) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  const child = spawn(cli, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const address = `127.0.0.1:${port}`;
  try {
    await waitUntilServing(address, child, 60_000, () => stderr);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    address,
    uiUrl: options.uiPort !== undefined ? `http://127.0.0.1:${options.uiPort}` : undefined,
    namespace,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }),
  };
}
