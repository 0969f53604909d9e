/**
 * One regression test per stall that issue 7 reported, each run on the real guard workflow with stub activities.
 * Each failed on the guard before it became one decider; the comment on each says what used to happen.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { WORKFLOW_TYPE, guardWorkflowId } from '../../src/api/contract';
import { GuardConfigMismatchError } from '../../src/client';
import { WorkflowHarness, startWorkflowHarness, uniqueAccount } from './harness';

const SPOT = 'spot';
const PERP = 'perp';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await startWorkflowHarness('regressions');
});
afterEach(() => {
  h.stubs.alerts.setMode('deliver');
});
afterAll(async () => {
  h.stubs.releaseAll();
  await h?.stop();
});

/** A guard over two venues of 5,000 USDT each, valued once. */
async function startValued(extra: Record<string, unknown> = {}) {
  h.stubs.venue(SPOT).setHoldings({ balances: { USDT: '5000' } });
  h.stubs.venue(PERP).setHoldings({ balances: { USDT: '5000' } });
  const accountId = uniqueAccount('reg');
  const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP], sweepIntervalSeconds: 2, ...extra });
  await h.eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
  return { accountId, handle };
}

const updateError = async (p: Promise<unknown>): Promise<ApplicationFailure> => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
};

it('1. alert webhook hanging + continue-as-new: a late order is swept, an update needing a read answers', async () => {
  // Before: continue-as-new waited for alerts in flight while the loop that sweeps and reads was parked behind it.
  h.stubs.alerts.setMode('hang');
  const { accountId, handle } = await startValued();
  const firstRun = (await handle.describe()).runId;
  await h.breaker.report(accountId, { venue: PERP, seq: 1, balances: { USDT: '4000' } });
  // Enough messages for the server to suggest continue-as-new (after 60 history events in this test server).
  for (let seq = 2; seq < 40; seq++) await h.breaker.signalReport(accountId, { venue: PERP, seq, balances: { USDT: '4000' } });
  await h.eventually(() => handle.describe(), (d) => d.runId !== firstRun, 30_000);
  h.stubs.venue(SPOT).addLateOrders(2);
  await h.eventually(() => h.stubs.venue(SPOT).openOrders, (open) => open === 0, 20_000);
  // A report with an asset never priced: the answer waits for the read it causes, and comes.
  h.stubs.venue(SPOT).setHoldings({ balances: { USDT: '5000', DOGE: '10' }, prices: { DOGE: '0.1' } });
  const answer = await h.breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '5000', DOGE: '10' } });
  expect(answer).toMatchObject({ outcome: 'accepted', state: 'Triggered' });
  expect(answer.unpriced).toEqual([]);
  expect((await h.breaker.state(accountId)).alertsPending).toBeGreaterThan(0);
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
}, 90_000);

it('2. a cancellation request on an Active and on a Triggered guard: recorded, ignored, protection goes on', async () => {
  // Before: the fire-and-forget timers rejected with CancelledFailure and every workflow task failed from then on.
  const active = await startValued();
  await active.handle.cancel();
  await h.eventually(() => h.breaker.events(active.accountId), (events) => events.some((e) => e.type === 'CancellationIgnored'));
  const answer = await h.breaker.report(active.accountId, { venue: PERP, seq: 1, balances: { USDT: '4000' } });
  expect(answer.state).toBe('Triggered');
  expect((await active.handle.describe()).status.name).toBe('RUNNING');

  const triggered = await startValued();
  await h.breaker.report(triggered.accountId, { venue: PERP, seq: 1, balances: { USDT: '4000' } });
  await triggered.handle.cancel();
  h.stubs.venue(SPOT).addLateOrders(3);
  await h.eventually(() => h.stubs.venue(SPOT).openOrders, (open) => open === 0, 20_000);
  await h.eventually(() => h.stubs.alerts.kinds(), (kinds) => kinds.includes('CancellationIgnored'));
  expect((await triggered.handle.describe()).status.name).toBe('RUNNING');
  for (const { handle } of [active, triggered]) {
    expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
    await handle.terminate('test done');
  }
}, 90_000);

it('3. oversized input: megabyte signals and a 700,000-digit amount are refused, then a breach still flattens', async () => {
  // Before: the rejection event echoed the 1.9 MB venue, queries failed, continue-as-new exceeded the payload limit.
  const { accountId, handle } = await startValued();
  for (let i = 0; i < 3; i++) {
    await h.breaker.signalReport(accountId, { venue: 'v'.repeat(1_900_000), seq: i, balances: {} });
    await h.eventually(() => h.breaker.state(accountId), (s) => s.counters.reportsRejected === i + 1);
  }
  await h.breaker.signalReport(accountId, { venue: SPOT, seq: 1, balances: { USDT: '1'.repeat(700_000) } });
  const state = await h.eventually(() => h.breaker.state(accountId), (s) => s.counters.reportsRejected === 4);
  expect(state.lastSeq[SPOT]).toBeNull();
  const events = await h.breaker.events(accountId);
  expect(JSON.stringify(events).length).toBeLessThan(10_000);
  await h.breaker.handle(accountId).query('snapshot');
  h.stubs.venue(SPOT).setOpenOrders(2);
  expect((await h.breaker.report(accountId, { venue: PERP, seq: 1, balances: { USDT: '4000' } })).state).toBe('Triggered');
  await h.eventually(() => h.stubs.venue(SPOT).openOrders, (open) => open === 0);
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
}, 90_000);

describe('5. bad start input fails the run with a clear, non-retryable error and leaves no zombie', () => {
  const config = (accountId: string) => ({ accountId, initialCapital: '10000', venues: [SPOT] });
  it.each([
    ['no input', () => [], /input/],
    ['null', () => [null], /input: .*null/],
    ['a config without its wrapper', (id: string) => [config(id)], /input\.config is required/],
    ['state: {}', (id: string) => [{ config: config(id), state: {} }], /only continue-as-new may carry a state/],
    ['state: 5', (id: string) => [{ config: config(id), state: 5 }], /only continue-as-new may carry a state/],
    ['a forged Triggered state', (id: string) => [{ config: config(id), state: { version: 2, breaker: { name: 'Disabled', at: '2026-01-01T00:00:00Z', operator: 'x', reason: 'y' } } }], /only continue-as-new/],
    ['referenceCurrency EUR', (id: string) => [{ config: { ...config(id), referenceCurrency: 'EUR' } }], /referenceCurrency.*"USDT".*"USDC"/],
  ])('%s', async (_label, args, message) => {
    const accountId = uniqueAccount('start');
    const handle = await h.client.workflow.start(WORKFLOW_TYPE, { workflowId: guardWorkflowId(accountId), taskQueue: h.taskQueue, args: args(accountId) });
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toMatchObject({ type: 'InvalidGuardInput', nonRetryable: true });
    expect(cause.message).toMatch(message);
    expect((await handle.describe()).status.name).toBe('FAILED');
    expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
    // A correct start afterwards gets a real, running guard.
    h.stubs.venue(SPOT).setHoldings({ balances: { USDT: '10000' } });
    await h.breaker.startGuard(config(accountId));
    expect((await h.breaker.handle(accountId).describe()).status.name).toBe('RUNNING');
    await h.breaker.handle(accountId).terminate('test done');
  });

  it('starting an account whose guard runs with another config says so and changes nothing', async () => {
    const { accountId, handle } = await startValued();
    await expect(h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP], sweepIntervalSeconds: 2, thresholdPct: '10' })).rejects.toThrow(GuardConfigMismatchError);
    expect((await h.breaker.state(accountId)).thresholdPct).toBe('5');
    await handle.terminate('test done');
  });
});

it('6. an unpriceable asset is shown and alerted, and a 40 % loss still trips', async () => {
  // Before: one unpriced asset made every valuation incomplete; the guard stayed Active through a 40 % loss.
  const { accountId, handle } = await startValued();
  h.stubs.venue(SPOT).setHoldings({ balances: { USDT: '5000', DELISTED: '1000' } });
  await h.breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '5000', DELISTED: '1000' } });
  const shown = await h.eventually(() => h.breaker.state(accountId), (s) => s.unpriced.length === 1);
  expect(shown.unpriced[0]).toMatchObject({ venue: SPOT, asset: 'DELISTED', amount: '1000' });
  await h.eventually(() => h.stubs.alerts.kinds(), (kinds) => kinds.includes('AssetUnpriced'));
  const crash = await h.breaker.report(accountId, { venue: PERP, seq: 1, balances: { USDT: '1000' } });
  expect(crash).toMatchObject({ state: 'Triggered', lossPct: '40.00' });
  await handle.terminate('test done');
}, 60_000);

it('7. a runaway seq is refused, and an operator can resynchronise a venue', async () => {
  // Before: seq 9007199254740991 was accepted and every later report of that venue was stale for ever.
  const { accountId, handle } = await startValued();
  await h.breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '5000' } });
  const refused = await updateError(h.breaker.report(accountId, { venue: SPOT, seq: 9007199254740991, balances: { USDT: '5000' } }));
  expect(refused.message).toMatch(/maxSeqJump/);
  expect((await h.breaker.report(accountId, { venue: SPOT, seq: 2, balances: { USDT: '5000' } })).outcome).toBe('accepted');
  const resynced = await h.breaker.resyncSeq(accountId, { venue: SPOT, seq: null, operator: 'alice', reason: 'bot restarted' });
  expect(resynced.lastSeq[SPOT]).toBeNull();
  expect((await h.breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '5000' } })).outcome).toBe('accepted');
  await handle.terminate('test done');
});

it('8. halt trips the breaker now, with the same shutdown and events as a loss trip', async () => {
  const { accountId, handle } = await startValued();
  h.stubs.venue(SPOT).setOpenOrders(2);
  h.stubs.venue(PERP).setOpenOrders(1);
  const halted = await h.breaker.halt(accountId, { operator: 'alice', reason: 'exchange incident' });
  expect(halted.breaker).toMatchObject({ name: 'Triggered', cause: 'halt', reason: 'halted by alice: exchange incident' });
  const flat = await h.eventually(() => h.breaker.state(accountId), (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat');
  expect(flat.shutdown).toMatchObject({ [SPOT]: { status: 'flat', cancelled: 2 }, [PERP]: { status: 'flat', cancelled: 1 } });
  const events = (await h.breaker.events(accountId)).map((e) => e.type);
  expect(events).toEqual(expect.arrayContaining(['CircuitBreakerTriggered', 'SystemShutdown']));
  await h.eventually(() => h.stubs.alerts.kinds(), (kinds) => kinds.includes('CircuitBreakerTriggered'));
  const again = await updateError(h.breaker.halt(accountId, { operator: 'alice', reason: 'again' }));
  expect(again).toMatchObject({ type: 'NotAllowedInThisState' });
  await handle.terminate('test done');
});

describe('9. messages say what is wrong, from inside the workflow bundle', () => {
  it.each([
    ['an unknown key', { venue: SPOT, seq: 1, balances: {}, colour: 'red' }, /colour/],
    ['a missing venue', { seq: 1, balances: {} }, /report\.venue: is required/],
    ['seq -1', { venue: SPOT, seq: -1, balances: {} }, /report\.seq: .*0.*9007199254740991/],
    ['seq beyond 2^53', { venue: SPOT, seq: 2 ** 60, balances: {} }, /report\.seq: .*9007199254740991/],
    ['side LONG', { venue: SPOT, seq: 1, balances: {}, positions: [{ symbol: 'BTC/USDT:USDT', side: 'LONG', contracts: '1', unrealizedPnl: '0' }] }, /side.*"long".*"short"/],
  ])('%s', async (_label, report, message) => {
    const { accountId, handle } = await startValued();
    const err = await updateError(h.breaker.report(accountId, report as never));
    expect(err).toMatchObject({ type: 'InvalidReport', nonRetryable: true });
    expect(err.message).toMatch(message);
    expect(err.message).not.toMatch(/Invalid input/);
    await handle.terminate('test done');
  });
});

it('updates sent through continue-as-new all get their answer (the client sends an update aborted by the race again)', async () => {
  // Before: about 1 update in 20 sent while the guard continued as new failed with FAILED_PRECONDITION.
  const { accountId, handle } = await startValued();
  const firstRun = (await handle.describe()).runId;
  let seq = 0;
  const outcomes: string[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (seq < 240) {
        const mine = ++seq;
        // Signals and updates interleaved, so that messages keep arriving while a continue-as-new task completes.
        await h.breaker.signalReport(accountId, { venue: PERP, seq: mine * 2, balances: { USDT: '5000' } });
        outcomes.push((await h.breaker.report(accountId, { venue: SPOT, seq: mine, balances: { USDT: '5000' } })).outcome);
      }
    }),
  );
  expect(outcomes).toHaveLength(240);
  expect(outcomes.every((o) => o === 'accepted' || o === 'stale')).toBe(true);
  expect((await handle.describe()).runId).not.toBe(firstRun);
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
  await handle.terminate('test done');
}, 120_000);
