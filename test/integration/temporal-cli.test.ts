/**
 * Any Temporal client can drive a guard: here the `temporal` CLI, as a bot in another language would, with JSON.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

const run = promisify(execFile);
let h: Harness;
beforeAll(async () => {
  h = await startHarness('cli');
  h.paper.exchange.seed({ spotBalances: { USDT: '6000' }, futuresBalances: { USDT: '4000' } });
});
afterAll(async () => {
  await h?.stop();
});

async function temporal(...args: string[]): Promise<string> {
  const { stdout } = await run(process.env.TEST_TEMPORAL_CLI!, [...args, '--address', h.address], { timeout: 30_000 });
  return stdout;
}

describe('the temporal CLI', () => {
  it('sends a balanceReport signal with --input JSON and reads the state with a query', async () => {
    const accountId = uniqueAccount('cli');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    const report = { venue: SPOT, seq: 1, balances: { USDT: '5700.00' } };
    await temporal('workflow', 'signal', '--workflow-id', `guard-${accountId}`, '--name', 'balanceReport', '--input', JSON.stringify(report));
    const state = await eventually(
      async () => JSON.parse(await temporal('workflow', 'query', '--workflow-id', `guard-${accountId}`, '--type', 'state', '--output', 'json')),
      (out) => out.queryResult?.[0]?.lastSeq?.[SPOT] === 1,
    );
    expect(state.queryResult[0]).toMatchObject({ state: 'Warning', lossPct: '3.00', totalValue: '9700' });
  });

  it('starts a guard with workflow start and a JSON config', async () => {
    const accountId = uniqueAccount('clistart');
    const config = { accountId, initialCapital: '10000.00', venues: [SPOT, PERP] };
    await temporal('workflow', 'start', '--task-queue', h.taskQueue, '--type', 'accountGuard', '--workflow-id', `guard-${accountId}`,
      '--input', JSON.stringify({ config }));
    const state = await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    expect(state).toMatchObject({ accountId, state: 'Active', initialCapital: '10000.00', warningPct: '3', thresholdPct: '5' });
  });

  it('sends reportBalances as an update and gets the state or the validation error back', async () => {
    const accountId = uniqueAccount('cliupd');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    const ok = await temporal('workflow', 'update', 'execute', '--workflow-id', `guard-${accountId}`, '--name', 'reportBalances',
      '--input', JSON.stringify({ venue: SPOT, seq: 1, balances: { USDT: '6100' } }), '--output', 'json');
    expect(JSON.parse(ok)).toMatchObject({ result: { outcome: 'accepted', totalValue: '10100', state: 'Active' } });
    const bad = temporal('workflow', 'update', 'execute', '--workflow-id', `guard-${accountId}`, '--name', 'reportBalances',
      '--input', JSON.stringify({ venue: SPOT, seq: 2, balances: { USDT: 6100 } }));
    await expect(bad).rejects.toMatchObject({ stderr: expect.stringContaining('must be a decimal string') });
  });

  it('lists tripped accounts by search attribute', async () => {
    const accountId = uniqueAccount('clilist');
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    await h.breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: '1000' } });
    const listed = await eventually(
      async () => temporal('workflow', 'list', '--query', `BreakerState='Triggered' AND BreakerAccount='${accountId}' AND ExecutionStatus='Running'`),
      (out) => out.includes(`guard-${accountId}`),
    );
    expect(listed).toContain('accountGuard');
  });
});
