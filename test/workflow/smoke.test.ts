/**
 * Smoke test of the workflow tier: a guard over two stubbed venues trips on a breaching report and cancels on both.
 * Only the public contract (src/api/contract.ts, src/client) is used, so that it holds across rewrites of the
 * workflow's internals.
 */
import { WorkflowHarness, startWorkflowHarness, uniqueAccount } from './harness';

const SPOT = 'spot';
const PERP = 'perp';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await startWorkflowHarness('smoke');
});
afterAll(async () => {
  await h?.stop();
});

it('a breaching report trips the guard, which cancels every open order on both venues', async () => {
  h.stubs.venue(SPOT).setHoldings({ balances: { USDT: '6000' } }).setOpenOrders(3);
  h.stubs.venue(PERP).setHoldings({ balances: { USDT: '4000' } }).setOpenOrders(2);
  const accountId = uniqueAccount('smoke');
  const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });

  // The guard values the account from its own reads first: $10,000, no loss.
  const valued = await h.eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
  expect(valued).toMatchObject({ state: 'Active', totalValue: expect.stringMatching(/^10000(\.0+)?$/) });
  expect(h.stubs.callsOf('readVenue').map((c) => c.venue).sort()).toEqual([PERP, SPOT]);

  // A bot reports $600 lost on spot: 6.00 % of capital, beyond the 5 % threshold.
  const answer = await h.breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '5400' } });
  expect(answer).toMatchObject({ outcome: 'accepted', state: 'Triggered' });

  await h.eventually(
    () => [h.stubs.venue(SPOT).cancelled, h.stubs.venue(PERP).cancelled],
    ([spot, perp]) => spot === 3 && perp === 2,
  );
  expect(h.stubs.callsOf('cancelAllOpenOrders', SPOT).length).toBeGreaterThan(0);
  expect(h.stubs.callsOf('cancelAllOpenOrders', PERP).length).toBeGreaterThan(0);
  expect(await h.breaker.state(accountId)).toMatchObject({ state: 'Triggered', lossPct: '6.00' });
  await h.eventually(() => h.stubs.alerts.kinds(), (kinds) => kinds.includes('CircuitBreakerTriggered'));

  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
});
