/**
 * The guard decider, message by message: every message type against the states it can meet, with the commands and
 * events it must produce. No Temporal: the decider is pure, so these run in microseconds.
 */
import { parseCarriedState } from '../../src/domain/carried-state';
import type { AccountConfigInput } from '../../src/domain/config';
import { GuardMessage, createGuardState, decide, passUnderWay } from '../../src/domain/guard';
import { at, configOf, eventTypes, reading, run, types } from './decider-helpers';
import {
  MAX_ASSET_CHARS,
  MAX_DECIMAL_CHARS,
  MAX_NONZERO_BALANCES,
  MAX_PENDING_ALERTS,
  MAX_POSITIONS_PER_REPORT,
  MAX_RECENT_EVENTS_BYTES,
  MAX_SYMBOL_CHARS,
  MAX_VENUE_ID_CHARS,
  MAX_VENUES_PER_ACCOUNT,
} from '../../src/domain/limits';
import { BalanceReport } from '../../src/domain/report';
import { viewOf } from '../../src/domain/view';



const spot = (seq: number, usdt: string, extra: Partial<BalanceReport> = {}): BalanceReport => ({ venue: 'spot', seq, balances: { USDT: usdt }, ...extra });
const perp = (seq: number, usdt: string): BalanceReport => ({ venue: 'perp', seq, balances: { USDT: usdt } });


const report = (seconds: number, r: unknown): GuardMessage => ({ type: 'ReportReceived', at: at(seconds), report: r });


/** A started guard whose start-up reads finished and whose two venues both reported 5000 USDT (value 10000, no loss). */
function healthy(extra: Partial<AccountConfigInput> = {}) {
  return run(createGuardState(configOf(extra)), [
    { type: 'Started', at: at(0), continued: false },
    { type: 'VenueRead', at: at(0), venue: 'spot', ticket: 1, reading: reading('spot', '5000') },
    { type: 'VenueRead', at: at(0), venue: 'perp', ticket: 2, reading: reading('perp', '5000') },
    report(1, spot(1, '5000')),
    report(1, perp(1, '5000')),
  ]).state;
}

/** A guard tripped by a 10 % loss, its shutdown ordered. */
function tripped(extra: Partial<AccountConfigInput> = {}) {
  return run(healthy(extra), [report(2, perp(2, '4000'))]);
}

describe('start', () => {
  it('reads every venue, arms the valuation timer and publishes the search attributes', () => {
    const d = decide(createGuardState(configOf()), { type: 'Started', at: at(0), continued: false });
    expect(d.commands).toEqual([
      { type: 'ReadVenue', venue: 'spot', ticket: 1, referenceCurrency: 'USDT' },
      { type: 'ReadVenue', venue: 'perp', ticket: 2, referenceCurrency: 'USDT' },
      { type: 'StartTimer', timer: 'valuation', seconds: 60 },
      { type: 'PublishSearchAttributes', state: 'Active', accountId: 'acct', lossPct: null },
    ]);
  });

  it('after continue-as-new, starts again whatever was under way: reads, passes, alerts, timers', () => {
    const { state } = tripped();
    // Mid-shutdown: both cancel passes and the trip alert are under way, the sweep timer armed.
    const d = decide(state, { type: 'Started', at: at(5), continued: true });
    expect(types(d.commands).sort()).toEqual(['CancelOrders', 'CancelOrders', 'SendAlert', 'StartTimer', 'StartTimer'].sort());
    const timers = d.commands.filter((c) => c.type === 'StartTimer');
    // The sweep was due 30 s after the trip at 2 s: 27 s remain at 5 s.
    expect(timers).toContainEqual({ type: 'StartTimer', timer: 'sweep', seconds: 27 });
    expect(timers).toContainEqual({ type: 'StartTimer', timer: 'valuation', seconds: 55 });
  });
});

describe('reports', () => {
  type Row = [label: string, messages: GuardMessage[], outcome: string | undefined, rejection: RegExp | undefined];
  const base = healthy();
  const rows: Row[] = [
    ['a newer seq is accepted', [report(2, spot(2, '5000'))], 'accepted', undefined],
    ['the same seq is a duplicate', [report(2, spot(1, '5000'))], 'duplicate', undefined],
    ['a lower seq is stale', [report(2, spot(2, '5000')), report(3, spot(1, '5000'))], 'stale', undefined],
    ['a seq jump beyond maxSeqJump is refused', [report(2, spot(1 + 1_000_001, '5000'))], undefined, /jumps from 1 to 1000002, more than maxSeqJump \(1000000\).*resyncSeq/],
    ['a jump of exactly maxSeqJump is accepted', [report(2, spot(1 + 1_000_000, '5000'))], 'accepted', undefined],
    ['an invalid payload is refused, naming the field', [report(2, { venue: 'spot', seq: -1, balances: {} })], undefined, /report\.seq/],
    ['an unknown venue is refused', [report(2, { venue: 'kraken', seq: 1, balances: {} })], undefined, /unknown venue/],
    ['an undecodable payload is refused', [{ type: 'ReportUndecodable', at: at(2), error: 'unknown encoding "json/protobuf"' }], undefined, /could not be decoded.*json\/protobuf/],
  ];
  it.each(rows)('%s', (_label, messages, outcome, rejection) => {
    const { last, state } = run(base, messages);
    if (rejection) {
      expect(last.reply?.rejection?.message).toMatch(rejection);
      expect(state.counters.reportsRejected).toBe(1);
      expect(eventTypes(state)).toContain('ReportRejected');
      // A refused report changes nothing else.
      expect(state.venues).toEqual(base.venues);
      expect(state.breaker).toEqual(base.breaker);
    } else {
      expect(last.reply).toMatchObject({ outcome });
      expect(last.reply?.rejection).toBeUndefined();
    }
  });

  it('a runaway seq is recovered by an operator resync, and recorded', () => {
    const { state, last } = run(base, [
      report(2, spot(9007199254740991, '5000')),
      { type: 'OperatorRequested', at: at(3), action: 'resyncSeq', request: { venue: 'spot', seq: null, operator: 'ops', reason: 'bot restarted' } },
      report(4, spot(7, '5000')),
    ]);
    expect(last.reply).toMatchObject({ outcome: 'accepted' });
    expect(state.venues.spot?.lastSeq).toBe(7);
    expect(state.events.find((e) => e.type === 'SeqResynchronised')).toMatchObject({ venue: 'spot', from: 1, to: null, operator: 'ops' });
  });

  it('drops zero balance rows before storing a report', () => {
    const { state } = run(base, [report(2, spot(2, '5000', { balances: { USDT: '5000', DOGE: '0.00000000', ETH: '0' } }))]);
    expect(state.venues.spot?.holdings?.balances).toEqual({ USDT: '5000' });
  });

  it('values, warns and trips with inclusive boundaries; the shutdown is ordered on every venue', () => {
    const warned = run(base, [report(2, perp(2, '4700'))]);
    expect(warned.state.breaker).toMatchObject({ name: 'Warning', cause: 'loss' });
    const { state, commands } = run(warned.state, [report(3, perp(3, '4500'))]);
    expect(state.breaker).toMatchObject({ name: 'Triggered', cause: 'loss', lossPct: '5', totalValue: '9500', shutdown: 'inProgress' });
    expect(commands.filter((c) => c.type === 'CancelOrders').map((c) => (c as { venue: string }).venue)).toEqual(['spot', 'perp']);
    expect(commands.filter((c) => c.type === 'SendAlert').map((c) => (c as { alert: { kind: string } }).alert.kind)).toEqual(['CircuitBreakerTriggered']);
    expect(eventTypes(state)).toEqual(['WarningTriggered', 'CircuitBreakerTriggered']);
  });

  it('an update waits for the read its missing prices caused, and only for one that starts after it', () => {
    // A read of spot is under way (from the valuation timer) when a report arrives with an unpriced asset.
    const s0 = run(base, [{ type: 'TimerFired', at: at(60), timer: 'valuation' }]).state;
    const inFlight = s0.venues.spot!.reads.inFlight!;
    const d = decide(s0, report(61, spot(2, '5000', { balances: { USDT: '5000', DOGE: '100' } })));
    const waitFor = d.reply!.waitFor!;
    expect(waitFor.spot).toBeGreaterThan(inFlight);
    // The read under way finishes: the waiter still waits; the queued read starts.
    const after = decide(d.state, { type: 'VenueRead', at: at(62), venue: 'spot', ticket: inFlight, reading: { venue: 'spot', balances: { USDT: '5000' }, prices: {}, positions: [], asOf: at(60) } });
    expect(after.state.venues.spot!.reads.done).toBeLessThan(waitFor.spot!);
    expect(after.commands).toContainEqual({ type: 'ReadVenue', venue: 'spot', ticket: waitFor.spot, referenceCurrency: 'USDT' });
    // A failed read also ends the wait: an update always gets its answer.
    const failed = decide(after.state, { type: 'VenueReadFailed', at: at(63), venue: 'spot', ticket: waitFor.spot!, error: 'VenueUnavailable: timeout' });
    expect(failed.state.venues.spot!.reads.done).toBeGreaterThanOrEqual(waitFor.spot!);
  });

  it('a reading taken before a newer bot report does not replace it, but its prices are kept', () => {
    const s0 = run(base, [{ type: 'TimerFired', at: at(60), timer: 'valuation' }]).state;
    const ticket = s0.venues.spot!.reads.inFlight!;
    const { state } = run(s0, [
      report(61, spot(2, '5000', { balances: { USDT: '4000', BTC: '0.025' }, prices: {} })),
      { type: 'VenueRead', at: at(62), venue: 'spot', ticket, reading: { venue: 'spot', balances: { USDT: '1' }, prices: { BTC: '40000' }, positions: [], asOf: at(60) } },
    ]);
    expect(state.venues.spot!.holdings!.balances).toEqual({ USDT: '4000', BTC: '0.025' });
    expect(state.prices.BTC).toMatchObject({ price: '40000', venue: 'spot' });
    expect(state.lastValuation!.totalValue).toBe('10000');
  });
});

describe('never blind', () => {
  it('an asset that cannot be priced counts as zero, is shown with since-when, raises one event and one alert; a 40 % loss still trips', () => {
    const { state, commands } = run(healthy(), [
      report(2, spot(2, '5000', { balances: { USDT: '5000', DELISTED: '123' } })),
      report(3, spot(3, '5000', { balances: { USDT: '5000', DELISTED: '123' } })),
    ]);
    expect(viewOf(state).unpriced).toEqual([{ venue: 'spot', asset: 'DELISTED', amount: '123', since: at(2) }]);
    expect(eventTypes(state).filter((t) => t === 'AssetUnpriced')).toHaveLength(1);
    expect(commands.filter((c) => c.type === 'SendAlert' && c.alert.kind === 'AssetUnpriced')).toHaveLength(1);
    // It is looked up once, at once.
    expect(commands.filter((c) => c.type === 'ReadVenue')).toHaveLength(1);
    const crash = run(state, [report(4, perp(2, '1000'))]).state;
    expect(crash.breaker).toMatchObject({ name: 'Triggered', cause: 'loss' });
    expect(viewOf(crash).lossPct).toBe('40.00');
  });

  it('an ignored asset is neither valued nor alerted', () => {
    const { state, commands } = run(healthy({ blindPolicy: { ignoreAssets: ['DELISTED'] } }), [report(2, spot(2, '5000', { balances: { USDT: '5000', DELISTED: '1' } }))]);
    expect(viewOf(state).unpriced).toEqual([]);
    expect(types(commands)).not.toContain('SendAlert');
  });

  it('fail closed: a venue that cannot be read is blind, then Warning after warnAfterSeconds, then Triggered after tripAfterSeconds', () => {
    const config = { blindPolicy: { warnAfterSeconds: 120, tripAfterSeconds: 600 } };
    let state = run(createGuardState(configOf(config)), [{ type: 'Started', at: at(0), continued: false }, report(1, spot(1, '5000'))]).state;
    const perpTicket = state.venues.perp!.reads.inFlight!;
    const blind = run(state, [{ type: 'VenueReadFailed', at: at(5), venue: 'perp', ticket: perpTicket, error: 'VenueAuthFailed: -2015' }]);
    state = blind.state;
    expect(viewOf(state).blind).toMatchObject({ since: at(5), reason: 'perp: never valued', policy: 'failClosed' });
    expect(blind.commands).toContainEqual({ type: 'StartTimer', timer: 'blind', seconds: 120 });
    expect(blind.commands.some((c) => c.type === 'SendAlert' && c.alert.kind === 'ValuationBlind')).toBe(true);
    state = run(state, [{ type: 'TimerFired', at: at(125), timer: 'blind' }]).state;
    expect(state.breaker).toMatchObject({ name: 'Warning', cause: 'blind' });
    const trip = run(state, [{ type: 'TimerFired', at: at(605), timer: 'blind' }]);
    expect(trip.state.breaker).toMatchObject({ name: 'Triggered', cause: 'blind', lossPct: null });
    expect(types(trip.commands)).toContain('CancelOrders');
  });

  it('a stale price worth more than dust is blind; policy lastKnownPrice shows it but never escalates', () => {
    const build = (action: 'failClosed' | 'lastKnownPrice') =>
      run(healthy({ blindPolicy: { action, staleAfterSeconds: 300, warnAfterSeconds: 10, tripAfterSeconds: 20 } }), [
        report(2, spot(2, '4000', { balances: { USDT: '4000', BTC: '0.025' }, prices: { BTC: '40000' } })),
        // Later reports carry no price: BTC is valued at its last known price, which ages.
        report(400, spot(3, '4000', { balances: { USDT: '4000', BTC: '0.025' } })),
        report(400, perp(2, '5000')),
        { type: 'TimerFired', at: at(500), timer: 'blind' },
      ]).state;
    const closed = build('failClosed');
    expect(viewOf(closed).blind?.reason).toMatch(/spot: BTC \(worth 1000\) priced \d+ s ago/);
    expect(closed.breaker.name).toBe('Triggered');
    const lenient = build('lastKnownPrice');
    expect(viewOf(lenient).blind).not.toBeNull();
    expect(lenient.breaker.name).toBe('Active');
  });

  it('a blind spot that clears is recorded as restored and stops the escalation', () => {
    let state = run(createGuardState(configOf()), [{ type: 'Started', at: at(0), continued: false }, report(1, spot(1, '5000'))]).state;
    state = run(state, [{ type: 'VenueReadFailed', at: at(2), venue: 'perp', ticket: state.venues.perp!.reads.inFlight!, error: 'down' }]).state;
    state = run(state, [report(3, perp(1, '5000'))]).state;
    expect(viewOf(state).blind).toBeNull();
    expect(eventTypes(state)).toEqual(['VenueReadFailed', 'ValuationBlind', 'ValuationRestored']);
    expect(run(state, [{ type: 'TimerFired', at: at(2000), timer: 'blind' }]).state.breaker.name).toBe('Active');
  });

  it('a venue still being read for the first time is starting, not blind', () => {
    const { state } = run(createGuardState(configOf()), [{ type: 'Started', at: at(0), continued: false }, report(1, spot(1, '5000'))]);
    expect(viewOf(state).blind).toBeNull();
  });
});

describe('shutdown and sweeps', () => {
  const pass = (venue: string, round: number, cancelled: number, openAfter: number, s = 3): GuardMessage => ({ type: 'CancelPassDone', at: at(s), venue, round, cancelled, openAfter });

  it('a venue that still shows orders is passed over again after a second; SystemShutdown is recorded once', () => {
    const { state } = tripped();
    const round = state.flatten!.round;
    const partial = decide(state, pass('spot', round, 3, 1));
    expect(partial.commands).toContainEqual({ type: 'StartTimer', timer: 'pass:spot', seconds: 1 });
    const again = decide(partial.state, { type: 'TimerFired', at: at(4), timer: 'pass:spot' });
    expect(again.commands).toContainEqual({ type: 'CancelOrders', venue: 'spot', round });
    const done = run(again.state, [pass('spot', round, 1, 0, 5), pass('perp', round, 4, 0, 5), pass('perp', round, 0, 0, 6)]);
    expect(done.state.breaker).toMatchObject({ name: 'Triggered', shutdown: 'flat' });
    expect(eventTypes(done.state).filter((t) => t === 'SystemShutdown')).toHaveLength(1);
    expect(viewOf(done.state).shutdown.spot).toMatchObject({ status: 'flat', cancelled: 4, openOrders: 0 });
    expect(viewOf(done.state).shutdownInProgress).toBe(false);
  });

  it('a refusal marks the venue failed, alerts once, and the next sweep retries it', () => {
    const { state } = tripped();
    const round = state.flatten!.round;
    const refused = run(state, [
      { type: 'PassRefused', at: at(3), venue: 'spot', round, failureType: 'VenueAuthFailed', error: 'spot: -2015 Invalid API-key' },
      pass('perp', round, 0, 0),
    ]);
    expect(viewOf(refused.state).shutdown.spot).toMatchObject({ status: 'failed', lastError: 'VenueAuthFailed: spot: -2015 Invalid API-key' });
    expect(refused.commands.filter((c) => c.type === 'SendAlert').map((c) => (c as { alert: { kind: string } }).alert.kind)).toEqual(['VenueAuthFailed']);
    expect(refused.state.breaker).toMatchObject({ shutdown: 'inProgress' });
    const sweep = decide(refused.state, { type: 'TimerFired', at: at(32), timer: 'sweep' });
    expect(sweep.commands).toContainEqual({ type: 'CancelOrders', venue: 'spot', round });
    expect(sweep.commands).toContainEqual({ type: 'StartTimer', timer: 'sweep', seconds: 30 });
  });

  it('while Triggered, sweeps find orders placed after the trigger and record them', () => {
    const { state } = tripped();
    const round = state.flatten!.round;
    const flat = run(state, [pass('spot', round, 3, 0), pass('perp', round, 4, 0)]).state;
    const swept = run(flat, [{ type: 'TimerFired', at: at(32), timer: 'sweep' }, pass('spot', round, 2, 0, 33)]).state;
    expect(swept.events.filter((e) => e.type === 'OrdersSwept')).toEqual([{ type: 'OrdersSwept', at: at(33), venue: 'spot', cancelled: 2 }]);
    expect(eventTypes(swept).filter((t) => t === 'SystemShutdown')).toHaveLength(1);
  });

  it('closes positions after the cancels when configured, and passes again while positions remain', () => {
    const { state } = tripped({ autoClosePositions: true });
    const round = state.flatten!.round;
    const afterCancel = decide(state, pass('perp', round, 4, 0));
    expect(afterCancel.commands).toContainEqual({ type: 'ClosePositions', venue: 'perp', round });
    const remaining = decide(afterCancel.state, { type: 'ClosePassDone', at: at(4), venue: 'perp', round, closed: 1, remaining: 1 });
    expect(remaining.commands).toContainEqual({ type: 'StartTimer', timer: 'pass:perp', seconds: 1 });
    expect(viewOf(remaining.state).shutdown.perp).toMatchObject({ status: 'closing', positionsClosed: 1, openPositions: 1 });
  });

  it('knows when a pass is under way (continue-as-new prefers to wait for its end)', () => {
    const { state } = tripped();
    expect(passUnderWay(healthy())).toBe(false);
    expect(passUnderWay(state)).toBe(true);
    const round = state.flatten!.round;
    expect(passUnderWay(run(state, [pass('spot', round, 3, 0), pass('perp', round, 4, 0)]).state)).toBe(false);
  });

  it('results of an earlier trip are ignored after a reset and a new trip', () => {
    const { state } = tripped();
    const oldRound = state.flatten!.round;
    // The loss is made good (the breaker stays latched), then an operator resets.
    const reset = run(state, [report(3, perp(3, '5000')), { type: 'OperatorRequested', at: at(3), action: 'reset', request: { operator: 'ops', reason: 'checked' } }]).state;
    expect(reset.breaker.name).toBe('Active');
    expect(reset.flatten).toBeUndefined();
    const again = run(reset, [{ type: 'OperatorRequested', at: at(4), action: 'halt', request: { operator: 'ops', reason: 'again' } }]).state;
    const late = decide(again, pass('spot', oldRound, 9, 0));
    expect(late.state.flatten).toEqual(again.flatten);
  });
});

describe('operators', () => {
  const op = (action: 'reset' | 'disable' | 'enable' | 'halt', seconds = 3): GuardMessage => ({ type: 'OperatorRequested', at: at(seconds), action, request: { operator: 'alice', reason: 'why' } });

  it('halt trips now with the same shutdown and events as a loss trip, and records who and why', () => {
    const { state, commands } = run(healthy(), [op('halt')]);
    expect(state.breaker).toMatchObject({ name: 'Triggered', cause: 'halt', reason: 'halted by alice: why', lossPct: '0', totalValue: '10000' });
    expect(state.events.at(-1)).toMatchObject({ type: 'CircuitBreakerTriggered', cause: 'halt', operator: 'alice' });
    expect(types(commands)).toEqual(expect.arrayContaining(['CancelOrders', 'CancelOrders', 'SendAlert', 'StartTimer']));
  });

  it('halt works on a Disabled breaker and is refused on a Triggered one', () => {
    expect(run(healthy(), [op('disable'), op('halt')]).state.breaker.name).toBe('Triggered');
    expect(run(tripped().state, [op('halt')]).last.reply?.rejection).toMatchObject({ type: 'NotAllowedInThisState' });
  });

  it.each([
    ['missing operator', { reason: 'x' }, /operator/],
    ['control characters', { operator: 'a\u0007', reason: 'x' }, /control characters/],
    ['not an object', 'reset please', /reset/],
  ])('refuses a malformed request (%s) and changes nothing', (_l, request, message) => {
    const base = tripped().state;
    const d = decide(base, { type: 'OperatorRequested', at: at(3), action: 'reset', request });
    expect(d.reply?.rejection?.message).toMatch(message);
    expect(d.state.breaker).toEqual(base.breaker);
  });
});

describe('alerts', () => {
  it('an alert that fails is kept, recorded once, and sent again later; nothing waits for it', () => {
    const { state } = tripped();
    const alert = state.alerts.pending[0]!.alert;
    const failed = decide(state, { type: 'AlertFailed', at: at(10), id: alert.id, error: 'ECONNREFUSED' });
    expect(failed.commands).toEqual([{ type: 'StartTimer', timer: 'alerts', seconds: 60 }]);
    expect(viewOf(failed.state).alertsPending).toBe(1);
    // A visible condition, with when and why, until it is delivered.
    expect(viewOf(failed.state).alertsUndelivered).toEqual([
      { id: alert.id, kind: 'CircuitBreakerTriggered', at: alert.at, failedSince: at(10), attempts: 1, lastError: 'ECONNREFUSED' },
    ]);
    const retry = decide(failed.state, { type: 'TimerFired', at: at(70), timer: 'alerts' });
    expect(retry.commands).toEqual([{ type: 'SendAlert', alert }]);
    const delivered = decide(retry.state, { type: 'AlertDelivered', at: at(71), id: alert.id });
    expect(viewOf(delivered.state).alertsPending).toBe(0);
    expect(viewOf(delivered.state).alertsUndelivered).toEqual([]);
    expect(eventTypes(delivered.state).filter((t) => t === 'AlertUndelivered')).toHaveLength(1);
  });

  it('undelivered alerts are bounded and the dropped ones counted', () => {
    let state = healthy();
    for (let i = 0; i < MAX_PENDING_ALERTS + 5; i++) state = decide(state, { type: 'CancellationRequested', at: at(i) }).state;
    expect(state.alerts.pending).toHaveLength(MAX_PENDING_ALERTS);
    expect(state.counters.alertsDropped).toBe(5 + 0);
  });
});

describe('timers, cancellation, bounds, search attributes', () => {
  it('a timer that fires before it is due (an earlier arming) is ignored', () => {
    const s = healthy();
    const early = decide(s, { type: 'TimerFired', at: at(30), timer: 'valuation' });
    expect(early.commands).toEqual([]);
    const due = decide(s, { type: 'TimerFired', at: at(60), timer: 'valuation' });
    expect(types(due.commands)).toEqual(['ReadVenue', 'ReadVenue', 'StartTimer']);
  });

  it('a cancellation request is recorded and alerted, and protection goes on', () => {
    const { state } = tripped();
    const d = decide(state, { type: 'CancellationRequested', at: at(5) });
    expect(d.state.breaker).toEqual(state.breaker);
    expect(d.state.flatten).toEqual(state.flatten);
    expect(eventTypes(d.state).at(-1)).toBe('CancellationIgnored');
    expect(d.commands.map((c) => (c.type === 'SendAlert' ? c.alert.kind : c.type))).toEqual(['CancellationIgnored']);
  });

  it('events stay bounded in bytes even when each is large', () => {
    let state = healthy();
    for (let i = 0; i < 300; i++) state = decide(state, report(2, { venue: 'spot', seq: 'x'.repeat(2_000_000) })).state;
    expect(JSON.stringify(state.events).length).toBeLessThanOrEqual(MAX_RECENT_EVENTS_BYTES);
    expect(state.counters.reportsRejected).toBe(300);
  });

  it('search attributes are published only when the state or the loss (to 0.1 %) changes', () => {
    const s = healthy();
    const same = decide(s, report(2, perp(2, '4999.99')));
    expect(types(same.commands)).not.toContain('PublishSearchAttributes');
    const moved = decide(s, report(2, perp(2, '4900')));
    expect(moved.commands).toContainEqual({ type: 'PublishSearchAttributes', state: 'Active', accountId: 'acct', lossPct: '1.0' });
  });
});

describe('carried state', () => {
  it('round-trips through JSON and parses as carried', () => {
    const { state } = tripped();
    const parsed = parseCarriedState(JSON.parse(JSON.stringify(state)), state.config);
    expect(parsed).toEqual({ ok: true, value: state });
  });

  it('migrates a version 1 state mid-shutdown: still Triggered, shutdown outstanding, swept at once', () => {
    const config = configOf();
    const v1 = {
      version: 1,
      config,
      breaker: { name: 'Triggered', at: at(1), lossPct: '10', totalValue: '9000', shutdown: 'inProgress' },
      venues: { spot: { lastSeq: 4, holdings: { balances: { USDT: '4000', BTC: '0.1' }, prices: { BTC: '50000' }, positions: [], asOf: at(1), source: 'bot' } }, perp: { lastSeq: null } },
      events: [{ type: 'CircuitBreakerTriggered', at: at(1), lossPct: '10', totalValue: '9000' }],
      counters: { reportsAccepted: 4, reportsDuplicate: 0, reportsStale: 0, reportsRejected: 0, valuations: 4 },
      pendingShutdown: { closePositions: false, orderedAt: at(1) },
      shutdown: { spot: { status: 'flat', cancelled: 3, openOrders: 0, attempts: 1, updatedAt: at(2) } },
    };
    const parsed = parseCarriedState(v1, config);
    if (!parsed.ok) throw new Error(parsed.error);
    expect(parsed.value.breaker).toMatchObject({ name: 'Triggered', cause: 'loss', shutdown: 'inProgress' });
    expect(parsed.value.prices.BTC).toMatchObject({ price: '50000' });
    expect(parsed.value.flatten).toMatchObject({ confirmed: false, venues: { spot: { status: 'flat', cancelled: 3 }, perp: { status: 'cancelling' } } });
    const d = decide(parsed.value, { type: 'Started', at: at(10), continued: true });
    expect(d.commands).toContainEqual({ type: 'StartTimer', timer: 'sweep', seconds: 0 });
  });

  it.each([
    ['null', null, /input\.state/],
    ['a number', 5, /input\.state/],
    ['an empty object', {}, /breaker/],
    ['an unknown version', { version: 99, breaker: { name: 'Active' } }, /version/],
  ])('refuses %s', (_l, raw, message) => {
    const parsed = parseCarriedState(raw, configOf());
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(message);
  });
});

describe('worst-case carried state', () => {
  it('stays far below the 2 MB payload limit with every input at its cap', () => {
    const venues = Array.from({ length: MAX_VENUES_PER_ACCOUNT }, (_, i) => `venue-${'v'.repeat(MAX_VENUE_ID_CHARS - 9)}${i}`.slice(-MAX_VENUE_ID_CHARS));
    const config = configOf({ venues });
    const amount = `${'9'.repeat(25)}.${'9'.repeat(MAX_DECIMAL_CHARS - 26)}`;
    expect(amount).toHaveLength(MAX_DECIMAL_CHARS);
    let state = decide(createGuardState(config), { type: 'Started', at: at(0), continued: false }).state;
    venues.forEach((venue, v) => {
      const asset = (i: number) => `A${v}X${i}`.padEnd(MAX_ASSET_CHARS, 'Z');
      const balances = Object.fromEntries(Array.from({ length: MAX_NONZERO_BALANCES }, (_, i) => [asset(i), amount]));
      // Half the assets priced (price book), half not (the unpriced list): both kinds of entry at their cap.
      const prices = Object.fromEntries(Array.from({ length: MAX_NONZERO_BALANCES / 2 }, (_, i) => [asset(i), amount]));
      const positions = Array.from({ length: MAX_POSITIONS_PER_REPORT }, (_, i) => ({
        symbol: `P${i}`.padEnd(MAX_SYMBOL_CHARS, 'S'),
        side: 'long',
        contracts: amount,
        unrealizedPnl: amount,
        entryPrice: amount,
        markPrice: amount,
      }));
      const d = decide(state, report(1, { venue, seq: 1, balances, prices, positions }));
      expect(d.reply?.rejection).toBeUndefined();
      state = d.state;
    });
    // Events at their byte cap, undelivered alerts at theirs.
    for (let i = 0; i < 400; i++) state = decide(state, report(2, { venue: 'x'.repeat(100), seq: i, balances: {} })).state;
    for (let i = 0; i < MAX_PENDING_ALERTS; i++) state = decide(state, { type: 'CancellationRequested', at: at(3) }).state;
    const bytes = JSON.stringify({ config: state.config, state }).length;
    // The README states this figure; the payload limit is 2 MB.
    console.log(`worst-case carried state: ${(bytes / 1024).toFixed(0)} KiB`);
    expect(bytes).toBeLessThan(1024 * 1024);
  });
});
