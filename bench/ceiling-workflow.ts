/**
 * The ceiling for section A of the benchmark: a trivial entity workflow that takes the guard's report payload as a
 * signal and as an update, keeps a counter and the last report of each, answers a `state` query with the last
 * accepted `seq`, and does nothing else (no validation, no decider, no activities, no timers, no search
 * attributes). Whatever it costs per report is what Temporal itself costs on this server; the guard's figures are
 * read against it. Bundled on its own (bench/ceiling-worker.ts), never with the guard's code.
 */
import { condition, defineQuery, defineSignal, defineUpdate, setHandler } from '@temporalio/workflow';
import type { BalanceReport } from '../src/api/contract';

/** The same message names as the guard's, so that the load generator sends the same RPCs to both. */
export const ceilingSignal = defineSignal<[BalanceReport]>('balanceReport');
export const ceilingUpdate = defineUpdate<CeilingView, [BalanceReport]>('reportBalances');
export const ceilingQuery = defineQuery<CeilingView>('state');

export interface CeilingView {
  /** Highest `seq` seen per venue, by either message: the guard's `state` query answers the same field. */
  lastSeq: Record<string, number>;
  signals: number;
  updates: number;
}

export async function ceilingEntity(): Promise<void> {
  const view: CeilingView = { lastSeq: {}, signals: 0, updates: 0 };
  let lastSignal: BalanceReport | undefined;
  let lastUpdate: BalanceReport | undefined;
  const keep = (report: BalanceReport) => {
    view.lastSeq[report.venue] = Math.max(view.lastSeq[report.venue] ?? 0, report.seq);
  };
  setHandler(ceilingSignal, (report) => {
    view.signals += 1;
    lastSignal = report;
    keep(report);
  });
  setHandler(ceilingUpdate, (report) => {
    view.updates += 1;
    lastUpdate = report;
    keep(report);
    return view;
  });
  setHandler(ceilingQuery, () => view);
  // Runs until the benchmark terminates it; the last reports are kept only as an entity would keep them.
  await condition(() => lastSignal === null && lastUpdate === null);
}
