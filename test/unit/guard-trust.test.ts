/**
 * The guard decider with the worker's trust anchor (features.trust): loading the anchor and the audit log's latch,
 * signed operator actions (refusals, replays, expiry, permissions, second-operator approvals), signed bot reports,
 * and the audit entries queued for the log. Signatures are made with real Ed25519 keys; the decider's clock is each
 * message's `at`, and every request is signed against that same clock. Pure: no Temporal.
 */
import {
  AUDIT_RETRY_SECONDS,
  GuardCommand,
  GuardFeatures,
  GuardMessage,
  GuardState,
  MAX_PENDING_AUDIT,
  OperatorAction,
  REFUSAL_ALERT_SECONDS,
  TRUST_REFRESH_SECONDS,
  createGuardState,
  decide,
} from '../../src/domain/guard';
import { MAX_SIGNED_VALIDITY_SECONDS, TrustView } from '../../src/domain/trust';
import { canonicalJson, keyIdOf, newEd25519KeyPair } from '../../src/domain/signing';
import { signBotReport, signOperatorRequest } from '../../src/trust/sign-request';
import { viewOf } from '../../src/domain/view';
import { at, configOf, eventTypes, reading, run, types } from './decider-helpers';

// This file's own helpers.
const TRUST: GuardFeatures = { watcher: false, coarseSearchAttributes: false, trust: true };
const ALL = ['reset', 'disable', 'enable', 'halt', 'resyncSeq'] as const;

const ALICE = newEd25519KeyPair();
const BOB = newEd25519KeyPair();
const CAROL = newEd25519KeyPair();
const MALLORY = newEd25519KeyPair();
const BOT_SPOT = newEd25519KeyPair();
const BOT_PERP = newEd25519KeyPair();
type Key = { secretKey: string; publicKey: string };

/** The account's view of the anchor: alice and bob may do anything, carol may only enable; no approvals, no bot keys. */
function viewWith(extra: Partial<TrustView> = {}): TrustView {
  return {
    accountId: 'acct',
    listed: true,
    venues: ['spot', 'perp'],
    operators: [
      { id: 'alice', publicKey: ALICE.publicKey, actions: [...ALL] },
      { id: 'bob', publicKey: BOB.publicKey, actions: [...ALL] },
      { id: 'carol', publicKey: CAROL.publicKey, actions: ['enable'] },
    ],
    approval: null,
    bots: null,
    source: 'file /etc/breaker/trust.json sha256:ab12',
    ...extra,
  };
}
const BOTS = [
  { id: 'bot-spot', publicKey: BOT_SPOT.publicKey, venues: ['spot'] },
  { id: 'bot-perp', publicKey: BOT_PERP.publicKey, venues: ['perp'] },
];
const APPROVAL = { actions: ['reset', 'disable'] as NonNullable<TrustView['approval']>['actions'], windowSeconds: 60 };

const started = (seconds: number, extra: Partial<Extract<GuardMessage, { type: 'Started' }>> = {}): GuardMessage => ({
  type: 'Started',
  at: at(seconds),
  continued: false,
  features: TRUST,
  runId: 'run-1',
  ...extra,
});
/**
 * What loadTrust answers. `config`: the account's last accepted config, by default this guard's own (a restart with
 * the same limits: nothing to check); the tests of the config check give another, or none (a new account).
 */
const loadOf = (view: unknown = viewWith(), latch: unknown = { tripped: false }, recentNonces: unknown = [], config: string | null = canonicalJson(configOf())) => ({
  view,
  latch,
  recentNonces,
  ...(config !== null ? { config } : {}),
});
const loaded = (seconds: number, result: unknown = loadOf()): GuardMessage => ({ type: 'TrustLoaded', at: at(seconds), result });
const loadFailed = (seconds: number, error = 'ENOENT: /etc/breaker/trust.json'): GuardMessage => ({ type: 'TrustLoadFailed', at: at(seconds), error });
const timer = (seconds: number, name: 'trust' | 'audit'): GuardMessage => ({ type: 'TimerFired', at: at(seconds), timer: name });
const report = (seconds: number, r: unknown, validating?: boolean): GuardMessage => ({ type: 'ReportReceived', at: at(seconds), report: r, ...(validating ? { validating } : {}) });
const perp = (seq: number, usdt: string) => ({ venue: 'perp', seq, balances: { USDT: usdt } });
const spot = (seq: number, usdt: string) => ({ venue: 'spot', seq, balances: { USDT: usdt } });

/** A request signed at `seconds` (so it expires `ttl` seconds later on the decider's clock). */
function signed(seconds: number, action: string, key: Key, operator: string, args: Record<string, unknown> = {}, extra: { reason?: string; accountId?: string; ttlSeconds?: number } = {}) {
  return signOperatorRequest({
    accountId: extra.accountId ?? 'acct',
    action,
    operator,
    reason: extra.reason ?? 'checked the venues',
    args,
    secretKey: key.secretKey,
    now: new Date(Date.parse(at(seconds))),
    ...(extra.ttlSeconds !== undefined ? { ttlSeconds: extra.ttlSeconds } : {}),
  });
}
const nonceOf = (request: Record<string, unknown>) => (request.auth as { nonce: string }).nonce;
const op = (seconds: number, action: OperatorAction, request: unknown, validating?: boolean): GuardMessage => ({
  type: 'OperatorRequested',
  at: at(seconds),
  action,
  request,
  ...(validating ? { validating } : {}),
});
const unsigned = (seconds: number, action: OperatorAction = 'reset', operator = 'alice'): GuardMessage => op(seconds, action, { operator, reason: 'let me in' });

const alertKinds = (commands: GuardCommand[]) => commands.flatMap((c) => (c.type === 'SendAlert' ? [c.alert.kind] : []));
const timers = (commands: GuardCommand[], name: string) => commands.flatMap((c) => (c.type === 'StartTimer' && c.timer === name ? [c.seconds] : []));
const writes = (commands: GuardCommand[]) => commands.flatMap((c) => (c.type === 'WriteAudit' ? [c.entries] : []));
const loads = (commands: GuardCommand[]) => commands.filter((c) => c.type === 'LoadTrust');
const since = (before: GuardState, after: GuardState) => after.events.slice(before.events.length);
const pendingIds = (s: GuardState) => s.audit!.pending.map((e) => e.eventId);

/** A guard with the anchor loaded at 0 s and both start-up reads done at 5000 USDT (value 10000, no loss). */
function trusted(view: TrustView = viewWith()) {
  return run(createGuardState(configOf()), [
    started(0),
    loaded(0, loadOf(view)),
    { type: 'VenueRead', at: at(0), venue: 'spot', ticket: 1, reading: reading('spot', '5000') },
    { type: 'VenueRead', at: at(0), venue: 'perp', ticket: 2, reading: reading('perp', '5000') },
  ]).state;
}

/** The trusted guard tripped at 1 s by a (unsigned, bots: null) report of a 10 % loss; its trip entry is in flight. */
function tripped(view: TrustView = viewWith()) {
  return run(trusted(view), [report(1, perp(1, '4000'))]).state;
}

/** Tripped, then perp back at 5000 (so that a reset does not trip again at once). */
function recovered(view: TrustView = viewWith()) {
  return run(tripped(view), [report(2, perp(2, '5000'))]).state;
}

describe('a run with the trust anchor starts', () => {
  it('issues LoadTrust and creates the trust and audit state with the run id', () => {
    const d = decide(createGuardState(configOf()), started(0));
    expect(loads(d.commands)).toEqual([{ type: 'LoadTrust', accountId: 'acct' }]);
    expect(d.state.trust).toEqual({ failures: 0, lastError: null, usedNonces: {}, approvals: [], configToCheck: { signedBy: undefined } });
    expect(d.state.audit).toEqual({ runId: 'run-1', nextId: 1, pending: [], inFlight: false });
    // Nothing to write yet; the rest of the start is as before.
    expect(writes(d.commands)).toEqual([]);
    expect(types(d.commands).filter((t) => t === 'ReadVenue')).toHaveLength(2);
    expect(viewOf(d.state).trust).toEqual({ source: null, loadedAt: null, listed: false, operators: [], approvalRequiredFor: [], botsSignReports: false, lastError: null });
  });

  it('without a runId the entries are prefixed with the account id', () => {
    const d = decide(createGuardState(configOf()), { type: 'Started', at: at(0), continued: false, features: TRUST });
    expect(d.state.audit?.runId).toBe('acct');
  });

  it('a continued run loads the anchor again and re-sends pending entries; new entries carry the new run id', () => {
    const before = tripped();
    // The trip entry was sent and never acknowledged when the run continued as new.
    expect(before.audit).toMatchObject({ runId: 'run-1', inFlight: true, nextId: 2 });
    expect(pendingIds(before)).toEqual(['run-1-1']);
    const d = decide(before, started(5, { continued: true, runId: 'run-2' }));
    expect(loads(d.commands)).toEqual([{ type: 'LoadTrust', accountId: 'acct' }]);
    expect(writes(d.commands)).toEqual([[expect.objectContaining({ eventId: 'run-1-1', kind: 'CircuitBreakerTriggered' })]]);
    expect(d.state.audit).toMatchObject({ runId: 'run-2', nextId: 2, inFlight: true });
    // The trust state is carried as it was (the view stays until the new load answers).
    expect(d.state.trust?.view).toEqual(before.trust?.view);

    // A new entry: the new run's prefix, the counter carried on; the old one keeps its id.
    const next = run(d.state, [unsigned(6)]).state;
    expect(pendingIds(next)).toEqual(['run-1-1', 'run-2-2']);
  });

  it('a continued run with nothing pending sends no write', () => {
    const before = run(tripped(), [{ type: 'AuditWritten', at: at(2), ids: ['run-1-1'] }]).state;
    const d = decide(before, started(5, { continued: true, runId: 'run-2' }));
    expect(writes(d.commands)).toEqual([]);
    expect(d.state.audit).toMatchObject({ runId: 'run-2', inFlight: false, pending: [] });
  });
});

describe('loading the trust anchor', () => {
  it('a valid answer is stored and the refresh timer armed; the timer loads it again', () => {
    const first = decide(createGuardState(configOf()), started(0)).state;
    const d = decide(first, loaded(1));
    expect(d.state.trust).toMatchObject({ view: viewWith(), loadedAt: at(1), failures: 0, lastError: null });
    expect(timers(d.commands, 'trust')).toEqual([TRUST_REFRESH_SECONDS]);
    expect(d.state.timers.trust).toBe(at(1 + TRUST_REFRESH_SECONDS));
    expect(d.state.events).toEqual(first.events);
    // Not due yet: nothing; due: LoadTrust.
    expect(loads(decide(d.state, timer(100, 'trust')).commands)).toEqual([]);
    expect(loads(decide(d.state, timer(1 + TRUST_REFRESH_SECONDS, 'trust')).commands)).toEqual([{ type: 'LoadTrust', accountId: 'acct' }]);
  });

  it('the view shows the loaded anchor (public data only)', () => {
    const s = trusted(viewWith({ approval: APPROVAL, bots: BOTS }));
    expect(viewOf(s).trust).toEqual({
      source: 'file /etc/breaker/trust.json sha256:ab12',
      loadedAt: at(0),
      listed: true,
      operators: [
        { id: 'alice', actions: [...ALL] },
        { id: 'bob', actions: [...ALL] },
        { id: 'carol', actions: ['enable'] },
      ],
      approvalRequiredFor: ['reset', 'disable'],
      botsSignReports: true,
      lastError: null,
    });
    expect(JSON.stringify(viewOf(s))).not.toContain(ALICE.secretKey);
  });

  const manyOperators = Array.from({ length: 101 }, (_, i) => ({ id: `op${i}`, publicKey: ALICE.publicKey, actions: ['reset'] }));
  it.each<[string, unknown, RegExp]>([
    ['null', null, /not an object/],
    ['a string', 'view', /not an object/],
    ['a view that is not an object', loadOf('x'), /trust view: must be an object/],
    ['the view of another account', loadOf(viewWith({ accountId: 'other' })), /view of account "other", not acct/],
    ['latch.tripped not a boolean', loadOf(viewWith(), { tripped: 'yes' }), /latch\.tripped must be a boolean/],
    ['no latch', { view: viewWith(), recentNonces: [] }, /latch\.tripped must be a boolean/],
    ['101 operators', loadOf({ ...viewWith(), operators: manyOperators }), /operators/],
    ['65 venues', loadOf({ ...viewWith(), venues: Array.from({ length: 65 }, (_, i) => `v${i}`) }), /venues/],
    ['an unknown action', loadOf({ ...viewWith(), operators: [{ id: 'a', publicKey: ALICE.publicKey, actions: ['rm -rf'] }] }), /operators/],
    ['an approval window of 5 s', loadOf({ ...viewWith(), approval: { actions: ['reset'], windowSeconds: 5 } }), /approval/],
  ])('an invalid answer (%s) is a failed load', (_label, result, error) => {
    const first = decide(createGuardState(configOf()), started(0)).state;
    const d = decide(first, loaded(1, result));
    expect(d.state.trust).toMatchObject({ failures: 1, lastError: expect.stringMatching(error) });
    expect(d.state.trust?.view).toBeUndefined();
    expect(since(first, d.state)).toEqual([{ type: 'TrustLoadFailed', at: at(1), error: expect.stringMatching(error) }]);
    expect(alertKinds(d.commands)).toEqual(['TrustAnchorUnavailable']);
    expect(timers(d.commands, 'trust')).toEqual([5]);
  });

  it('an invalid answer after a good one keeps the good view but counts as a failure', () => {
    const before = trusted();
    const d = decide(before, loaded(10, loadOf(viewWith({ accountId: 'other' }))));
    expect(d.state.trust?.view).toEqual(viewWith());
    expect(d.state.trust?.failures).toBe(1);
    expect(viewOf(d.state).trust?.lastError).toMatch(/not acct/);
  });

  it('a failure streak: one event and one alert, backoff of 5 s per failure up to the refresh interval; a good load ends it', () => {
    let s = decide(createGuardState(configOf()), started(0)).state;
    const before = s;
    let t = 0;
    const backoffs: number[] = [];
    const alerts: string[] = [];
    for (let i = 0; i < 65; i++) {
      const d = decide(s, loadFailed(t));
      backoffs.push(...timers(d.commands, 'trust'));
      alerts.push(...alertKinds(d.commands));
      s = d.state;
      t += backoffs[backoffs.length - 1]!;
      // The timer fires: LoadTrust again.
      const fired = decide(s, timer(t, 'trust'));
      expect(loads(fired.commands)).toHaveLength(1);
      s = fired.state;
    }
    expect(backoffs.slice(0, 4)).toEqual([5, 10, 15, 20]);
    // Failure 59 waits 295 s, every later one the refresh interval.
    expect(backoffs[58]).toBe(295);
    expect(backoffs.slice(59)).toEqual(Array(6).fill(TRUST_REFRESH_SECONDS));
    expect(Math.max(...backoffs)).toBe(TRUST_REFRESH_SECONDS);
    expect(alerts).toEqual(['TrustAnchorUnavailable']);
    expect(eventTypes(s).slice(before.events.length)).toEqual(['TrustLoadFailed']);
    expect(s.trust).toMatchObject({ failures: 65, lastError: 'ENOENT: /etc/breaker/trust.json' });

    // A good load ends the streak; the next failure is a new streak: event and alert again.
    const good = decide(s, loaded(t + 1)).state;
    expect(good.trust).toMatchObject({ failures: 0, lastError: null });
    const again = decide(good, loadFailed(t + 2, 'EACCES'));
    expect(since(good, again.state)).toEqual([{ type: 'TrustLoadFailed', at: at(t + 2), error: 'EACCES' }]);
    expect(alertKinds(again.commands)).toEqual(['TrustAnchorUnavailable']);
  });

  it('TrustLoaded and TrustLoadFailed are ignored by a run without the trust state', () => {
    const s = decide(createGuardState(configOf()), { type: 'Started', at: at(0), continued: false }).state;
    for (const m of [loaded(1), loadFailed(1)]) {
      const d = decide(s, m);
      expect(d.state).toEqual(s);
      expect(d.commands).toEqual([]);
    }
  });

  it('recentNonces are merged into the used nonces (until the longest validity); non-strings and long ones skipped', () => {
    const s = trusted();
    const withOld = { ...s, trust: { ...s.trust!, usedNonces: { keptNonce_0123456789: at(50) } } };
    const long = 'n'.repeat(65);
    const d = decide(withOld, loaded(10, loadOf(viewWith(), { tripped: false }, ['logNonce_0123456789', 'keptNonce_0123456789', 42, long])));
    expect(d.state.trust?.usedNonces).toEqual({
      keptNonce_0123456789: at(50),
      logNonce_0123456789: at(10 + MAX_SIGNED_VALIDITY_SECONDS),
    });
  });

  it('a request whose nonce the audit log already saw (an earlier run) is refused as a replay', () => {
    const request = signed(2, 'reset', ALICE, 'alice');
    const s = run(recovered(), [loaded(3, loadOf(viewWith(), { tripped: false }, [nonceOf(request)]))]).state;
    const d = decide(s, op(4, 'reset', request));
    expect(d.reply?.rejection).toEqual({ type: 'Unauthorised', message: expect.stringMatching(/already used: a replayed request/) });
    expect(d.state.breaker.name).toBe('Triggered');
  });
});

describe('the audit log’s latch', () => {
  const latched = (seconds: number, latchAt?: string) => loaded(seconds, loadOf(viewWith(), { tripped: true, ...(latchAt ? { at: latchAt } : {}), reason: 'loss 7.2 %' }));

  it('a recalled trip raises exactly one CircuitBreakerTriggered alert, like every other trip', () => {
    const d = decide(trusted(), latched(5, '2025-12-31T23:00:00.000Z'));
    expect(alertKinds(d.commands)).toEqual(['CircuitBreakerTriggered']);
    expect(d.state.alerts.pending).toHaveLength(1);
  });

  it('a tripped latch on a guard whose breaker never changed trips it (recalled): shutdown, alert, audit entry', () => {
    const before = trusted();
    expect(before.breakerChangedAt).toBeUndefined();
    const d = decide(before, latched(5, '2025-12-31T23:00:00.000Z'));
    expect(d.state.breaker).toMatchObject({ name: 'Triggered', cause: 'recalled' });
    expect(d.state.breakerChangedAt).toBe(at(5));
    expect(d.commands.filter((c) => c.type === 'CancelOrders')).toEqual([
      { type: 'CancelOrders', venue: 'spot', round: 1 },
      { type: 'CancelOrders', venue: 'perp', round: 1 },
    ]);
    expect(alertKinds(d.commands)).toContain('CircuitBreakerTriggered');
    const [event] = since(before, d.state);
    expect(event).toMatchObject({ type: 'CircuitBreakerTriggered', cause: 'recalled', reason: expect.stringContaining('2025-12-31T23:00:00.000Z (loss 7.2 %)') });
    expect(writes(d.commands)).toEqual([[expect.objectContaining({ eventId: 'run-1-1', kind: 'TripRecalled', data: { cause: 'recalled' } })]]);
    expect(d.commands).toContainEqual({ type: 'PublishSearchAttributes', state: 'Triggered', accountId: 'acct', lossPct: '0.0' });
  });

  it('a latch older than the breaker’s last change (this run reset it since) is ignored; a newer one is not', () => {
    const reset = run(recovered(), [op(3, 'reset', signed(3, 'reset', ALICE, 'alice'))]).state;
    expect(reset.breaker.name).toBe('Active');
    expect(reset.breakerChangedAt).toBe(at(3));
    const old = decide(reset, latched(4, at(1)));
    expect(old.state.breaker.name).toBe('Active');
    expect(types(old.commands)).not.toContain('CancelOrders');
    expect(alertKinds(old.commands)).toEqual([]);
    expect(old.state.events).toEqual(reset.events);

    const newer = decide(reset, latched(6, at(5)));
    expect(newer.state.breaker).toMatchObject({ name: 'Triggered', cause: 'recalled' });
  });

  it('a latch on a guard already Triggered changes nothing', () => {
    const before = tripped();
    const d = decide(before, latched(5, at(4)));
    expect(d.state.breaker).toEqual(before.breaker);
    expect(d.state.events).toEqual(before.events);
    // Not even a timer: the refresh armed by the load at 0 s is due sooner than one from now would be.
    expect(d.commands).toEqual([]);
    expect(d.state.timers.trust).toBe(at(TRUST_REFRESH_SECONDS));
    expect(d.state.flatten).toEqual(before.flatten);
  });

  it('a Disabled guard trips on a latch newer than its disable', () => {
    const disabled = run(trusted(), [op(2, 'disable', signed(2, 'disable', ALICE, 'alice'))]).state;
    expect(disabled.breaker.name).toBe('Disabled');
    expect(decide(disabled, latched(4, at(1))).state.breaker.name).toBe('Disabled');
    const d = decide(disabled, latched(4, at(3)));
    expect(d.state.breaker).toMatchObject({ name: 'Triggered', cause: 'recalled' });
    expect(types(d.commands).filter((t) => t === 'CancelOrders')).toHaveLength(2);
  });

  it('an untripped latch changes nothing', () => {
    const before = trusted();
    const d = decide(before, loaded(5, loadOf(viewWith(), { tripped: false, at: at(4) })));
    expect(d.state.breaker.name).toBe('Active');
    expect(d.state.events).toEqual(before.events);
  });
});

describe('operator requests with the trust anchor', () => {
  it('an unsigned request is refused, recorded, counted and alerted at most once per REFUSAL_ALERT_SECONDS', () => {
    const before = tripped();
    const first = decide(before, unsigned(10));
    expect(first.reply).toEqual({ rejection: { type: 'Unauthorised', message: expect.stringMatching(/^reset: unsigned/) } });
    expect(first.state.breaker.name).toBe('Triggered');
    expect(since(before, first.state)).toEqual([{ type: 'OperatorActionRefused', at: at(10), action: 'reset', operator: 'alice', error: expect.stringMatching(/unsigned/) }]);
    expect(first.state.counters.operatorRequestsRefused).toBe(1);
    expect(alertKinds(first.commands)).toEqual(['UnauthorisedAction']);

    const second = decide(first.state, unsigned(10 + REFUSAL_ALERT_SECONDS - 1));
    expect(second.reply?.rejection?.type).toBe('Unauthorised');
    expect(second.state.counters.operatorRequestsRefused).toBe(2);
    expect(eventTypes(second.state).slice(before.events.length)).toEqual(['OperatorActionRefused', 'OperatorActionRefused']);
    expect(alertKinds(second.commands)).toEqual([]);

    const third = decide(second.state, unsigned(10 + REFUSAL_ALERT_SECONDS));
    expect(third.state.counters.operatorRequestsRefused).toBe(3);
    expect(alertKinds(third.commands)).toEqual(['UnauthorisedAction']);
  });

  it('validating: an authentication failure passes (the handler records it); shape and state errors do not', () => {
    const before = tripped();
    const noAuth = decide(before, op(3, 'reset', { operator: 'alice', reason: 'x' }, true));
    expect(noAuth.reply?.rejection).toBeUndefined();
    const forged = decide(before, op(3, 'reset', { ...signed(3, 'reset', ALICE, 'alice'), reason: 'changed' }, true));
    expect(forged.reply?.rejection).toBeUndefined();
    // The handler, without `validating`, refuses both.
    expect(decide(before, op(3, 'reset', { operator: 'alice', reason: 'x' })).reply?.rejection?.type).toBe('Unauthorised');

    const shape = decide(before, op(3, 'reset', { operator: 'alice' }, true));
    expect(shape.reply?.rejection).toEqual({ type: 'InvalidOperatorRequest', message: expect.stringMatching(/reason/) });
    const unknownField = decide(before, op(3, 'reset', { ...signed(3, 'reset', ALICE, 'alice'), force: true }, true));
    expect(unknownField.reply?.rejection?.type).toBe('InvalidOperatorRequest');

    // A validly signed reset of an Active guard: refused by the state, validating or not.
    const active = trusted();
    const state = decide(active, op(3, 'reset', signed(3, 'reset', ALICE, 'alice'), true));
    expect(state.reply?.rejection).toEqual({ type: 'NotAllowedInThisState', message: expect.stringMatching(/Triggered/) });
  });

  it('a valid signed reset of a Triggered guard: Active, OperatorActionAccepted then CircuitBreakerReset; the same request again is a replay', () => {
    const before = recovered();
    const request = signed(3, 'reset', ALICE, 'alice');
    const d = decide(before, op(3, 'reset', request));
    expect(d.reply).toEqual({});
    expect(d.state.breaker.name).toBe('Active');
    expect(since(before, d.state).slice(0, 2)).toEqual([
      { type: 'OperatorActionAccepted', at: at(3), action: 'reset', operator: 'alice', keyId: keyIdOf(ALICE.publicKey), reason: 'checked the venues', nonce: nonceOf(request) },
      { type: 'CircuitBreakerReset', at: at(3), operator: 'alice', reason: 'checked the venues' },
    ]);
    expect(d.state.trust?.usedNonces).toEqual({ [nonceOf(request)]: (request.auth as { expiresAt: string }).expiresAt });
    expect(d.state.counters.operatorRequestsRefused).toBeUndefined();

    // Tripped again, the same signed request is refused: its nonce was used.
    const again = run(d.state, [op(4, 'halt', signed(4, 'halt', BOB, 'bob')), op(5, 'reset', request)]);
    expect(again.decisions[0]!.state.breaker.name).toBe('Triggered');
    expect(again.last.reply?.rejection).toEqual({ type: 'Unauthorised', message: expect.stringMatching(/already used: a replayed request/) });
    expect(again.state.breaker.name).toBe('Triggered');
  });

  it('used nonces are pruned once expired', () => {
    const first = signed(3, 'reset', ALICE, 'alice', {}, { ttlSeconds: 100 });
    const s = run(recovered(), [op(3, 'reset', first)]).state;
    expect(Object.keys(s.trust!.usedNonces)).toEqual([nonceOf(first)]);
    const second = signed(104, 'halt', ALICE, 'alice');
    const d = decide(s, op(104, 'halt', second));
    expect(d.reply).toEqual({});
    expect(Object.keys(d.state.trust!.usedNonces)).toEqual([nonceOf(second)]);
  });

  it.each<[string, () => { state: GuardState; message: GuardMessage }, RegExp]>([
    ['expired', () => ({ state: recovered(), message: op(400, 'reset', signed(3, 'reset', ALICE, 'alice')) }), /expired at/],
    ['at its very expiry', () => ({ state: recovered(), message: op(303, 'reset', signed(3, 'reset', ALICE, 'alice')) }), /expired at/],
    ['expiring too far ahead', () => ({ state: recovered(), message: op(3, 'reset', signed(100, 'reset', ALICE, 'alice', {}, { ttlSeconds: MAX_SIGNED_VALIDITY_SECONDS })) }), /more than 600 s ahead/],
    ['signed for another account', () => ({ state: recovered(), message: op(3, 'reset', signed(3, 'reset', ALICE, 'alice', {}, { accountId: 'other' })) }), /signature does not match/],
    ['signed for another action', () => ({ state: recovered(), message: op(3, 'reset', signed(3, 'disable', ALICE, 'alice')) }), /signature does not match/],
    ['signed by another operator’s key', () => ({ state: recovered(), message: op(3, 'reset', signed(3, 'reset', BOB, 'alice')) }), /signature does not match operator "alice"/],
    ['with the reason changed', () => ({ state: recovered(), message: op(3, 'reset', { ...signed(3, 'reset', ALICE, 'alice'), reason: 'other' }) }), /signature does not match/],
    ['from an operator not listed', () => ({ state: recovered(), message: op(3, 'reset', signed(3, 'reset', MALLORY, 'mallory')) }), /"mallory" is not listed/],
    ['without the permission', () => ({ state: recovered(), message: op(3, 'reset', signed(3, 'reset', CAROL, 'carol')) }), /"carol" may not reset \(allowed: enable\)/],
    ['for an account the anchor does not list', () => ({ state: recovered(viewWith({ listed: false })), message: op(3, 'reset', signed(3, 'reset', ALICE, 'alice')) }), /not listed in the worker's trust anchor/],
    [
      'before the anchor was ever loaded',
      () => ({ state: run(createGuardState(configOf()), [started(0), report(1, perp(1, '4000'))]).state, message: op(3, 'reset', signed(3, 'reset', ALICE, 'alice')) }),
      /has not loaded its worker's trust anchor/,
    ],
    ['after the last load failed', () => ({ state: run(recovered(), [loadFailed(2, 'EACCES')]).state, message: op(3, 'reset', signed(3, 'reset', ALICE, 'alice')) }), /could not be read \(EACCES\)/],
  ])('a request %s is refused and changes nothing but the record', (_label, make, error) => {
    const { state, message } = make();
    const d = decide(state, message);
    expect(d.reply?.rejection).toEqual({ type: 'Unauthorised', message: expect.stringMatching(error) });
    expect(d.state.breaker).toEqual(state.breaker);
    expect(d.state.trust?.usedNonces).toEqual(state.trust?.usedNonces);
    expect(since(state, d.state)).toEqual([expect.objectContaining({ type: 'OperatorActionRefused', action: 'reset' })]);
    expect(d.state.counters.operatorRequestsRefused).toBe((state.counters.operatorRequestsRefused ?? 0) + 1);
  });

  it('a valid signature still fails while the anchor cannot be read, and works again once it is', () => {
    const failing = run(recovered(), [loadFailed(2)]).state;
    expect(decide(failing, op(3, 'reset', signed(3, 'reset', ALICE, 'alice'))).state.breaker.name).toBe('Triggered');
    const back = run(failing, [loaded(4)]).state;
    expect(decide(back, op(5, 'reset', signed(5, 'reset', ALICE, 'alice'))).state.breaker.name).toBe('Active');
  });

  it('resyncSeq is signed with its arguments {venue, seq}; a seq changed after signing is refused', () => {
    const before = run(trusted(), [report(1, spot(7, '5000'))]).state;
    const request = signed(2, 'resyncSeq', ALICE, 'alice', { venue: 'spot', seq: 3 });
    const tampered = decide(before, op(2, 'resyncSeq', { ...request, seq: 100 }));
    expect(tampered.reply?.rejection).toEqual({ type: 'Unauthorised', message: expect.stringMatching(/signature does not match/) });
    expect(tampered.state.venues.spot?.lastSeq).toBe(7);

    const d = decide(before, op(2, 'resyncSeq', request));
    expect(d.reply).toEqual({});
    expect(d.state.venues.spot?.lastSeq).toBe(3);
    expect(since(before, d.state)).toEqual([
      { type: 'OperatorActionAccepted', at: at(2), action: 'resyncSeq', operator: 'alice', keyId: keyIdOf(ALICE.publicKey), reason: 'checked the venues', nonce: nonceOf(request), args: '{"seq":3,"venue":"spot"}' },
      { type: 'SeqResynchronised', at: at(2), venue: 'spot', from: 7, to: 3, operator: 'alice', reason: 'checked the venues' },
    ]);
  });

  it('an invalid resyncSeq shape is refused before any signature check', () => {
    const d = decide(trusted(), op(2, 'resyncSeq', signed(2, 'resyncSeq', ALICE, 'alice', { venue: 'kraken', seq: 3 })));
    expect(d.reply?.rejection?.type).toBe('InvalidOperatorRequest');
    expect(d.state.counters.operatorRequestsRefused).toBeUndefined();
  });
});

describe('second-operator approvals', () => {
  const view = viewWith({ approval: APPROVAL });

  /** alice asks for a reset of the recovered guard at 3 s: it waits for a second operator. */
  function requested() {
    const before = recovered(view);
    const request = signed(3, 'reset', ALICE, 'alice');
    const d = decide(before, op(3, 'reset', request));
    return { before, d, requestId: nonceOf(request) };
  }
  const approve = (seconds: number, key: Key, operator: string, requestId: string) => op(seconds, 'approve', signed(seconds, 'approve', key, operator, { requestId }));

  it('a reset that needs approval waits: ApprovalRequested, a pending entry, the breaker unchanged', () => {
    const { before, d, requestId } = requested();
    expect(d.reply).toEqual({});
    expect(d.state.breaker.name).toBe('Triggered');
    expect(since(before, d.state)).toEqual([
      { type: 'ApprovalRequested', at: at(3), requestId, action: 'reset', operator: 'alice', keyId: keyIdOf(ALICE.publicKey), reason: 'checked the venues', nonce: requestId, expiresAt: at(63) },
    ]);
    expect(viewOf(d.state).pendingApprovals).toEqual([{ id: requestId, action: 'reset', operator: 'alice', reason: 'checked the venues', requestedAt: at(3), expiresAt: at(63) }]);
    expect(d.state.audit!.pending.at(-1)).toMatchObject({ kind: 'OperatorAction', what: 'reset requested, awaiting a second operator', actor: { operator: 'alice', keyId: keyIdOf(ALICE.publicKey) } });
  });

  it('a request the state does not allow is refused at once, with nothing pending', () => {
    const before = trusted(view);
    const d = decide(before, op(3, 'reset', signed(3, 'reset', ALICE, 'alice')));
    expect(d.reply?.rejection).toEqual({ type: 'NotAllowedInThisState', message: expect.stringMatching(/Triggered/) });
    expect(d.state.trust?.approvals).toEqual([]);
    expect(eventTypes(d.state)).not.toContain('ApprovalRequested');
  });

  it('the requester cannot approve their own request', () => {
    const { d, requestId } = requested();
    const self = decide(d.state, approve(4, ALICE, 'alice', requestId));
    expect(self.reply?.rejection).toEqual({ type: 'Unauthorised', message: expect.stringMatching(/a different operator must approve it/) });
    expect(self.state.breaker.name).toBe('Triggered');
    expect(self.state.trust?.approvals).toHaveLength(1);
  });

  it('an unknown requestId is NotAllowedInThisState', () => {
    const { d, requestId } = requested();
    const other = 'x'.repeat(20);
    const r = decide(d.state, approve(4, BOB, 'bob', other));
    expect(r.reply?.rejection).toEqual({ type: 'NotAllowedInThisState', message: expect.stringContaining(`pending: ${requestId}`) });
    expect(r.state.trust?.approvals).toHaveLength(1);
  });

  it('an approver without the pending action’s permission is refused', () => {
    const { d, requestId } = requested();
    const r = decide(d.state, approve(4, CAROL, 'carol', requestId));
    expect(r.reply?.rejection).toEqual({ type: 'Unauthorised', message: expect.stringMatching(/"carol" may not reset/) });
    expect(r.state.breaker.name).toBe('Triggered');
  });

  it('a different operator’s approval carries the action out, naming both keys', () => {
    const { d, requestId } = requested();
    const approval = signed(10, 'approve', BOB, 'bob', { requestId });
    const r = decide(d.state, op(10, 'approve', approval));
    expect(r.reply).toEqual({});
    expect(r.state.breaker.name).toBe('Active');
    expect(since(d.state, r.state).slice(0, 2)).toEqual([
      {
        type: 'OperatorActionAccepted',
        at: at(10),
        action: 'reset',
        operator: 'alice',
        keyId: `${keyIdOf(ALICE.publicKey)}+${keyIdOf(BOB.publicKey)}`,
        approvedBy: 'bob',
        reason: 'checked the venues',
        nonce: requestId,
      },
      { type: 'CircuitBreakerReset', at: at(10), operator: 'alice', reason: 'checked the venues' },
    ]);
    expect(r.state.trust?.approvals).toEqual([]);
    expect(Object.keys(r.state.trust!.usedNonces).sort()).toEqual([requestId, nonceOf(approval)].sort());
    const entry = r.state.audit!.pending.find((e) => e.kind === 'OperatorAction' && e.what === 'reset');
    expect(entry?.actor).toEqual({ operator: 'alice', keyId: `${keyIdOf(ALICE.publicKey)}+${keyIdOf(BOB.publicKey)}`, approvedBy: 'bob' });
    // The same approval again: the request is gone.
    expect(decide(r.state, op(11, 'approve', approval)).reply?.rejection?.type).toBe('NotAllowedInThisState');
  });

  it('a pending request expires after windowSeconds', () => {
    const { d, requestId } = requested();
    expect(decide(d.state, approve(62, BOB, 'bob', requestId)).state.breaker.name).toBe('Active');
    const late = decide(d.state, approve(63, BOB, 'bob', requestId));
    expect(late.reply?.rejection).toEqual({ type: 'NotAllowedInThisState', message: expect.stringMatching(/pending: none.*expired/) });
    expect(late.state.breaker.name).toBe('Triggered');
    expect(late.state.trust?.approvals).toEqual([]);
  });

  it('a disable waits for approval too; an enable (not listed for approval) is carried out at once', () => {
    const request = signed(2, 'disable', ALICE, 'alice');
    const waiting = decide(trusted(view), op(2, 'disable', request)).state;
    expect(waiting.breaker.name).toBe('Active');
    expect(waiting.trust?.approvals.map((a) => [a.id, a.action])).toEqual([[nonceOf(request), 'disable']]);
    const off = decide(waiting, approve(3, BOB, 'bob', nonceOf(request))).state;
    expect(off.breaker.name).toBe('Disabled');
    const on = decide(off, op(4, 'enable', signed(4, 'enable', CAROL, 'carol')));
    expect(on.reply).toEqual({});
    expect(on.state.breaker.name).toBe('Active');
    expect(on.state.trust?.approvals).toEqual([]);
  });
});

describe('reports with the trust anchor', () => {
  it('before the anchor is loaded every report is refused (UnauthenticatedReport) and counted; lastSeq unchanged', () => {
    const before = decide(createGuardState(configOf()), started(0)).state;
    const d = decide(before, report(1, spot(1, '5000')));
    expect(d.reply).toEqual({ rejection: { type: 'UnauthenticatedReport', message: expect.stringMatching(/has not loaded/) } });
    expect(d.state.counters).toMatchObject({ reportsUnauthenticated: 1, reportsRejected: 1, reportsAccepted: 0 });
    expect(d.state.venues.spot?.lastSeq).toBeNull();
    expect(eventTypes(d.state).slice(before.events.length)).toEqual(['ReportRejected']);
    // A report refused is not an audit entry.
    expect(d.state.audit?.pending).toEqual([]);
    expect(writes(d.commands)).toEqual([]);
  });

  it('with bots: null, unsigned reports are accepted', () => {
    const d = decide(trusted(), report(1, spot(1, '5000')));
    expect(d.reply?.outcome).toBe('accepted');
    expect(d.state.venues.spot?.lastSeq).toBe(1);
    expect(d.state.counters.reportsUnauthenticated).toBeUndefined();
  });

  describe('with bots listed', () => {
    const base = trusted(viewWith({ bots: BOTS }));
    it.each<[string, unknown, RegExp]>([
      ['unsigned', spot(2, '5000'), /report\.auth: is required/],
      ['forged (another key)', signBotReport('acct', spot(2, '5000'), 'bot-spot', MALLORY.secretKey), /signature: does not match bot "bot-spot"/],
      ['signed by the bot of another venue', signBotReport('acct', spot(2, '5000'), 'bot-perp', BOT_PERP.secretKey), /may not report for venue "spot"/],
      ['signed by an unknown bot', signBotReport('acct', spot(2, '5000'), 'bot-x', BOT_SPOT.secretKey), /"bot-x" is not a bot of account acct/],
      ['signed for another account', signBotReport('other', spot(2, '5000'), 'bot-spot', BOT_SPOT.secretKey), /signature: does not match/],
      ['changed after signing', { ...signBotReport('acct', spot(2, '5000'), 'bot-spot', BOT_SPOT.secretKey), balances: { USDT: '1' } }, /signature: does not match/],
      ['a forged huge seq', signBotReport('acct', spot(9_000_000_000, '5000'), 'bot-spot', MALLORY.secretKey), /signature/],
    ])('a report %s is refused and moves nothing', (_label, r, error) => {
      const d = decide(base, report(1, r));
      expect(d.reply).toEqual({ rejection: { type: 'UnauthenticatedReport', message: expect.stringMatching(error) } });
      expect(d.state.counters.reportsUnauthenticated).toBe(1);
      expect(d.state.venues).toEqual(base.venues);
      // The real bot's next report is still accepted.
      expect(decide(d.state, report(2, signBotReport('acct', spot(2, '5000'), 'bot-spot', BOT_SPOT.secretKey))).reply?.outcome).toBe('accepted');
    });

    it('a report signed by the venue’s bot is accepted', () => {
      const d = decide(base, report(1, signBotReport('acct', perp(4, '4900'), 'bot-perp', BOT_PERP.secretKey)));
      expect(d.reply?.outcome).toBe('accepted');
      expect(d.state.venues.perp).toMatchObject({ lastSeq: 4, holdings: { balances: { USDT: '4900' }, source: 'bot' } });
    });

    it('validating: the signature is left to the handler (checked once per report); a shape error is refused', () => {
      // The validator's dry run is discarded: an unsigned report passes it, and the handler refuses and records it.
      const d = decide(base, report(1, spot(2, '5000'), true));
      expect(d.reply?.rejection).toBeUndefined();
      const handled = decide(base, report(1, spot(2, '5000')));
      expect(handled.reply?.rejection?.type).toBe('UnauthenticatedReport');
      expect(handled.state.venues.spot?.lastSeq).toBeNull();
      const shape = decide(base, report(1, { venue: 'spot', seq: -1, balances: {} }, true));
      expect(shape.reply?.rejection?.type).toBe('InvalidReport');
    });
  });
});

describe('the audit log', () => {
  it('every risk event and operator action becomes exactly one entry, ids <runId>-<n> increasing', () => {
    const start = trusted();
    const r = run(start, [
      report(1, perp(1, '4700')), // 3 %: Warning
      report(2, perp(2, '5000')), // cleared: Warning
      report(3, perp(3, '4000')), // 10 %: trip
      { type: 'CancelPassDone', at: at(4), venue: 'spot', round: 1, cancelled: 2, openAfter: 0 },
      { type: 'CancelPassDone', at: at(4), venue: 'perp', round: 1, cancelled: 1, openAfter: 0 }, // SystemShutdown
      report(5, perp(4, '5000')),
      unsigned(6), // refused
      op(7, 'reset', signed(7, 'reset', ALICE, 'alice')), // accepted + reset
    ]);
    const entries = r.state.audit!.pending;
    expect(entries.map((e) => [e.eventId, e.kind, e.what])).toEqual([
      ['run-1-1', 'Warning', 'warning (loss)'],
      ['run-1-2', 'Warning', 'warning cleared'],
      ['run-1-3', 'CircuitBreakerTriggered', 'tripped (loss)'],
      ['run-1-4', 'SystemShutdown', 'every venue confirmed flat'],
      ['run-1-5', 'OperatorActionRefused', 'reset'],
      ['run-1-6', 'OperatorAction', 'reset'],
      ['run-1-7', 'CircuitBreakerReset', 'reset'],
    ]);
    // One entry per kept event, no more.
    const kept = ['WarningTriggered', 'WarningCleared', 'CircuitBreakerTriggered', 'SystemShutdown', 'OperatorActionRefused', 'OperatorActionAccepted', 'CircuitBreakerReset'];
    expect(eventTypes(r.state).filter((t) => kept.includes(t))).toHaveLength(entries.length);
    expect(r.state.audit?.nextId).toBe(8);
    expect(entries[2]).toMatchObject({ at: at(3), actor: null, why: expect.stringMatching(/loss/), valuation: { totalValue: '9000', lossPct: '10' }, data: { cause: 'loss' } });
    expect(entries[4]).toMatchObject({ actor: { operator: 'alice' }, why: expect.stringMatching(/unsigned/) });
    expect(entries[5]).toMatchObject({ actor: { operator: 'alice', keyId: keyIdOf(ALICE.publicKey) }, why: 'checked the venues', data: { nonce: expect.any(String) } });
    // Only the first entry was sent: one write in flight at a time.
    expect(writes(r.commands)).toEqual([[expect.objectContaining({ eventId: 'run-1-1' })]]);
  });

  it('disable, enable and halt: the operator action, then the breaker’s own entry', () => {
    const s = trusted();
    const r = run(s, [
      op(2, 'disable', signed(2, 'disable', ALICE, 'alice')),
      op(3, 'enable', signed(3, 'enable', CAROL, 'carol')),
      op(4, 'halt', signed(4, 'halt', BOB, 'bob', {}, { reason: 'venue incident' })),
    ]);
    expect(r.state.audit!.pending.map((e) => [e.eventId, e.kind, e.what, e.actor?.operator])).toEqual([
      ['run-1-1', 'OperatorAction', 'disable', 'alice'],
      ['run-1-2', 'BreakerDisabled', 'disabled', 'alice'],
      ['run-1-3', 'OperatorAction', 'enable', 'carol'],
      ['run-1-4', 'BreakerEnabled', 'enabled', 'carol'],
      ['run-1-5', 'OperatorAction', 'halt', 'bob'],
      ['run-1-6', 'CircuitBreakerTriggered', 'tripped (halt)', 'bob'],
    ]);
    expect(r.state.audit!.pending[5]).toMatchObject({ why: 'halted by bob: venue incident', data: { cause: 'halt' }, valuation: { totalValue: '10000', lossPct: '0' } });
    // The halt's trip alerts once.
    expect(alertKinds(r.last.commands)).toEqual(['CircuitBreakerTriggered']);
  });

  it('events the audit log does not keep make no entry (a failed read, a rejected report)', () => {
    const s = trusted();
    const r = run(s, [
      { type: 'TimerFired', at: at(60), timer: 'valuation' },
      { type: 'VenueReadFailed', at: at(61), venue: 'spot', ticket: 3, error: 'timeout' },
      report(62, { venue: 'spot', seq: -1, balances: {} }),
    ]);
    expect(eventTypes(r.state).slice(s.events.length)).toEqual(['VenueReadFailed', 'ReportRejected']);
    expect(r.state.audit).toEqual(s.audit);
    expect(writes(r.commands)).toEqual([]);
  });

  it('one write in flight at a time, at most 100 entries per write; AuditWritten sends the rest', () => {
    const start = trusted();
    const flood = run(start, Array.from({ length: 150 }, () => unsigned(10)));
    expect(writes(flood.commands).map((w) => w.map((e) => e.eventId))).toEqual([['run-1-1']]);
    expect(flood.state.audit).toMatchObject({ inFlight: true });
    expect(flood.state.audit!.pending).toHaveLength(150);

    const second = decide(flood.state, { type: 'AuditWritten', at: at(11), ids: ['run-1-1'] });
    const batch = writes(second.commands);
    expect(batch).toHaveLength(1);
    expect(batch[0]!.map((e) => e.eventId)).toEqual(Array.from({ length: 100 }, (_, i) => `run-1-${i + 2}`));
    expect(second.state.audit).toMatchObject({ inFlight: true });

    const third = decide(second.state, { type: 'AuditWritten', at: at(12), ids: batch[0]!.map((e) => e.eventId) });
    expect(writes(third.commands).map((w) => w.length)).toEqual([49]);
    const done = decide(third.state, { type: 'AuditWritten', at: at(13), ids: writes(third.commands)[0]!.map((e) => e.eventId) });
    expect(writes(done.commands)).toEqual([]);
    expect(done.state.audit).toMatchObject({ inFlight: false, pending: [] });
    expect(viewOf(done.state).audit).toEqual({ pending: 0, failedSince: null, lastError: null });
  });

  it('AuditWritten removes exactly the acknowledged ids and sends what remains', () => {
    const s = run(trusted(), [unsigned(10), unsigned(11), unsigned(12), unsigned(13)]).state;
    expect(pendingIds(s)).toEqual(['run-1-1', 'run-1-2', 'run-1-3', 'run-1-4']);
    const d = decide(s, { type: 'AuditWritten', at: at(14), ids: ['run-1-1', 'run-1-3', 'run-unknown-9'] });
    expect(pendingIds(d.state)).toEqual(['run-1-2', 'run-1-4']);
    expect(writes(d.commands).map((w) => w.map((e) => e.eventId))).toEqual([['run-1-2', 'run-1-4']]);
  });

  it('a failed write: one event and one AuditUndelivered alert per streak, retried by the audit timer', () => {
    const s = run(trusted(), [unsigned(10)]).state;
    const failed = decide(s, { type: 'AuditWriteFailed', at: at(11), error: 'disk full' });
    expect(since(s, failed.state)).toEqual([{ type: 'AuditFailed', at: at(11), error: 'disk full' }]);
    expect(alertKinds(failed.commands)).toEqual(['AuditUndelivered']);
    expect(timers(failed.commands, 'audit')).toEqual([AUDIT_RETRY_SECONDS]);
    expect(failed.state.audit).toMatchObject({ inFlight: false, failedSince: at(11), lastError: 'disk full' });
    expect(viewOf(failed.state).audit).toEqual({ pending: 1, failedSince: at(11), lastError: 'disk full' });
    expect(writes(failed.commands)).toEqual([]);

    const retry = decide(failed.state, timer(11 + AUDIT_RETRY_SECONDS, 'audit'));
    expect(writes(retry.commands).map((w) => w.map((e) => e.eventId))).toEqual([['run-1-1']]);
    const again = decide(retry.state, { type: 'AuditWriteFailed', at: at(42), error: 'still full' });
    expect(since(retry.state, again.state)).toEqual([]);
    expect(alertKinds(again.commands)).toEqual([]);
    expect(again.state.audit).toMatchObject({ failedSince: at(11), lastError: 'still full' });
    expect(timers(again.commands, 'audit')).toEqual([AUDIT_RETRY_SECONDS]);

    const written = run(again.state, [timer(42 + AUDIT_RETRY_SECONDS, 'audit'), { type: 'AuditWritten', at: at(73), ids: ['run-1-1'] }]).state;
    expect(written.audit).toEqual({ runId: 'run-1', nextId: 2, pending: [], inFlight: false });
    // A new streak is reported again.
    const next = run(written, [unsigned(80), { type: 'AuditWriteFailed', at: at(81), error: 'disk full' }]);
    expect(eventTypes(next.state).slice(written.events.length)).toEqual(['OperatorActionRefused', 'AuditFailed']);
    expect(alertKinds(next.last.commands)).toEqual(['AuditUndelivered']);
  });

  it(`beyond ${MAX_PENDING_AUDIT} pending entries the oldest are dropped and counted`, () => {
    const r = run(trusted(), Array.from({ length: MAX_PENDING_AUDIT + 10 }, () => unsigned(10)));
    expect(r.state.audit!.pending).toHaveLength(MAX_PENDING_AUDIT);
    expect(pendingIds(r.state)[0]).toBe('run-1-11');
    expect(pendingIds(r.state).at(-1)).toBe(`run-1-${MAX_PENDING_AUDIT + 10}`);
    expect(r.state.counters.auditDropped).toBe(10);
    expect(r.state.counters.operatorRequestsRefused).toBe(MAX_PENDING_AUDIT + 10);
    // One alert for the whole flood (same instant).
    expect(alertKinds(r.commands)).toEqual(['UnauthorisedAction']);
  });
});

describe('the watcher’s latched hint', () => {
  const FEATURES: GuardFeatures = { watcher: true, coarseSearchAttributes: false, trust: true };
  const observation = (seconds: number, generation: number, latched: unknown): GuardMessage => ({
    type: 'WatcherObserved',
    at: at(seconds),
    observation: { generation, reason: 'latched', level: null, venues: {}, latched },
  });
  const watchedTrusted = () =>
    run(createGuardState(configOf()), [
      started(0, { features: FEATURES }),
      loaded(0),
      { type: 'VenueRead', at: at(0), venue: 'spot', ticket: 1, reading: reading('spot', '5000') },
      { type: 'VenueRead', at: at(0), venue: 'perp', ticket: 2, reading: reading('perp', '5000') },
    ]).state;

  it('latched: true asks for a LoadTrust when not Triggered (the guard checks the log itself)', () => {
    const s = watchedTrusted();
    const d = decide(s, observation(5, 1, true));
    expect(loads(d.commands)).toEqual([{ type: 'LoadTrust', accountId: 'acct' }]);
    // Only a hint: the breaker is unchanged until the load answers.
    expect(d.state.breaker.name).toBe('Active');
    expect(loads(decide(s, observation(5, 1, false)).commands)).toEqual([]);
  });

  it('latched: true on a Triggered guard asks for nothing', () => {
    const t = run(watchedTrusted(), [report(1, perp(1, '4000'))]).state;
    expect(t.breaker.name).toBe('Triggered');
    const d = decide(t, observation(5, t.watcher!.generation, true));
    expect(d.state.counters.observations).toBe(t.counters.observations + 1);
    expect(loads(d.commands)).toEqual([]);
  });

  it('latched of a wrong type rejects the observation', () => {
    const s = watchedTrusted();
    const d = decide(s, observation(5, 1, 'yes'));
    expect(d.state.counters.observationsRejected).toBe(1);
    expect(since(s, d.state)).toEqual([{ type: 'ObservationRejected', at: at(5), error: expect.stringMatching(/latched/) }]);
    expect(loads(d.commands)).toEqual([]);
  });
});

describe('a run without the trust feature (recorded histories replay on it)', () => {
  it('operator requests are carried out unsigned, with no trust or audit state and no WriteAudit', () => {
    const r = run(createGuardState(configOf()), [
      { type: 'Started', at: at(0), continued: false, features: { watcher: false, coarseSearchAttributes: false } },
      loaded(0),
      { type: 'VenueRead', at: at(0), venue: 'spot', ticket: 1, reading: reading('spot', '5000') },
      { type: 'VenueRead', at: at(0), venue: 'perp', ticket: 2, reading: reading('perp', '5000') },
      report(1, perp(1, '4000')),
      report(2, perp(2, '5000')),
      { type: 'OperatorRequested', at: at(3), action: 'reset', request: { operator: 'ops', reason: 'checked' } },
    ]);
    expect(r.decisions[4]!.state.breaker.name).toBe('Triggered');
    expect(r.last.reply).toEqual({});
    expect(r.state.breaker.name).toBe('Active');
    expect(r.state.trust).toBeUndefined();
    expect(r.state.audit).toBeUndefined();
    expect(types(r.commands)).not.toContain('WriteAudit');
    expect(types(r.commands)).not.toContain('LoadTrust');
    expect(eventTypes(r.state)).not.toContain('OperatorActionAccepted');
    expect(eventTypes(r.state)).toContain('CircuitBreakerReset');
    expect(viewOf(r.state)).toMatchObject({ trust: null, pendingApprovals: [], audit: null });
  });
});

describe("a new run's config against the account's last accepted one (signed configure)", () => {
  const looser = configOf({ thresholdPct: '50', warningPct: '40' });
  const mine = canonicalJson(looser);
  const before = canonicalJson(configOf());
  /** alice may configure; bob may not. */
  const view = viewWith({
    operators: [
      { id: 'alice', publicKey: ALICE.publicKey, actions: [...ALL, 'configure'] },
      { id: 'bob', publicKey: BOB.publicKey, actions: [...ALL] },
    ],
  });
  const signedBy = (key: Key, operator: string, config = mine) => {
    const { operator: o, reason, auth } = signed(0, 'configure', key, operator, { config });
    return { operator: o, reason, auth };
  };
  const start = (signature: unknown, lastConfig: string | null) =>
    run(createGuardState(looser), [started(0, { signedBy: signature }), loaded(1, loadOf(view, { tripped: false }, [], lastConfig))]);
  const configured = (s: GuardState) => s.audit!.pending.filter((e) => e.kind === 'GuardConfigured').map((e) => ({ operator: e.actor?.operator ?? null, keyId: e.actor?.keyId ?? null, config: e.data.config }));

  it("the account's first config is accepted unsigned and recorded (nothing to loosen yet)", () => {
    const { state } = start(null, null);
    expect(state.breaker.name).toBe('Active');
    expect(configured(state)).toMatchObject([{ operator: null, config: mine }]);
    expect(state.audit!.pending.map((e) => e.kind)).toEqual(['GuardConfigured']);
  });

  it('the same config again needs no signature and records nothing', () => {
    const { state } = start(null, mine);
    expect(state.breaker.name).toBe('Active');
    expect(configured(state)).toEqual([]);
  });

  it('a changed config without a signature starts Triggered (recalled), refused, recorded and alerted', () => {
    const { state, commands } = start(null, before);
    expect(state.breaker).toMatchObject({ name: 'Triggered', cause: 'recalled', reason: expect.stringContaining('thresholdPct "5" → "50"') });
    expect(state.events.find((e) => e.type === 'OperatorActionRefused')).toMatchObject({ action: 'configure' });
    expect(alertKinds(commands)).toEqual(expect.arrayContaining(['UnauthorisedAction', 'CircuitBreakerTriggered']));
    expect(commands.filter((c) => c.type === 'CancelOrders').map((c) => (c as { venue: string }).venue).sort()).toEqual(['perp', 'spot']);
    expect(configured(state)).toEqual([]);
  });

  it('a changed config signed by an operator allowed to configure is accepted, recorded with the key', () => {
    const { state } = start(signedBy(ALICE, 'alice'), before);
    expect(state.breaker.name).toBe('Active');
    expect(configured(state)).toMatchObject([{ operator: 'alice', keyId: keyIdOf(ALICE.publicKey), config: mine }]);
  });

  it('refused: signed by an operator without configure, signed for another config, signed with another key', () => {
    for (const signature of [signedBy(BOB, 'bob'), signedBy(ALICE, 'alice', before), signedBy(MALLORY, 'alice')]) {
      const { state } = start(signature, before);
      expect(state.breaker.name).toBe('Triggered');
      expect(configured(state)).toEqual([]);
    }
  });

  it('checked once, at the first successful load: a refresh or a continued run checks nothing', () => {
    const first = start(null, mine).state;
    const refreshed = decide(first, loaded(400, loadOf(view, { tripped: false }, [], before)));
    expect(refreshed.state.breaker.name).toBe('Active');
    const continued = run(first, [started(500, { continued: true, runId: 'run-2' }), loaded(501, loadOf(view, { tripped: false }, [], before))]);
    expect(continued.state.breaker.name).toBe('Active');
  });
});

describe('a venue that keeps refusing the shutdown', () => {
  it('is recorded and alerted once per streak, not at every sweep (found by the rogue-worker test)', () => {
    const refused = (seconds: number, round: number): GuardMessage => ({ type: 'PassRefused', at: at(seconds), venue: 'spot', round, failureType: 'VenueAuthFailed', error: 'key revoked' });
    let { state } = run(createGuardState(configOf()), [
      started(0, { features: { watcher: false, coarseSearchAttributes: false } }),
      { type: 'VenueRead', at: at(1), venue: 'spot', ticket: 1, reading: reading('spot', '5000') },
      { type: 'VenueRead', at: at(1), venue: 'perp', ticket: 2, reading: reading('perp', '4000') },
    ]);
    expect(state.breaker.name).toBe('Triggered');
    const round = state.flatten!.round;
    const kinds: string[] = [];
    for (const t of [2, 40, 80]) {
      const refusal = decide(state, refused(t, round));
      kinds.push(...alertKinds(refusal.commands));
      // The next sweep starts the pass again.
      state = decide(refusal.state, { type: 'TimerFired', at: at(t + 31), timer: 'sweep' }).state;
    }
    expect(state.events.filter((e) => e.type === 'VenueShutdownFailed')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'VenueAuthFailed')).toHaveLength(1);
  });
});
