/**
 * Binance's request-weight limits, with real ccxt against the paper exchange set to small limits: the request budget
 * (src/exchanges/rate-budget.ts) takes the venue's used-weight header as the truth, keeps the last 20 % of the minute
 * for cancels and closes, and after a 429 sends nothing until Retry-After has passed, so a sweep loop never earns a
 * ban (418). Each test has a paper exchange of its own: Binance counts per IP, the budget per host.
 */
import ccxt from 'ccxt';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../../src/activities';
import { cancelPass } from '../../src/activities/cancel-pass';
import { VenueFailureType } from '../../src/api/failures';
import { VenueClient, createVenueClient, routedFetch } from '../../src/exchanges/ccxt-factory';
import { RateBudgetExhausted } from '../../src/exchanges/rate-budget';
import { spreadOrders } from '../../tooling/paper/exchange';
import { PaperRateLimits } from '../../tooling/paper/rate-limits';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import { TEST_CREDENTIALS } from './paper-fixture';

const credentials = TEST_CREDENTIALS;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let paper: PaperServer;

async function startPaper(limits: Partial<PaperRateLimits>): Promise<void> {
  // Binance counts per clock minute: start with at least 15 s of the minute left, so that no test straddles two.
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 15_000) await sleep(left + 50);
  paper = await startPaperServer({ credentials: [credentials], rateLimits: limits });
}
afterEach(async () => {
  await paper.close();
});

/** A USDⓈ-M client with the budget only (no ccxt limiter), its markets loaded: the budget has read the venue's limit. */
async function perpClient(): Promise<VenueClient> {
  const client = createVenueClient({ id: 'perp', exchange: 'binanceusdm', routeTo: paper.url, timeoutMs: 5_000 }, credentials);
  await client.exchange.loadMarkets();
  return client;
}

/** Weight spent from the same IP by the account's bots, which the worker does not see. */
function botSpends(weight: number): void {
  paper.rateLimits.spend('futures', weight, Date.now());
}

function venueUsed(): number {
  return paper.rateLimits.used('futures', Date.now());
}

function activityEnv() {
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  return <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => env.run(fn, ...args) as Promise<R>;
}

/** Sweeps as fast as it can for `ms`, like a naive loop, ignoring every error; returns the errors seen. */
async function sweepLoop(pass: () => Promise<unknown>, ms: number): Promise<unknown[]> {
  const errors: unknown[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      await pass();
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}

describe('request budget against the venue\'s limits', () => {
  it('takes the limit from exchangeInfo and the used weight from every answer (a bot on the same IP spends too)', async () => {
    await startPaper({ futuresWeightPerMinute: 1_000 });
    const perp = await perpClient();
    expect(perp.budget.snapshot(Date.now())).toMatchObject({ weightPerMinute: 1_000, routineCap: 800 });
    botSpends(500);
    const before = perp.budget.snapshot(Date.now()).used;
    expect(before).toBeLessThan(100); // the budget cannot know what the bot did...
    await perp.books.positions();
    // ...until the venue's X-MBX-USED-WEIGHT-1M tells it: its count, not ours, is the budget's from now on.
    expect(perp.budget.snapshot(Date.now()).used).toBe(venueUsed());
    expect(venueUsed()).toBeGreaterThanOrEqual(505);
  });

  it('refuses a routine read when only the reserve is left (retryable, with the wait), while a cancel pass goes through', async () => {
    await startPaper({ futuresWeightPerMinute: 1_000 });
    paper.exchange.seed({ orders: spreadOrders(12).filter((o) => o.market === 'futures') });
    const perp = await perpClient();
    const activities = createActivities({ venues: new Map([['perp', perp]]) });
    botSpends(790 - venueUsed());
    await perp.books.positions(); // the answer tells the budget: 795 used, 5 short of the routine cap (800)
    const accountReads = paper.requests.get('GET /fapi/v3/account') ?? 0;

    const read = activityEnv()(activities.readVenue, 'perp', 'USDT');
    await expect(read).rejects.toBeInstanceOf(ApplicationFailure);
    const failure = (await read.catch((e: unknown) => e)) as ApplicationFailure;
    expect(failure.type).toBe(VenueFailureType.Unavailable);
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toMatch(/kept for cancels and closes/);
    // Temporal retries after the wait, not before: the start of the next minute.
    expect(Number(failure.nextRetryDelay)).toBeGreaterThan(0);
    expect(Number(failure.nextRetryDelay)).toBeLessThanOrEqual(60_000);
    expect(paper.requests.get('GET /fapi/v3/account') ?? 0).toBe(accountReads); // never sent

    const pass = await activityEnv()(activities.cancelAllOpenOrders, 'perp');
    expect(pass).toMatchObject({ cancelled: 8, openAfter: 0 });
    expect(paper.exchange.snapshot().openOrders.total).toBe(0);
    expect(venueUsed()).toBeGreaterThan(800); // it spent the reserve
    expect(venueUsed()).toBeLessThanOrEqual(1_000);
    expect(paper.rateLimits.answered).toEqual({ tooMany: 0, banned: 0 });
  });

  it('a sweep loop stops at the first 429 and waits out Retry-After: never a 418 (while the same loop without the budget is banned)', async () => {
    await startPaper({ futuresWeightPerMinute: 200, banAfterIgnored: 3 });
    paper.exchange.seed({ orders: spreadOrders(30).filter((o) => o.market === 'futures') });
    const perp = await perpClient();
    // The bots have spent most of the minute: the worker learns it from the venue's 429.
    botSpends(190 - venueUsed());
    const sent = () => [...paper.requests.values()].reduce((a, b) => a + b, 0);
    const before = sent();
    const errors = await sweepLoop(() => cancelPass(perp, { cancelled: 0, step: '' }), 1_500);
    expect(paper.rateLimits.answered.tooMany).toBeGreaterThanOrEqual(1);
    expect(paper.rateLimits.answered.banned).toBe(0);
    // The first pass's listing met the 429; everything after it was refused before it left the worker.
    expect(sent() - before).toBe(1);
    expect(errors.length).toBeGreaterThan(10);
    const last = errors.at(-1);
    expect(last).toBeInstanceOf(RateBudgetExhausted);
    expect((last as RateBudgetExhausted).retryAfterMs).toBeGreaterThan(0);
    expect(perp.budget.blockedFor(Date.now())).toBeGreaterThan(0);

    // Negative control: the same loop through a bare ccxt instance (ccxt's limiter off, no budget) gets banned.
    paper.rateLimits.configure({ futuresWeightPerMinute: 200, banAfterIgnored: 3 });
    paper.rateLimits.spend('futures', 190, Date.now());
    const bare = new ccxt.binanceusdm({ apiKey: credentials.apiKey, secret: credentials.secret, enableRateLimit: false });
    bare.fetchImplementation = routedFetch(paper.url);
    const bareErrors = await sweepLoop(() => (bare as unknown as { fapiPrivateGetOpenOrders(): Promise<unknown> }).fapiPrivateGetOpenOrders(), 500);
    expect(bareErrors.some((e) => e instanceof ccxt.DDoSProtection && /418|banned/.test((e as Error).message))).toBe(true);
    expect(paper.rateLimits.answered.banned).toBeGreaterThan(0);
  });
});
