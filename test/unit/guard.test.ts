import { parseAccountConfig } from '../../src/domain/config';
import {
  MAX_RECENT_EVENTS,
  confirmShutdown,
  createGuardState,
  evaluate,
  operate,
  receiveReport,
  receiveVenueHoldings,
  recordShutdownProgress,
  rejectReport,
  venuesNeedingValuation,
} from '../../src/domain/guard';
import { BalanceReport } from '../../src/domain/report';

const parsed = parseAccountConfig({ accountId: 'a', initialCapital: '10000', venues: ['spot', 'perp'] });
if (!parsed.ok) throw new Error(parsed.error);
const config = parsed.value;
const at = '2026-01-01T00:00:00.000Z';
const spot = (seq: number, usdt: string): BalanceReport => ({ venue: 'spot', seq, balances: { USDT: usdt } });
const perp = (seq: number, usdt: string): BalanceReport => ({ venue: 'perp', seq, balances: { USDT: usdt } });

function feed(reports: BalanceReport[]) {
  let state = createGuardState(config);
  const commands = [];
  for (const r of reports) {
    state = receiveReport(state, r, at).state;
    const step = evaluate(state, at);
    state = step.state;
    commands.push(...step.commands);
  }
  return { state, commands };
}

describe('guard aggregate', () => {
  it('ignores duplicate and stale seq per venue, and counts them', () => {
    let state = createGuardState(config);
    const outcomes = [spot(5, '1'), spot(5, '2'), spot(4, '3'), perp(1, '1'), spot(6, '4')].map((r) => {
      const result = receiveReport(state, r, at);
      state = result.state;
      return result.outcome;
    });
    expect(outcomes).toEqual(['accepted', 'duplicate', 'stale', 'accepted', 'accepted']);
    expect(state.counters).toMatchObject({ reportsAccepted: 3, reportsDuplicate: 1, reportsStale: 1 });
    expect(state.venues.spot).toMatchObject({ lastSeq: 6, holdings: { balances: { USDT: '4' } } });
  });

  it('never feeds an incomplete valuation to the breaker: a missing venue is not a loss', () => {
    const { state, commands } = feed([spot(1, '100')]);
    expect(state.breaker.name).toBe('Active');
    expect(state.lastValuation).toBeUndefined();
    expect(commands).toEqual([]);
    expect(venuesNeedingValuation(evaluate(state, at).valuation)).toEqual(['perp']);
  });

  it('walks Active → Warning → Triggered and orders one shutdown', () => {
    const { state, commands } = feed([spot(1, '5000'), perp(1, '5000'), perp(2, '4650'), perp(3, '4500'), perp(4, '4000')]);
    expect(state.breaker.name).toBe('Triggered');
    expect(commands).toEqual([{ type: 'EmergencyShutdown', closePositions: false }]);
    expect(state.pendingShutdown).toEqual({ closePositions: false, orderedAt: at });
    expect(state.events.map((e) => e.type)).toEqual(['WarningTriggered', 'CircuitBreakerTriggered']);
    expect(state.lastValuation?.totalValue).toBe('9000');
  });

  it('records the shutdown once and clears the pending work', () => {
    let { state } = feed([spot(1, '5000'), perp(1, '4000')]);
    state = recordShutdownProgress(state, 'spot', { status: 'flat', cancelled: 3, openOrders: 0, attempts: 1, updatedAt: at });
    state = confirmShutdown(state, at);
    state = confirmShutdown(state, at);
    expect(state.pendingShutdown).toBeUndefined();
    expect(state.events.filter((e) => e.type === 'SystemShutdown')).toHaveLength(1);
    expect(state.breaker).toMatchObject({ name: 'Triggered', shutdown: 'flat' });
  });

  it('records a venue failure once, as an event', () => {
    let state = createGuardState(config);
    const failed = { status: 'failed' as const, cancelled: 0, openOrders: null, attempts: 1, lastError: 'bad key', updatedAt: at };
    state = recordShutdownProgress(state, 'spot', failed);
    state = recordShutdownProgress(state, 'spot', { ...failed, attempts: 2 });
    expect(state.events).toEqual([{ type: 'VenueShutdownFailed', at, venue: 'spot', error: 'bad key' }]);
  });

  it('rejects operator actions that do not fit the state, changing nothing', () => {
    const state = createGuardState(config);
    const step = operate(state, { type: 'ResetRequested', at, operator: 'o', reason: 'r' });
    expect(step.rejection).toContain('reset applies only to a Triggered breaker');
    expect(step.state).toBe(state);
  });

  it('reset clears pending shutdown work and a later breach trips again', () => {
    let { state } = feed([spot(1, '5000'), perp(1, '4000')]);
    state = operate(state, { type: 'ResetRequested', at, operator: 'o', reason: 'r' }).state;
    expect(state.breaker.name).toBe('Active');
    expect(state.pendingShutdown).toBeUndefined();
    state = receiveReport(state, perp(2, '3999'), at).state;
    const step = evaluate(state, at);
    expect(step.state.breaker.name).toBe('Triggered');
    expect(step.commands).toHaveLength(1);
  });

  it('keeps only the most recent events', () => {
    let state = createGuardState(config);
    for (let i = 0; i < MAX_RECENT_EVENTS + 10; i++) state = rejectReport(state, `bad ${i}`, at);
    expect(state.events).toHaveLength(MAX_RECENT_EVENTS);
    expect(state.events.at(-1)).toMatchObject({ error: `bad ${MAX_RECENT_EVENTS + 9}` });
    expect(state.counters.reportsRejected).toBe(MAX_RECENT_EVENTS + 10);
  });

  it('takes holdings read by the guard without touching the bots\' seq', () => {
    let state = receiveReport(createGuardState(config), spot(3, '1'), at).state;
    state = receiveVenueHoldings(state, 'spot', { balances: { USDT: '2' }, prices: {}, positions: [], asOf: at, source: 'guard' }, 3);
    expect(state.venues.spot).toMatchObject({ lastSeq: 3, holdings: { source: 'guard' } });
  });

  it('drops a reading that a bot report overtook while it was under way', () => {
    let state = receiveReport(createGuardState(config), spot(3, '1'), at).state;
    const requestedAtSeq = state.venues.spot!.lastSeq;
    state = receiveReport(state, spot(4, '7'), at).state;
    const after = receiveVenueHoldings(state, 'spot', { balances: { USDT: '2' }, prices: {}, positions: [], asOf: at, source: 'guard' }, requestedAtSeq);
    expect(after).toBe(state);
    expect(after.venues.spot?.holdings?.balances).toEqual({ USDT: '7' });
  });

  it('round-trips through JSON (continue-as-new)', () => {
    const { state } = feed([spot(1, '5000'), perp(1, '4000')]);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});
