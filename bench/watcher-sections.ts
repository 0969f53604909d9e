/**
 * The sections that measure the watcher: detection latency (bench/detection.ts) and watched scale
 * (bench/watched-scale.ts). Selected by BENCH_SECTIONS=detection and BENCH_SECTIONS=watched (both in the default set).
 */
export { detectionLatency } from './detection';
export { watchedScale } from './watched-scale';
