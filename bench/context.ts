/**
 * What every benchmark section receives: the embedded Temporal dev server, the paper exchange, a client, and the
 * prebuilt workflow bundles. Sections write figures into `results` (every key carries its unit) and print with
 * `say`; bench/bench.ts collects them into bench/results/latest.json and the final table.
 */
import type { Client } from '@temporalio/client';
import type { PaperServer } from '../tooling/paper/server';
import type { DevServer } from '../tooling/temporal/dev-server';

export interface BenchContext {
  server: DevServer;
  paper: PaperServer;
  client: Client;
  /** The guard's workflow bundle (bundleGuardWorkflows), as a file for worker processes. */
  workflowBundle: string;
  /** The ceiling workflow's bundle (bench/ceiling-workflow.ts), as a file; empty until section A builds it. */
  ceilingBundle: string;
  /** The paper exchange's API key, which the worker processes use for both venues. */
  credentials: { apiKey: string; secret: string };
}

export type Results = Record<string, unknown>;
export type Say = (line?: string) => void;

export const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
export const msSince = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/** Runs `fn` over `items`, at most `limit` at once (the server and the two cores need no 1,000-wide bursts). */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await fn(items[i]!, i);
    }),
  );
}
