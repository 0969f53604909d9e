/**
 * The seed scenario on a real Temporal server, a real worker, and real ccxt classes against the paper exchange.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeHistory } from '../../tooling/crash/histories';
import { SEED_CAPITAL, SEED_STEPS, perpReport, seedPaperAccount, spotReport } from '../../tooling/seed-scenario';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

let h: Harness;

/**
 * With RECORD_HISTORIES=1, stores the guard's history for the replay test (test/histories), so that a later change
 * that breaks determinism against histories recorded by today's code fails the suite.
 */
async function recordHistory(name: string, accountId: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const history = await h.breaker.handle(accountId).fetchHistory();
  const dir = path.resolve(__dirname, '../histories');
  mkdirSync(dir, { recursive: true });
  writeHistory(path.join(dir, `${name}.json`), history);
}
beforeAll(async () => {
  h = await startHarness('seed');
});
afterAll(async () => {
  await h?.stop();
});

describe('the seed scenario', () => {
  it('walks Active → Warning → Triggered, cancels every order on both venues and records one trigger', async () => {
    h.paper.exchange.seed(seedPaperAccount());
    expect(h.paper.exchange.snapshot().openOrders).toEqual({ spot: 3, futures: 2, futuresAlgo: 2, total: 7 });
    const accountId = uniqueAccount('seed');
    await h.breaker.startGuard({ accountId, initialCapital: SEED_CAPITAL, venues: [SPOT, PERP] });

    // The guard reads both venues itself on start: $10,000.00, no loss.
    const first = await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    expect(first).toMatchObject({ state: 'Active', totalValue: '10000', lossPct: '0.00' });

    for (const [i, step] of SEED_STEPS.entries()) {
      await fetch(`${h.paper.url}/control/prices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ BTC: step.price }) });
      await h.breaker.report(accountId, spotReport(i + 1, step.price));
      const answer = await h.breaker.report(accountId, perpReport(i + 1, step.price));
      expect({ state: answer.state, lossPct: answer.lossPct, totalValue: answer.totalValue, outcome: answer.outcome }).toEqual({
        state: step.state,
        lossPct: step.lossPct,
        totalValue: step.totalValue,
        outcome: 'accepted',
      });
    }

    const flat = await eventually(() => h.breaker.state(accountId), (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat');
    expect(flat.shutdown[SPOT]).toMatchObject({ status: 'flat', cancelled: 3, openOrders: 0 });
    expect(flat.shutdown[PERP]).toMatchObject({ status: 'flat', cancelled: 4, openOrders: 0 });
    expect(flat.pnl).toBe('-550');
    expect(h.paper.exchange.snapshot().openOrders.total).toBe(0);

    const events = (await h.breaker.events(accountId)).map((e) => e.type);
    expect(events).toEqual(['WarningTriggered', 'CircuitBreakerTriggered', 'SystemShutdown']);

    // Latched: a recovery does not leave Triggered (seen by the watcher on the venue, and reported by the bot).
    await fetch(`${h.paper.url}/control/prices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ BTC: '45000' }) });
    await h.breaker.report(accountId, spotReport(10, '45000'));
    const recovered = await h.breaker.report(accountId, perpReport(10, '45000'));
    expect(recovered.state).toBe('Triggered');
    expect(Number(recovered.lossPct)).toBeLessThan(0);

    // The UI's and CLI's search finds it.
    const found = await eventually(
      async () => {
        const ids: string[] = [];
        for await (const wf of h.client.workflow.list({ query: `BreakerState = 'Triggered' AND BreakerAccount = '${accountId}' AND ExecutionStatus = 'Running'` })) ids.push(wf.workflowId);
        return ids;
      },
      (ids) => ids.length === 1,
    );
    expect(found).toEqual([`guard-${accountId}`]);

    // Only an operator's reset leaves Triggered; the next report is evaluated afresh.
    const reset = await h.breaker.reset(accountId, { operator: 'alice', reason: 'losses reviewed' });
    expect(reset.state).not.toBe('Triggered');
    expect((await h.breaker.events(accountId)).at(-1)).toMatchObject({ type: 'CircuitBreakerReset', operator: 'alice', reason: 'losses reviewed' });

    await recordHistory('seed-scenario', accountId);
    await h.breaker.handle(accountId).terminate('test done');
  });

  it('values the account by itself on its timer, with no bot reporting', async () => {
    h.paper.exchange.reset();
    h.paper.exchange.seed({ prices: { ETH: '2000' }, spotBalances: { USDT: '9000', ETH: '0.5' }, futuresBalances: { USDT: '0' } });
    const accountId = uniqueAccount('timer');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP], valuationIntervalSeconds: 1 });
    await eventually(() => h.breaker.state(accountId), (s) => s.totalValue === '10000');
    h.paper.exchange.setPrice('ETH', '1200'); // −400: a 4 % loss
    const warned = await eventually(() => h.breaker.state(accountId), (s) => s.state === 'Warning');
    expect(warned).toMatchObject({ totalValue: '9600', lossPct: '4.00' });
    expect(warned.lastSeq).toEqual({ [SPOT]: null, [PERP]: null });
    await h.breaker.handle(accountId).terminate('test done');
  });

  it('prices a report that lacks prices by reading the venue before answering', async () => {
    h.paper.exchange.reset();
    h.paper.exchange.seed({ prices: { SOL: '100' }, spotBalances: { USDT: '5000', SOL: '50' }, futuresBalances: { USDT: '0' } });
    const accountId = uniqueAccount('noprice');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    await eventually(() => h.breaker.state(accountId), (s) => s.totalValue === '10000');
    h.paper.exchange.setPrice('SOL', '90');
    // The bot reports DOGE without a price: the guard reads the venue, whose truth then counts.
    const answer = await h.breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '5000', SOL: '50', DOGE: '100' } });
    expect(answer).toMatchObject({ outcome: 'accepted', totalValue: '9500', lossPct: '5.00', state: 'Triggered' });
    await h.breaker.handle(accountId).terminate('test done');
  });
});
