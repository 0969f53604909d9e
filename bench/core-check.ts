/**
 * Section 1 of the benchmark: the cost of the core check on the account of bench.ts (20 assets on 3 venues), as
 * the streaming watcher pays it per price tick (LiveValuation: one setPrice + check), as it pays it when it sends a
 * signal (figures), and as the full valuation + breaker transition costs it (valuePortfolio + transition).
 *
 * Each sample is timed alone with process.hrtime.bigint(), whose own cost (measured here too, and not subtracted)
 * is part of every per-sample figure; the `_amortized_` figures time a whole batch instead.
 */
import { BreakerLimits, BreakerState, transition } from '../src/domain/breaker';
import { LiveValuation } from '../src/domain/live-valuation';
import { Decimal, toDecimalString } from '../src/domain/money';
import { PriceBook, VenueHoldings, valuePortfolio } from '../src/domain/valuation';
import { DEFAULT_PRICES } from '../tooling/paper/exchange';
import { median, percentile } from './stats';
import { seededRandom } from '../tooling/paper/faults';

const WARM_UP = 5_000;
const SAMPLES = 30_000;
const VENUES = ['spotA', 'spotB', 'perp'];
const LIMITS: BreakerLimits = { warningPct: '3', thresholdPct: '5', autoClosePositions: false };
const CAPITAL = '100000';

/** The account of bench.ts's coreCheck: 10 assets on one spot venue, 10 on another, USDT and 5 positions on a perp venue. */
function account(at: string) {
  const assets = Object.keys(DEFAULT_PRICES);
  const holdings: Record<string, VenueHoldings> = {
    spotA: { balances: Object.fromEntries(assets.slice(0, 10).map((a) => [a, '12.5'])), positions: [], asOf: at, receivedAt: at, source: 'bot' },
    spotB: { balances: Object.fromEntries(assets.slice(10).map((a) => [a, '7.25'])), positions: [], asOf: at, receivedAt: at, source: 'bot' },
    perp: {
      balances: { USDT: '5000' },
      positions: assets.slice(0, 5).map((a) => ({ symbol: `${a}/USDT:USDT`, side: 'long' as const, contracts: '1', unrealizedPnl: '-12.34' })),
      asOf: at,
      receivedAt: at,
      source: 'bot',
    },
  };
  return { assets, holdings };
}

/** The project's seeded generator (mulberry32), so that every run replays the same sequence. */
const rng = seededRandom;

/**
 * Ticks as a venue's stream sends them: a held asset and a new price within ±2 % of its default, written with the
 * venue's precision (8 decimals), prepared in advance so that the loop times the valuation, not the generator.
 */
function ticks(assets: string[], n: number): { asset: string; price: string }[] {
  const r = rng(42);
  const base = assets.map((a) => new Decimal(DEFAULT_PRICES[a]!));
  return Array.from({ length: n }, () => {
    const i = Math.floor(r() * assets.length);
    const move = new Decimal(`${Math.floor(r() * 400_000) - 200_000}`).div(10_000_000); // ±2 %, exactly (an integer count of steps)
    return { asset: assets[i]!, price: toDecimalString(base[i]!.times(move.plus(1)).toDecimalPlaces(8)) };
  });
}

const ns = (start: bigint) => Number(process.hrtime.bigint() - start);

/**
 * Measures the core check three ways and prints one line each.
 * @param say where the lines go
 * @returns figures keyed with their units: coreCheck_tick_{median,p99}_ns, coreCheck_tick_amortized_ns,
 *   coreCheck_figures_{median,p99}_ns, coreCheck_full_{median,p99}_ns, coreCheck_timer_overhead_median_ns,
 *   coreCheck_tick_exact_path_count
 */
export function runCoreCheck(say: (line: string) => void): Record<string, number> {
  const at = new Date(0).toISOString();
  const { assets, holdings } = account(at);
  const results: Record<string, number> = {};

  // The timer's own cost, inside every per-sample figure below.
  const overhead: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = process.hrtime.bigint();
    overhead.push(ns(t));
  }
  results.coreCheck_timer_overhead_median_ns = median(overhead);

  // (a) the watcher's hot path: one price tick (setPrice of a held asset) and the level (check).
  const live = new LiveValuation({ venues: VENUES, initialCapital: CAPITAL, reference: 'USDT', limits: LIMITS });
  for (const venue of VENUES) live.setHoldings(venue, holdings[venue]!);
  for (const asset of assets) live.setPrice(asset, DEFAULT_PRICES[asset]!);
  const stream = ticks(assets, WARM_UP + SAMPLES);
  const tickSamples: number[] = [];
  let breaches = 0;
  for (let i = 0; i < stream.length; i++) {
    const { asset, price } = stream[i]!;
    const t = process.hrtime.bigint();
    live.setPrice(asset, price);
    const level = live.check().level;
    const took = ns(t);
    if (level === 'breach') breaches++;
    if (i >= WARM_UP) tickSamples.push(took);
  }
  results.coreCheck_tick_median_ns = median(tickSamples);
  results.coreCheck_tick_p99_ns = percentile(tickSamples, 99);
  const batch = process.hrtime.bigint();
  for (let i = 0; i < stream.length; i++) {
    const { asset, price } = stream[i]!;
    live.setPrice(asset, price);
    if (live.check().level === 'breach') breaches++;
  }
  results.coreCheck_tick_amortized_ns = Math.round(ns(batch) / stream.length);

  // (b) the exact figures, as for a signal: after a tick, so that nothing is cached.
  const figureSamples: number[] = [];
  for (let i = 0; i < stream.length; i++) {
    const { asset, price } = stream[i]!;
    live.setPrice(asset, price);
    const t = process.hrtime.bigint();
    live.figures();
    const took = ns(t);
    if (i >= WARM_UP) figureSamples.push(took);
  }
  results.coreCheck_figures_median_ns = median(figureSamples);
  results.coreCheck_figures_p99_ns = percentile(figureSamples, 99);

  // (c) the old path: the full valuation and the breaker's transition, with the same ticks applied to the book.
  const prices: PriceBook = Object.fromEntries(assets.map((a) => [a, { price: DEFAULT_PRICES[a]!, at, venue: 'spotA' }]));
  const policy = { dustValue: '10', staleAfterSeconds: 300, ignoreAssets: [] };
  let state: BreakerState = { name: 'Active' };
  const fullSamples: number[] = [];
  for (let i = 0; i < stream.length; i++) {
    const { asset, price } = stream[i]!;
    const t = process.hrtime.bigint();
    prices[asset] = { price, at, venue: 'spotA' };
    const v = valuePortfolio(holdings, VENUES, prices, CAPITAL, 'USDT', at, policy);
    state = transition(state, { type: 'PortfolioUpdate', at, totalValue: v.totalValue, lossPct: v.lossPct }, LIMITS).state;
    const took = ns(t);
    if (i >= WARM_UP) fullSamples.push(took);
  }
  results.coreCheck_full_median_ns = median(fullSamples);
  results.coreCheck_full_p99_ns = percentile(fullSamples, 99);

  // The two must agree, or the figures above compare different work.
  const last = valuePortfolio(holdings, VENUES, prices, CAPITAL, 'USDT', at, policy);
  const mine = live.figures();
  if (mine.totalValue !== last.totalValue || mine.lossPct !== last.lossPct) {
    throw new Error(`LiveValuation (${mine.totalValue}, ${mine.lossPct}) disagrees with valuePortfolio (${last.totalValue}, ${last.lossPct})`);
  }

  say(
    `1. core check, 20 assets on 3 venues (${SAMPLES} samples after ${WARM_UP} warm-up; timer overhead ${results.coreCheck_timer_overhead_median_ns} ns inside each):`,
  );
  say(`   per tick (LiveValuation setPrice + check): median ${results.coreCheck_tick_median_ns} ns, p99 ${results.coreCheck_tick_p99_ns} ns, amortized ${results.coreCheck_tick_amortized_ns} ns`);
  say(`   exact figures (LiveValuation figures):    median ${results.coreCheck_figures_median_ns} ns, p99 ${results.coreCheck_figures_p99_ns} ns`);
  say(`   full valuePortfolio + transition:         median ${results.coreCheck_full_median_ns} ns, p99 ${results.coreCheck_full_p99_ns} ns`);
  results.coreCheck_tick_exact_path_count = live.paths.exactLevel; // ticks too close to a threshold for the fast path
  say(`   (levels decided by the fast path: ${live.paths.fastLevel}, by the exact figures: ${live.paths.exactLevel})`);
  if (breaches < 0) say('unreachable'); // keeps the level reads from being optimized away
  return results;
}
