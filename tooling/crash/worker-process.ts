/**
 * A guard worker in its own process (`src/worker.ts`), so that crash tests can SIGKILL it like a real deployment.
 * Venue credentials reach it through its environment, exactly as in production.
 */
import { ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Rehearsal, rehearsal, rehearsalEnv } from '../rehearsal-trust';

const ROOT = path.resolve(__dirname, '../..');

export interface WorkerProcessOptions {
  address: string;
  taskQueue: string;
  workflowBundle: string;
  paperUrl: string;
  credentials: { apiKey: string; secret: string };
  alertWebhookUrl?: string;
  /** ccxt request timeout per venue; short in fault tests so that a delayed answer times out quickly. */
  timeoutMs?: number;
  /**
   * Another worker script to run instead of src/worker.ts (relative to the repository root), e.g. the benchmark's
   * ceiling worker; it must print "worker ready" once polling. @default src/worker.ts
   */
  script?: string;
  /** Extra environment variables for the worker. */
  env?: Record<string, string>;
  /**
   * The trust anchor file and audit directory (give the same one to workers that must share an audit log, and its
   * operator keys to the client that signs). @default a new rehearsal of its own
   */
  trust?: Rehearsal;
}

export class WorkerProcess {
  private constructor(readonly child: ChildProcess, private output: string[]) {}

  static async start(o: WorkerProcessOptions): Promise<WorkerProcess> {
    const venues = [
      { id: 'binance-spot', exchange: 'binance', routeTo: o.paperUrl, timeoutMs: o.timeoutMs ?? 3_000, rateLimitMs: 1 },
      { id: 'binance-usdm', exchange: 'binanceusdm', routeTo: o.paperUrl, timeoutMs: o.timeoutMs ?? 3_000, rateLimitMs: 1 },
    ];
    // node itself, with tsx as a loader: the tsx CLI would run the worker in a grandchild that SIGKILL never reaches.
    const child = spawn(process.execPath, ['--import', 'tsx', o.script ?? 'src/worker.ts'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TEMPORAL_ADDRESS: o.address,
        BREAKER_TASK_QUEUE: o.taskQueue,
        BREAKER_WORKFLOW_BUNDLE: o.workflowBundle,
        BREAKER_VENUES: JSON.stringify(venues),
        BINANCE_SPOT_API_KEY: o.credentials.apiKey,
        BINANCE_SPOT_SECRET: o.credentials.secret,
        BINANCE_USDM_API_KEY: o.credentials.apiKey,
        BINANCE_USDM_SECRET: o.credentials.secret,
        ...(o.alertWebhookUrl ? { ALERT_WEBHOOK_URL: o.alertWebhookUrl } : {}),
        ...rehearsalEnv(o.trust ?? rehearsal()),
        ...o.env,
      },
    });
    const output: string[] = [];
    const worker = new WorkerProcess(child, output);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not start within 60 s:\n${output.join('')}`)), 60_000);
      const onData = (chunk: Buffer) => {
        output.push(chunk.toString());
        if (output.join('').includes('worker ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`worker exited with ${code} while starting:\n${output.join('')}`));
      });
    });
    child.removeAllListeners('exit');
    return worker;
  }

  /** What the worker printed (for failure messages, and to check that no secret was ever logged). */
  get log(): string {
    return this.output.join('');
  }

  /**
   * The identity the worker reports to Temporal (the SDK's default, `<pid>@<hostname>`): what a workflow's
   * describe() names as an activity's `lastWorkerIdentity`, so a test can tell which worker runs an activity.
   */
  get identity(): string {
    return `${this.child.pid}@${os.hostname()}`;
  }

  /** SIGKILL: no graceful shutdown, no chance to finish or report anything. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}
