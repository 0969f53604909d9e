/**
 * The guard decider and its watcher: starting and replacing watcher generations, using (or refusing, or ignoring)
 * observations, feed health, restarts with backoff, the periodic read the watcher makes unnecessary, and the coarse
 * search attributes. Pure: no Temporal, no clock.
 */
import type { AccountConfigInput } from '../../src/domain/config';
import { GuardCommand, GuardFeatures, GuardMessage, createGuardState, decide } from '../../src/domain/guard';
import { at, configOf, eventTypes, reading, run, types } from './decider-helpers';
import { WatcherPlan } from '../../src/domain/watcher';
import { viewOf } from '../../src/domain/view';





// This file's own helpers.
const FEATURES: GuardFeatures = { watcher: true, coarseSearchAttributes: false };
const plans = (commands: GuardCommand[]): WatcherPlan[] => commands.flatMap((c) => (c.type === 'StartWatcher' ? [c.plan] : []));
const reads = (commands: GuardCommand[]) => commands.flatMap((c) => (c.type === 'ReadVenue' ? [c.venue] : []));
const alertKinds = (commands: GuardCommand[]) => commands.flatMap((c) => (c.type === 'SendAlert' ? [c.alert.kind] : []));
const timers = (commands: GuardCommand[], timer: string) => commands.flatMap((c) => (c.type === 'StartTimer' && c.timer === timer ? [c.seconds] : []));
const published = (commands: GuardCommand[]) => commands.flatMap((c) => (c.type === 'PublishSearchAttributes' ? [{ state: c.state, lossPct: c.lossPct }] : []));

interface VenueObs {
  usdt?: string;
  mode?: 'streaming' | 'polling';
  dataAgeSeconds?: number | null;
  lastError?: string | null;
  ordersOpened?: number;
}
/** An observation of watcher `generation`: per venue, its feed and (with `usdt`) a reading. */
function observed(seconds: number, generation: number, venues: Record<string, VenueObs>): GuardMessage {
  const entries = Object.entries(venues).map(([venue, v]) => [
    venue,
    {
      feed: { mode: v.mode ?? 'streaming', dataAgeSeconds: v.dataAgeSeconds === undefined ? 0 : v.dataAgeSeconds, fallbacks: 0, lastError: v.lastError ?? null },
      ...(v.usdt !== undefined ? { reading: { balances: { USDT: v.usdt }, prices: {}, positions: [] } } : {}),
      ordersOpened: v.ordersOpened ?? 0,
    },
  ]);
  return { type: 'WatcherObserved', at: at(seconds), observation: { generation, reason: 'snapshot', level: null, venues: Object.fromEntries(entries) } };
}

/** A guard started with the watcher (generation 1 running), both start-up reads done at 5000 USDT (no loss). */
function watched(extra: Partial<AccountConfigInput> = {}, features: GuardFeatures = FEATURES) {
  return run(createGuardState(configOf(extra)), [
    { type: 'Started', at: at(0), continued: false, features },
    { type: 'VenueRead', at: at(0), venue: 'spot', ticket: 1, reading: reading('spot', '5000') },
    { type: 'VenueRead', at: at(0), venue: 'perp', ticket: 2, reading: reading('perp', '5000') },
  ]).state;
}

/** The watched guard tripped by its watcher's reading of a 10 % loss at 2 s. */
function trippedByWatcher() {
  return run(watched(), [observed(2, 1, { spot: { usdt: '5000' }, perp: { usdt: '4000' } })]);
}

describe('starting a watcher', () => {
  it('Started with features.watcher starts generation 1, for an Active breaker; the view shows it', () => {
    const d = decide(createGuardState(configOf()), { type: 'Started', at: at(0), continued: false, features: FEATURES });
    expect(plans(d.commands)).toEqual([expect.objectContaining({ accountId: 'acct', generation: 1, triggered: false, venues: ['spot', 'perp'] })]);
    // The rest of the start is as before.
    expect(reads(d.commands)).toEqual(['spot', 'perp']);
    expect(viewOf(d.state).watcher).toEqual({ generation: 1, running: true, startedAt: at(0), spoke: false, lastHeardAt: null, failures: 0, lastError: null, feeds: {} });
  });

  it.each<[string, GuardMessage, Partial<AccountConfigInput>]>([
    ['a run that predates the features', { type: 'Started', at: at(0), continued: false }, {}],
    ['features all off', { type: 'Started', at: at(0), continued: false, features: { watcher: false, coarseSearchAttributes: false } }, {}],
    ['config.watch.enabled false', { type: 'Started', at: at(0), continued: false, features: FEATURES }, { watch: { enabled: false } }],
  ])('no watcher with %s', (_label, started, extra) => {
    const d = decide(createGuardState(configOf(extra)), started);
    expect(plans(d.commands)).toEqual([]);
    expect(viewOf(d.state).watcher).toBeNull();
    // The guard still reads the venues itself.
    expect(reads(d.commands)).toEqual(['spot', 'perp']);
  });

  it('a continued run starts a new generation (the old run’s watcher stops with its run)', () => {
    const d = decide(watched(), { type: 'Started', at: at(30), continued: true, features: FEATURES });
    expect(plans(d.commands)).toEqual([expect.objectContaining({ generation: 2, triggered: false })]);
    expect(d.state.watcher).toMatchObject({ generation: 2, running: true, startedAt: at(30) });
  });

  it('a continued run of a Triggered guard starts a Triggered watcher', () => {
    const d = decide(trippedByWatcher().state, { type: 'Started', at: at(30), continued: true, features: FEATURES });
    expect(plans(d.commands)).toEqual([expect.objectContaining({ generation: 3, triggered: true })]);
  });
});

describe('observations', () => {
  it('a breaching reading trips the breaker with no bot report; the same decision starts a Triggered watcher', () => {
    const { state, last } = trippedByWatcher();
    expect(state.counters.reportsAccepted).toBe(0);
    expect(state.counters.observations).toBe(1);
    expect(state.breaker).toMatchObject({ name: 'Triggered', cause: 'loss', lossPct: '10', totalValue: '9000' });
    expect(types(last.commands).filter((t) => t === 'CancelOrders')).toHaveLength(2);
    expect(alertKinds(last.commands)).toContain('CircuitBreakerTriggered');
    expect(plans(last.commands)).toEqual([expect.objectContaining({ generation: 2, triggered: true })]);
    expect(state.watcher).toMatchObject({ generation: 2, triggered: true, running: true, lastHeardAt: at(2) });
    expect(viewOf(state).venues.perp).toMatchObject({ holdingsFrom: 'watcher', receivedAt: at(2) });
  });

  it('a reading that does not breach changes the holdings and starts no watcher', () => {
    const { state, last } = run(watched(), [observed(2, 1, { perp: { usdt: '4900' } })]);
    expect(state.breaker.name).toBe('Active');
    expect(state.venues.perp?.holdings).toMatchObject({ balances: { USDT: '4900' }, source: 'watcher' });
    expect(plans(last.commands)).toEqual([]);
  });

  it('an observation of the replaced generation is ignored and counted', () => {
    const tripped = trippedByWatcher().state;
    const d = decide(tripped, observed(3, 1, { spot: { usdt: '1' }, perp: { usdt: '1', ordersOpened: 5 } }));
    expect(d.state.counters).toEqual({ ...tripped.counters, observationsIgnored: 1 });
    expect(d.commands).toEqual([]);
    expect({ ...d.state, counters: tripped.counters }).toEqual(tripped);
  });

  it('an observation before any watcher (a run without the feature) is ignored', () => {
    const state = watched({}, { watcher: false, coarseSearchAttributes: false });
    const d = decide(state, observed(3, 1, { perp: { usdt: '1' } }));
    expect(d.state.counters.observationsIgnored).toBe(1);
    expect(d.state.breaker.name).toBe('Active');
  });

  it.each<[string, unknown]>([
    ['an unknown venue', { generation: 1, reason: 'snapshot', level: null, venues: { kraken: {} } }],
    ['null', null],
    ['a NaN data age', { generation: 1, reason: 'breach', level: 'breach', venues: { perp: { feed: { mode: 'streaming', dataAgeSeconds: NaN, fallbacks: 0, lastError: null }, reading: { balances: { USDT: '1' }, prices: {}, positions: [] }, ordersOpened: 0 } } }],
  ])('an invalid observation (%s) is recorded and changes nothing else', (_label, observation) => {
    const before = watched();
    const d = decide(before, { type: 'WatcherObserved', at: at(5), observation });
    expect(d.state.counters).toEqual({ ...before.counters, observationsRejected: 1 });
    expect(d.state.events.slice(before.events.length)).toEqual([{ type: 'ObservationRejected', at: at(5), error: expect.stringMatching(/^observation/) }]);
    expect(d.commands).toEqual([]);
    expect({ ...d.state, counters: before.counters, events: before.events }).toEqual(before);
  });

  it('a feed falling back to polling is recorded once, and the view shows every feed', () => {
    const first = run(watched(), [observed(2, 1, { spot: {}, perp: {} })]);
    expect(eventTypes(first.state)).not.toContain('FeedChanged');
    const { state } = run(first.state, [
      observed(3, 1, { spot: { mode: 'polling', lastError: 'stream silent 10 s', dataAgeSeconds: 1.5 }, perp: {} }),
      observed(4, 1, { spot: { mode: 'polling', lastError: 'stream silent 10 s', dataAgeSeconds: 0.5 }, perp: {} }),
    ]);
    expect(state.events.filter((e) => e.type === 'FeedChanged')).toEqual([{ type: 'FeedChanged', at: at(3), venue: 'spot', mode: 'polling', error: 'stream silent 10 s' }]);
    const view = viewOf(state).watcher;
    expect(view?.feeds.spot).toMatchObject({ mode: 'polling', dataAgeSeconds: 0.5, lastError: 'stream silent 10 s', reportedAt: at(4) });
    expect(view?.feeds.perp).toMatchObject({ mode: 'streaming', reportedAt: at(4) });
    expect(view?.lastHeardAt).toBe(at(4));
    // And back to streaming: one more event.
    const back = run(state, [observed(5, 1, { spot: {}, perp: {} })]).state;
    expect(back.events.filter((e) => e.type === 'FeedChanged').map((e) => (e as { mode: string }).mode)).toEqual(['polling', 'streaming']);
  });

  it('a first observation already polling is recorded', () => {
    const { state } = run(watched(), [observed(2, 1, { perp: { mode: 'polling', lastError: 'no stream' } })]);
    expect(state.events.filter((e) => e.type === 'FeedChanged')).toEqual([{ type: 'FeedChanged', at: at(2), venue: 'perp', mode: 'polling', error: 'no stream' }]);
  });

  describe('orders opened on a Triggered account', () => {
    /** Tripped, both cancel passes done: no pass under way. */
    function tripped() {
      const { state } = trippedByWatcher();
      const round = state.flatten!.round;
      return run(state, [
        { type: 'CancelPassDone', at: at(3), venue: 'spot', round, cancelled: 0, openAfter: 0 },
        { type: 'CancelPassDone', at: at(3), venue: 'perp', round, cancelled: 0, openAfter: 0 },
      ]).state;
    }
    /** As tripped(), and the Triggered watcher has spoken once (its first-words sweep done). */
    function quiet() {
      const state = run(tripped(), [observed(3, 2, { spot: {}, perp: {} })]).state;
      const round = state.flatten!.round;
      return run(state, [
        { type: 'CancelPassDone', at: at(3), venue: 'spot', round, cancelled: 0, openAfter: 0 },
        { type: 'CancelPassDone', at: at(3), venue: 'perp', round, cancelled: 0, openAfter: 0 },
      ]).state;
    }

    it("a Triggered watcher's first observation sweeps every venue once (orders placed before its order streams were up)", () => {
      const state = tripped();
      expect(state.watcher).toMatchObject({ generation: 2, triggered: true, spoke: false });
      const first = decide(state, observed(4, 2, { spot: {}, perp: {} }));
      expect(first.commands.filter((c) => c.type === 'CancelOrders').map((c) => (c as { venue: string }).venue)).toEqual(['spot', 'perp']);
      expect(first.state.watcher!.spoke).toBe(true);
      const round = state.flatten!.round;
      const done = run(first.state, [
        { type: 'CancelPassDone', at: at(4), venue: 'spot', round, cancelled: 0, openAfter: 0 },
        { type: 'CancelPassDone', at: at(4), venue: 'perp', round, cancelled: 0, openAfter: 0 },
      ]).state;
      expect(types(decide(done, observed(5, 2, { spot: {}, perp: {} })).commands)).not.toContain('CancelOrders');
    });

    it('start a cancel pass on that venue at once', () => {
      const state = quiet();
      expect(Object.values(state.flatten!.venues).every((p) => p.pass === null)).toBe(true);
      const d = decide(state, observed(4, 2, { spot: { ordersOpened: 2 }, perp: {} }));
      expect(d.commands.filter((c) => c.type === 'CancelOrders')).toEqual([{ type: 'CancelOrders', venue: 'spot', round: state.flatten!.round }]);
      expect(d.state.flatten!.venues.spot).toMatchObject({ pass: 'cancel' });
    });

    it('no orders, no pass', () => {
      const d = decide(quiet(), observed(4, 2, { spot: {}, perp: {} }));
      expect(types(d.commands)).not.toContain('CancelOrders');
    });

    it('on an Active account, orders start nothing', () => {
      const d = decide(watched(), observed(4, 1, { spot: { ordersOpened: 2 } }));
      expect(types(d.commands)).not.toContain('CancelOrders');
    });
  });

  it.each<[string, number, boolean]>([
    ['older than staleAfterSeconds makes the account blind', 400, true],
    ['younger than staleAfterSeconds does not', 299, false],
  ])('a reading %s', (_label, dataAgeSeconds, blind) => {
    const { state } = run(watched(), [observed(1000, 1, { spot: { usdt: '5000', dataAgeSeconds }, perp: { usdt: '5000' } })]);
    expect(state.venues.spot?.holdings).toMatchObject({ source: 'watcher', receivedAt: at(1000 - dataAgeSeconds) });
    if (blind) {
      expect(state.blind).toMatchObject({ since: at(1000), reason: expect.stringMatching(/spot/) });
      expect(state.blind?.reason).not.toMatch(/perp/);
      expect(eventTypes(state)).toContain('ValuationBlind');
    } else {
      expect(state.blind).toBeUndefined();
    }
  });

  it.each<[string, number, string, 'bot' | 'watcher']>([
    ['a bot report received after the watcher’s data was fresh is kept', 5, '5000', 'bot'],
    ['a watcher reading fresher than the bot report replaces it', 1, '1000', 'watcher'],
  ])('%s', (_label, dataAgeSeconds, usdt, source) => {
    const { state } = run(watched(), [
      { type: 'ReportReceived', at: at(10), report: { venue: 'spot', seq: 1, balances: { USDT: '5000' } } },
      // At 12 s, data 5 s old was fresh at 7 s (before the report); 1 s old, at 11 s (after it).
      observed(12, 1, { spot: { usdt: '1000', dataAgeSeconds } }),
    ]);
    expect(state.venues.spot?.holdings).toMatchObject({ balances: { USDT: usdt }, source });
    expect(state.breaker.name).toBe(source === 'bot' ? 'Active' : 'Triggered');
  });
});

describe('a watcher that ends', () => {
  const failed = (seconds: number, generation: number, error: string | null = 'VenueUnavailable: stream refused'): GuardMessage => ({
    type: 'WatcherEnded',
    at: at(seconds),
    generation,
    error,
  });

  it('with an error: recorded, alerted once per streak, restarted by the watcher timer with a backoff up to a minute', () => {
    let state = watched();
    let now = 10;
    const backoffs: number[] = [];
    const stopped: number[] = [];
    const alerted: number[] = [];
    for (let generation = 1; generation <= 14; generation++) {
      const end = decide(state, failed(now, generation));
      const seconds = timers(end.commands, 'watcher');
      expect(seconds).toHaveLength(1);
      backoffs.push(seconds[0]!);
      expect(plans(end.commands)).toEqual([]);
      expect(end.state.watcher).toMatchObject({ running: false, failures: generation, lastError: 'VenueUnavailable: stream refused' });
      stopped.push(end.state.events.filter((e) => e.type === 'WatcherStopped').length);
      alerted.push(alertKinds(end.commands).filter((k) => k === 'WatcherDown').length);
      now += seconds[0]!;
      // The timer restarts it: a new generation.
      const restart = decide(end.state, { type: 'TimerFired', at: at(now), timer: 'watcher' });
      expect(plans(restart.commands)).toEqual([expect.objectContaining({ generation: generation + 1 })]);
      state = restart.state;
    }
    expect(backoffs).toEqual([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 60, 60]);
    expect(stopped).toEqual(Array(14).fill(1));
    expect(alerted).toEqual([1, ...Array(13).fill(0)]);
    expect(viewOf(state).watcher).toMatchObject({ generation: 15, running: true, failures: 14 });

    // An observation ends the streak: recorded, and the next failure alerts again.
    const restored = decide(state, observed(now + 1, 15, { spot: {} }));
    expect(restored.state.events.filter((e) => e.type === 'WatcherRestored')).toEqual([{ type: 'WatcherRestored', at: at(now + 1), generation: 15 }]);
    expect(restored.state.watcher).toMatchObject({ failures: 0, lastError: null });
    const again = decide(restored.state, failed(now + 2, 15));
    expect(alertKinds(again.commands)).toEqual(['WatcherDown']);
    expect(timers(again.commands, 'watcher')).toEqual([5]);
    expect(again.state.events.filter((e) => e.type === 'WatcherStopped')).toHaveLength(2);
  });

  it('the WatcherStopped event and the WatcherDown alert carry the error', () => {
    const d = decide(watched(), failed(10, 1, 'ApplicationFailure: ws 1006'));
    expect(d.state.events.filter((e) => e.type === 'WatcherStopped')).toEqual([{ type: 'WatcherStopped', at: at(10), generation: 1, error: 'ApplicationFailure: ws 1006' }]);
    const alert = d.commands.find((c) => c.type === 'SendAlert');
    expect(alert).toMatchObject({ alert: { kind: 'WatcherDown', accountId: 'acct', message: expect.stringContaining('ApplicationFailure: ws 1006') } });
  });

  it('the watcher timer fired early (re-armed since) starts nothing', () => {
    const end = decide(watched(), failed(10, 1));
    expect(decide(end.state, { type: 'TimerFired', at: at(14), timer: 'watcher' }).commands).toEqual([]);
  });

  it('handing over (no error): the next generation starts at once, with no event or alert', () => {
    const before = watched();
    const d = decide(before, failed(10, 1, null));
    expect(plans(d.commands)).toEqual([expect.objectContaining({ generation: 2, triggered: false })]);
    expect(types(d.commands)).not.toContain('StartTimer');
    expect(types(d.commands)).not.toContain('SendAlert');
    expect(d.state.events).toEqual(before.events);
    expect(d.state.watcher).toMatchObject({ generation: 2, running: true, failures: 0 });
  });

  it.each<[string, string | null]>([
    ['with an error', 'boom'],
    ['handing over', null],
  ])('an old generation ending (%s) is ignored', (_label, error) => {
    const tripped = trippedByWatcher().state;
    const d = decide(tripped, failed(5, 1, error));
    expect(d.commands).toEqual([]);
    expect(d.state).toEqual(tripped);
  });
});

describe('the periodic valuation with a watcher', () => {
  /** At 110 s the watcher reports both venues; spot's data is `spotAge` seconds old. The valuation timer fires at 120 s. */
  function valuationAfter(spotAge: number, messages: GuardMessage[] = []) {
    const { state } = run(watched(), [observed(110, 1, { spot: { usdt: '5000', dataAgeSeconds: spotAge }, perp: { usdt: '5000' } }), ...messages]);
    return decide(state, { type: 'TimerFired', at: at(120), timer: 'valuation' });
  }

  it('does not read venues the running watcher kept fresh within valuationIntervalSeconds', () => {
    const d = valuationAfter(0);
    expect(reads(d.commands)).toEqual([]);
    expect(timers(d.commands, 'valuation')).toEqual([60]);
  });

  it('reads a venue whose watcher data is older than valuationIntervalSeconds', () => {
    // Spot's data was fresh at 45 s: 75 s old at 120 s.
    expect(reads(valuationAfter(65).commands)).toEqual(['spot']);
  });

  it('reads every venue while the watcher is down', () => {
    const d = valuationAfter(0, [{ type: 'WatcherEnded', at: at(115), generation: 1, error: 'boom' }]);
    expect(reads(d.commands)).toEqual(['spot', 'perp']);
  });

  it('reads every venue when the guard runs no watcher', () => {
    const state = watched({}, { watcher: false, coarseSearchAttributes: false });
    expect(reads(decide(state, { type: 'TimerFired', at: at(60), timer: 'valuation' }).commands)).toEqual(['spot', 'perp']);
  });
});

describe('search attributes', () => {
  /** Losses in turn (the perp venue moves, spot stays at 5000), each seen by the watcher; what each publishes. */
  function publishedFor(coarseSearchAttributes: boolean, perpBalances: string[]) {
    let state = watched({}, { watcher: true, coarseSearchAttributes });
    return perpBalances.map((usdt, i) => {
      const d = decide(state, observed(10 + i, state.watcher!.generation, { perp: { usdt } }));
      state = d.state;
      return published(d.commands);
    });
  }

  it('coarse: only when the whole-percent loss (floored) or the state changes', () => {
    // Losses 1.2 %, 1.7 %, 1.99 %, 2.1 %, 2.9 %, 3.2 % (Warning), 3.4 %, 0 %.
    expect(publishedFor(true, ['4880', '4830', '4801', '4790', '4710', '4680', '4660', '5000'])).toEqual([
      [{ state: 'Active', lossPct: '1' }],
      [],
      [],
      [{ state: 'Active', lossPct: '2' }],
      [],
      [{ state: 'Warning', lossPct: '3' }],
      [],
      [{ state: 'Active', lossPct: '0' }],
    ]);
  });

  it('without the feature: tenths, as before', () => {
    expect(publishedFor(false, ['4880', '4830', '4831', '4790'])).toEqual([
      [{ state: 'Active', lossPct: '1.2' }],
      [{ state: 'Active', lossPct: '1.7' }],
      [],
      [{ state: 'Active', lossPct: '2.1' }],
    ]);
  });
});
