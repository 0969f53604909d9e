/**
 * Hooks for the two sections that come with the streaming "watcher" (the guard valuing accounts from a price stream
 * instead of waiting for a bot's report). Not implemented yet: each prints that it was skipped and records nothing.
 * Selected by BENCH_SECTIONS=detection and BENCH_SECTIONS=watched (not in the default set).
 */
import type { BenchContext, Results, Say } from './context';

export { detectionLatency } from './detection';

/**
 * Watched scale: 1,000 guards watching 2-venue accounts on one worker (`ctx.server`, `ctx.client`,
 * `ctx.workflowBundle`), with the watcher's stream as the only input. Intended figures: detection latency under
 * that load, worker CPU/RSS, server CPU.
 */
export async function watchedScale(ctx: BenchContext, results: Results, say: Say): Promise<void> {
  void ctx;
  void results;
  say('watched scale (1,000 guards watching 2-venue accounts): not implemented yet (needs the streaming watcher)');
}
