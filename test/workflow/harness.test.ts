/**
 * The harness itself: stubs that hang end when the worker stops (by cancellation, without answering), so that a
 * test that leaves an activity hanging never hangs the suite.
 */
import { startWorkflowHarness, uniqueAccount } from './harness';

it('stop() cancels stubs that hang, and they never answer', async () => {
  const h = await startWorkflowHarness('harness-stop');
  try {
    h.stubs.venue('spot').setHoldings({ balances: { USDT: '10000' } }).setOpenOrders(4).hang('cancelAllOpenOrders');
    const accountId = uniqueAccount('hang');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: ['spot'] });
    await h.eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    await h.breaker.report(accountId, { venue: 'spot', seq: 1, balances: { USDT: '9000' } });
    await h.eventually(() => h.stubs.callsOf('cancelAllOpenOrders').length, (n) => n > 0);
  } finally {
    const started = Date.now();
    await h.stop();
    expect(Date.now() - started).toBeLessThan(10_000);
  }
  // The hanging pass was cancelled by the shutdown, not released: nothing was cancelled on the venue.
  expect(h.stubs.venue('spot').cancelled).toBe(0);
  expect(h.stubs.venue('spot').openOrders).toBe(4);
});
