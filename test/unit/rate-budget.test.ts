/**
 * The request budget as pure logic: weights, the clock minute, the venue's used-weight header, Retry-After and the
 * emergency reserve. Time is passed in.
 */
import ccxt from 'ccxt';
import { RateBudget, RateBudgetExhausted, currentRequestPriority, venueWeight, withRequestPriority } from '../../src/exchanges/rate-budget';

const MINUTE = 60_000;
const T0 = 1_700_000_040_000; // the start of a clock minute (1,700,000,040,000 / 60,000 is whole)

function refusal(fn: () => unknown): RateBudgetExhausted {
  try {
    fn();
  } catch (err) {
    if (err instanceof RateBudgetExhausted) return err;
    throw err;
  }
  throw new Error('expected the budget to refuse');
}

describe('venue weights from ccxt 4.5.84 costs', () => {
  it.each([
    // spot: ccxt cost = weight × 0.2
    ['private', 'GET', 'openOrders', 16, 80], // no symbol
    ['private', 'GET', 'openOrders', 1.2, 6],
    ['private', 'DELETE', 'openOrders', 0.2, 1],
    ['private', 'GET', 'account', 4, 20],
    ['public', 'GET', 'exchangeInfo', 4, 20],
    // USDⓈ-M: ccxt cost = weight
    ['fapiPrivate', 'GET', 'openOrders', 40, 40],
    ['fapiPrivate', 'DELETE', 'allOpenOrders', 1, 1],
    // corrected where ccxt's table is out of date (Binance: 5)
    ['fapiPrivateV3', 'GET', 'positionRisk', 1, 5],
    ['fapiPrivateV3', 'GET', 'account', 1, 5],
  ])('%s %s %s (ccxt cost %p) weighs %p', (api, method, path, cost, weight) => {
    expect(venueWeight(api, method, path, cost)).toBe(weight);
  });
});

describe('RateBudget', () => {
  it('counts weight per clock minute and starts afresh at the next', () => {
    const b = new RateBudget('v', 100);
    b.observe(b.admit(40, 'routine', T0), { status: 200 }, T0);
    b.observe(b.admit(40, 'routine', T0 + 1), { status: 200 }, T0 + 1);
    expect(b.snapshot(T0 + 2).used).toBe(80);
    expect(b.snapshot(T0 + MINUTE).used).toBe(0);
  });

  it('stops routine requests at 80 % with the wait until the next minute; emergency requests use the reserve', () => {
    const b = new RateBudget('v', 100);
    b.observe(b.admit(75, 'routine', T0), { status: 200 }, T0);
    const refused = refusal(() => b.admit(10, 'routine', T0 + 15_000));
    expect(refused).toBeInstanceOf(ccxt.RateLimitExceeded); // classified as retryable like any rate limit
    expect(refused.retryAfterMs).toBe(45_000);
    expect(refused.message).toMatch(/kept for cancels and closes/);
    expect(() => b.admit(5, 'routine', T0 + 15_000)).not.toThrow(); // exactly 80
    expect(() => b.admit(20, 'emergency', T0 + 15_000)).not.toThrow(); // exactly 100
    expect(refusal(() => b.admit(1, 'emergency', T0 + 15_000)).retryAfterMs).toBe(45_000);
  });

  it('takes the venue\'s used weight as the truth, in both directions, plus what is still in flight', () => {
    const b = new RateBudget('v', 100);
    const ours = b.admit(5, 'routine', T0);
    const other = b.admit(5, 'routine', T0);
    // A bot on the same IP has spent 60: the venue says so.
    b.observe(ours, { status: 200, usedWeight: 65 }, T0 + 10);
    expect(b.snapshot(T0 + 10).used).toBe(70); // 65 + the 5 still in flight
    b.observe(other, { status: 200, usedWeight: 70 }, T0 + 20);
    expect(b.snapshot(T0 + 20).used).toBe(70);
    expect(() => b.admit(20, 'routine', T0 + 30)).toThrow(RateBudgetExhausted);
    // Our estimate was too high: the venue's lower count frees the budget again.
    b.observe(b.admit(1, 'emergency', T0 + 40), { status: 200, usedWeight: 10 }, T0 + 40);
    expect(b.snapshot(T0 + 40).used).toBe(10);
  });

  it('ignores a used-weight header that arrives in the next minute', () => {
    const b = new RateBudget('v', 100);
    const t = b.admit(5, 'routine', T0 + MINUTE - 10);
    b.observe(t, { status: 200, usedWeight: 95 }, T0 + MINUTE + 5);
    expect(b.snapshot(T0 + MINUTE + 5).used).toBe(0);
  });

  it('after a 429, refuses every request (emergency too) until Retry-After has passed', () => {
    const b = new RateBudget('v', 1_000);
    const t = b.admit(1, 'emergency', T0);
    b.observe(t, { status: 429, usedWeight: 10, retryAfterSeconds: 7 }, T0 + 100);
    expect(refusal(() => b.admit(1, 'emergency', T0 + 2_100)).retryAfterMs).toBe(5_000);
    expect(refusal(() => b.admit(1, 'routine', T0 + 2_100)).message).toMatch(/Retry-After/);
    expect(() => b.admit(1, 'emergency', T0 + 7_100)).not.toThrow();
  });

  it('after a 418, waits out the ban the venue states; without Retry-After, the shortest ban (2 minutes)', () => {
    const b = new RateBudget('v', 1_000);
    b.observe(b.admit(1, 'emergency', T0), { status: 418, retryAfterSeconds: 600 }, T0);
    expect(b.blockedFor(T0 + 1_000)).toBe(599_000);
    const c = new RateBudget('v', 1_000);
    c.observe(c.admit(1, 'emergency', T0), { status: 418 }, T0);
    expect(c.blockedFor(T0)).toBe(120_000);
  });

  it('uses the limit the venue states in exchangeInfo', () => {
    const b = new RateBudget('v', 2_400);
    b.setWeightPerMinute(50);
    expect(b.snapshot(T0).routineCap).toBe(40);
    b.setWeightPerMinute(Number.NaN);
    expect(b.snapshot(T0).weightPerMinute).toBe(50);
  });
});

describe('request priority', () => {
  it('is routine outside an emergency context and emergency inside it, across awaits', async () => {
    expect(currentRequestPriority()).toBe('routine');
    const seen = await withRequestPriority('emergency', async () => {
      await new Promise((r) => setTimeout(r, 1));
      return currentRequestPriority();
    });
    expect(seen).toBe('emergency');
    expect(currentRequestPriority()).toBe('routine');
  });
});
