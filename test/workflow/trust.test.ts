/**
 * The attacks of issue 10 ("Only the people and bots an account trusts can change its guard"), each tried as a
 * Temporal client would try it, on the real guard workflow with the harness's rehearsal anchor and the real audit
 * store. Every one of them succeeded on the code before the trust anchor: an update carrying any `operator` string
 * reset a guard, a forged report hid a loss and its huge seq made the real bot's reports stale, and terminating a
 * Triggered guard and starting it again gave an Active guard with no events.
 */
import { verify } from '../../src/audit/log';
import { guardWorkflowId, haltUpdate, resetUpdate } from '../../src/api/contract';
import { BreakerClient } from '../../src/client';
import { signBotReport, signOperatorRequest } from '../../src/trust/sign-request';
import { rehearsalKey } from '../../tooling/rehearsal-trust';
import { WorkflowHarness, startWorkflowHarness, uniqueAccount } from './harness';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await startWorkflowHarness('trust');
});
afterEach(() => {
  h.stubs.trust.setFailure(null);
});
afterAll(async () => {
  h.stubs.releaseAll();
  await h?.stop();
});

/** A guard over one venue of its own holding 10,000 USDT, valued once, its trust view loaded. */
async function startGuard(prepare?: (accountId: string, venue: string) => void) {
  const venue = uniqueAccount('spot');
  h.stubs.venue(venue).setHoldings({ balances: { USDT: '10000' } }).setOpenOrders(2);
  const accountId = uniqueAccount('trust');
  prepare?.(accountId, venue);
  const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [venue], watch: { enabled: false } });
  await h.eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null && s.trust?.loadedAt !== null);
  return { accountId, venue, handle };
}

/** The guard tripped by a report (10 % loss) and flat. */
async function trippedGuard(prepare?: (accountId: string, venue: string) => void) {
  const g = await startGuard(prepare);
  await h.breaker.report(g.accountId, { venue: g.venue, seq: 1, balances: { USDT: '9000' } });
  await h.eventually(() => h.breaker.state(g.accountId), (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat');
  return g;
}

/** The account back at 10,000 USDT (reports are still taken while Triggered): a reset then stays reset. */
async function recover(accountId: string, venue: string, seq = 2) {
  await h.breaker.report(accountId, { venue, seq, balances: { USDT: '10000' } });
}

const alertsOf = (accountId: string) => h.stubs.alerts.received.filter((a) => a.accountId === accountId).map((a) => a.kind);
/** A client without any operator key: what anyone with namespace access has. */
const anyone = () => new BreakerClient(h.client, h.taskQueue);

describe('operator actions must be signed by an operator the anchor lists', () => {
  it('an unsigned reset naming any operator is refused, recorded and alerted; the guard stays Triggered', async () => {
    const { accountId, handle } = await trippedGuard();
    await expect(anyone().reset(accountId, { operator: 'alice', reason: 'trust me' })).rejects.toMatchObject({
      cause: { type: 'Unauthorised', message: expect.stringContaining('unsigned') },
    });
    const state = await h.breaker.state(accountId);
    expect(state.state).toBe('Triggered');
    expect(state.counters.operatorRequestsRefused).toBe(1);
    expect((await h.breaker.events(accountId)).filter((e) => e.type === 'OperatorActionRefused')).toMatchObject([{ action: 'reset', operator: 'alice' }]);
    await h.eventually(() => alertsOf(accountId), (kinds) => kinds.includes('UnauthorisedAction'));
    expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  });

  it('halt (tightening) needs a signature too', async () => {
    const { accountId } = await startGuard();
    await expect(anyone().halt(accountId, { operator: 'alice', reason: 'prank' })).rejects.toMatchObject({ cause: { type: 'Unauthorised' } });
    expect((await h.breaker.state(accountId)).state).toBe('Active');
    // Signed, it halts.
    expect((await h.breaker.halt(accountId, { operator: 'alice', reason: 'exchange incident' })).state).toBe('Triggered');
  });

  it("a request signed with a key of the attacker's own, claiming a listed operator, is refused", async () => {
    const { accountId } = await trippedGuard();
    const mallory = rehearsalKey('alice');
    const forged = new BreakerClient(h.client, h.taskQueue, { operatorKeys: [mallory] });
    await expect(forged.reset(accountId, { operator: 'alice', reason: 'reviewed' })).rejects.toMatchObject({
      cause: { type: 'Unauthorised', message: expect.stringContaining('signature does not match') },
    });
    // An operator the anchor does not list at all.
    const eve = new BreakerClient(h.client, h.taskQueue, { operatorKeys: [rehearsalKey('eve')] });
    await expect(eve.reset(accountId, { operator: 'eve', reason: 'reviewed' })).rejects.toMatchObject({ cause: { message: expect.stringContaining('not listed') } });
    expect((await h.breaker.state(accountId)).state).toBe('Triggered');
  });

  it('a signed request is good for its account, action, arguments and reason only, once, until it expires', async () => {
    const { accountId, venue } = await trippedGuard();
    await recover(accountId, venue);
    const { alice } = h.stubs.trust;
    const signed = signOperatorRequest({ accountId, action: 'reset', operator: 'alice', reason: 'reviewed', secretKey: alice.secretKey });
    const guard = h.client.workflow.getHandle(guardWorkflowId(accountId));
    // Another reason under the same signature.
    await expect(guard.executeUpdate(resetUpdate, { args: [{ ...signed, reason: 'other' } as never] })).rejects.toMatchObject({ cause: { type: 'Unauthorised' } });
    // The same signature for another action.
    await expect(guard.executeUpdate(haltUpdate, { args: [signed as never] })).rejects.toBeDefined();
    // Another account's guard.
    const other = await trippedGuard();
    await expect(h.client.workflow.getHandle(guardWorkflowId(other.accountId)).executeUpdate(resetUpdate, { args: [signed as never] })).rejects.toMatchObject({
      cause: { type: 'Unauthorised' },
    });
    // As signed: accepted once.
    expect((await guard.executeUpdate(resetUpdate, { args: [signed as never] })).state).toBe('Active');
    // Replayed after the guard trips again: refused.
    await h.breaker.halt(accountId, { operator: 'bob', reason: 'again' });
    await expect(guard.executeUpdate(resetUpdate, { args: [signed as never] })).rejects.toMatchObject({ cause: { message: expect.stringContaining('already used') } });
    // Expired (signed an hour ago with a five-minute validity).
    const old = signOperatorRequest({ accountId, action: 'reset', operator: 'alice', reason: 'late', secretKey: alice.secretKey, now: new Date(Date.now() - 3_600_000) });
    await expect(guard.executeUpdate(resetUpdate, { args: [old as never] })).rejects.toMatchObject({ cause: { message: expect.stringContaining('expired') } });
    expect((await h.breaker.state(accountId)).state).toBe('Triggered');
  });

  it('an operator may take only the actions the anchor gives them', async () => {
    const { accountId, venue } = await trippedGuard((id) => h.stubs.trust.setRoles(id, { bob: ['halt'] }));
    await recover(accountId, venue);
    await expect(h.breaker.reset(accountId, { operator: 'bob', reason: 'reviewed' })).rejects.toMatchObject({
      cause: { type: 'Unauthorised', message: expect.stringContaining('may not reset (allowed: halt)') },
    });
    expect((await h.breaker.reset(accountId, { operator: 'alice', reason: 'reviewed' })).state).toBe('Active');
  });

  it('while the anchor cannot be read, the guard alerts, refuses every operator action and keeps protecting', async () => {
    const { accountId, venue } = await startGuard();
    h.stubs.trust.setFailure('stub: BREAKER_TRUST_FILE unreadable');
    await expect(h.breaker.disable(accountId, { operator: 'alice', reason: 'maintenance' })).rejects.toMatchObject({ cause: { type: 'Unauthorised' } });
    await h.eventually(() => alertsOf(accountId), (kinds) => kinds.includes('TrustAnchorUnavailable'));
    expect((await h.breaker.state(accountId)).trust?.lastError).toContain('BREAKER_TRUST_FILE unreadable');
    // A loss still trips the guard: the guard's own read of the venue needs no anchor.
    h.stubs.venue(venue).setHoldings({ balances: { USDT: '9000' } });
    await h.client.workflow.getHandle(guardWorkflowId(accountId)).signal('balanceReport', { venue, seq: 1, balances: { USDT: '9000' } });
    h.stubs.trust.setFailure(null);
    await h.eventually(() => h.breaker.state(accountId), (s) => s.state === 'Triggered', 30_000);
  });
});

describe('a second approver for reset and disable', () => {
  it('a reset waits for a different operator allowed to reset; the requester cannot approve it', async () => {
    const { accountId, venue } = await trippedGuard((id) => h.stubs.trust.requireApproval(id));
    await recover(accountId, venue);
    const pending = await h.breaker.reset(accountId, { operator: 'alice', reason: 'losses reviewed' });
    expect(pending.state).toBe('Triggered');
    expect(pending.pendingApprovals).toMatchObject([{ action: 'reset', operator: 'alice', reason: 'losses reviewed' }]);
    const requestId = pending.pendingApprovals[0]!.id;
    await expect(h.breaker.approve(accountId, { operator: 'alice', reason: 'me again', requestId })).rejects.toMatchObject({
      cause: { message: expect.stringContaining('a different operator must approve it') },
    });
    await expect(anyone().approve(accountId, { operator: 'bob', reason: 'ok', requestId })).rejects.toMatchObject({ cause: { type: 'Unauthorised' } });
    const approved = await h.breaker.approve(accountId, { operator: 'bob', reason: 'agreed', requestId });
    expect(approved).toMatchObject({ state: 'Active', pendingApprovals: [] });
    expect((await h.breaker.events(accountId)).find((e) => e.type === 'OperatorActionAccepted' && e.action === 'reset')).toMatchObject({ operator: 'alice', approvedBy: 'bob' });
  });
});

describe('authenticated bots', () => {
  it('a forged report (a huge seq, a hidden loss) is refused and counted; the real bot still trips the guard', async () => {
    const bot = rehearsalKey('mm-bot');
    const { accountId, venue, handle } = await startGuard((id, v) => h.stubs.trust.requireSignedReports(id, [{ key: bot, venues: [v] }]));
    // The attack of the issue: a 9,920 % gain and a seq that would make every real report stale.
    const forged = { venue, seq: 9_000_000_000, balances: { USDT: '1002000' } };
    await expect(anyone().report(accountId, forged)).rejects.toMatchObject({ cause: { type: 'UnauthenticatedReport' } });
    await anyone().signalReport(accountId, forged);
    // Signed by a key that is not the bot's.
    await expect(anyone().report(accountId, signBotReport(accountId, { ...forged, seq: 2 }, 'mm-bot', rehearsalKey('mm-bot').secretKey))).rejects.toMatchObject({
      cause: { type: 'UnauthenticatedReport', message: expect.stringContaining('does not match') },
    });
    const state = await h.eventually(() => h.breaker.state(accountId), (s) => (s.counters.reportsUnauthenticated ?? 0) >= 3);
    expect(state).toMatchObject({ lastSeq: { [venue]: null }, lossPct: '0.00' });
    const real = new BreakerClient(h.client, h.taskQueue, { botKey: bot });
    expect((await real.report(accountId, { venue, seq: 1, balances: { USDT: '9000' } })).state).toBe('Triggered');
    expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  });
});

describe('a trip outlives the guard', () => {
  it('a Triggered guard terminated and started again is Triggered (recalled) and flattens, until a signed reset', async () => {
    const { accountId, venue, handle } = await trippedGuard();
    await handle.terminate('attacker: start afresh');
    h.stubs.venue(venue).setHoldings({ balances: { USDT: '10000' } }).addLateOrders(4);
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [venue], watch: { enabled: false } });
    const state = await h.eventually(() => h.breaker.state(accountId), (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat');
    expect(state.breaker).toMatchObject({ cause: 'recalled', reason: expect.stringContaining('no signed reset has cleared') });
    expect(h.stubs.venue(venue).openOrders).toBe(0);
    await h.eventually(() => alertsOf(accountId), (kinds) => kinds.filter((k) => k === 'CircuitBreakerTriggered').length >= 2);
    await recover(accountId, venue, 1);
    // A signed reset clears it for good: the next run starts Active.
    expect((await h.breaker.reset(accountId, { operator: 'alice', reason: 'reviewed' })).state).toBe('Active');
    await h.eventually(() => h.breaker.state(accountId), (s) => s.audit?.pending === 0);
    await h.breaker.handle(accountId).terminate('retire');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [venue], watch: { enabled: false } });
    const again = await h.eventually(() => h.breaker.state(accountId), (s) => s.trust?.loadedAt !== null && s.lastValuationAt !== null);
    expect(again.state).toBe('Active');
  });

  it('a guard restarted with looser limits and no signed configure starts Triggered; a signed configure is accepted and recorded', async () => {
    const { accountId, venue, handle } = await startGuard();
    await h.eventually(() => h.breaker.state(accountId), (s) => s.audit?.pending === 0);
    await handle.terminate('attacker: restart with a 50 % threshold');
    const loose = { accountId, initialCapital: '10000', venues: [venue], thresholdPct: '50', warningPct: '40', watch: { enabled: false } };
    await anyone().startGuard(loose);
    const refused = await h.eventually(() => h.breaker.state(accountId), (s) => s.breaker.name === 'Triggered');
    expect(refused.breaker).toMatchObject({ cause: 'recalled', reason: expect.stringContaining('thresholdPct "5" → "50"') });
    expect((await h.breaker.events(accountId)).find((e) => e.type === 'OperatorActionRefused')).toMatchObject({ action: 'configure' });
    await h.eventually(() => alertsOf(accountId), (kinds) => kinds.includes('UnauthorisedAction'));
    // An operator resets it, then restarts it with the new limits, signed.
    await h.breaker.reset(accountId, { operator: 'alice', reason: 'reviewed' });
    await h.eventually(() => h.breaker.state(accountId), (s) => s.audit?.pending === 0);
    await h.breaker.handle(accountId).terminate('restart with new limits');
    await h.breaker.startGuard(loose, { operator: 'bob', reason: 'wider limits agreed by risk' });
    const accepted = await h.eventually(() => h.breaker.state(accountId), (s) => s.trust?.loadedAt !== null && s.lastValuationAt !== null && s.audit?.pending === 0);
    expect(accepted).toMatchObject({ state: 'Active', thresholdPct: '50' });
    const { read } = await import('../../src/audit/log');
    const configured = (await read(h.stubs.trust.auditDir, accountId)).filter((r) => r.kind === 'GuardConfigured');
    expect(configured.map((r) => r.actor)).toEqual([null, { operator: 'bob', keyId: expect.any(String) }]);
    // The same limits again, unsigned: nothing changed, nothing to sign.
    await h.breaker.handle(accountId).terminate('plain restart');
    await anyone().startGuard(loose);
    const again = await h.eventually(() => h.breaker.state(accountId), (s) => s.trust?.loadedAt !== null && s.lastValuationAt !== null);
    expect(again.state).toBe('Active');
  });

  it('what happened is in the audit log, chained: trip, shutdown, the signed reset with its key', async () => {
    const { accountId, venue } = await trippedGuard();
    await recover(accountId, venue);
    await h.breaker.reset(accountId, { operator: 'alice', reason: 'reviewed' });
    await h.eventually(() => h.breaker.state(accountId), (s) => s.audit?.pending === 0);
    const [result] = await verify(h.stubs.trust.auditDir, accountId);
    expect(result).toMatchObject({ ok: true, problem: null });
    const { read } = await import('../../src/audit/log');
    const records = await read(h.stubs.trust.auditDir, accountId);
    expect(records.map((r) => r.kind)).toEqual(['GuardConfigured', 'CircuitBreakerTriggered', 'SystemShutdown', 'OperatorAction', 'CircuitBreakerReset']);
    expect(records[3]).toMatchObject({ actor: { operator: 'alice', keyId: expect.any(String) }, what: 'reset', why: 'reviewed', data: { nonce: expect.any(String) } });
    expect(records[1]!.valuation).toMatchObject({ lossPct: '10', totalValue: '9000' });
  });
});
