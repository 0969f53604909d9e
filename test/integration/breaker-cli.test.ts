/**
 * Our own `breaker` command line, run as a separate process like an operator would.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
let h: Harness;
beforeAll(async () => {
  h = await startHarness('breakercli');
  h.paper.exchange.seed({ spotBalances: { USDT: '6000' }, futuresBalances: { USDT: '4000' } });
});
afterAll(async () => {
  await h?.stop();
});

async function breaker(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(path.join(ROOT, 'node_modules/.bin/tsx'), ['src/cli/breaker.ts', '--address', h.address, '--task-queue', h.taskQueue, ...args], { cwd: ROOT, timeout: 60_000 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('breaker CLI', () => {
  it('starts a guard, reports, shows state and events, refuses what is not allowed, and resets', async () => {
    const account = uniqueAccount('cli');
    const started = await breaker('start', account, '--capital', '10000.00', '--venues', `${SPOT},${PERP}`);
    expect(started).toMatchObject({ code: 0, stdout: expect.stringContaining(`guard guard-${account} is running`) });
    await eventually(() => h.breaker.state(account), (s) => s.lastValuationAt !== null);

    const reported = await breaker('report', account, JSON.stringify({ venue: SPOT, seq: 1, balances: { USDT: '5400' } }));
    expect(reported.code).toBe(0);
    expect(reported.stdout).toMatch(/^accepted\n/);
    expect(reported.stdout).toMatch(/state\s+Triggered/);
    expect(reported.stdout).toMatch(/loss\s+6\.00 %/);

    const badReport = await breaker('report', account, JSON.stringify({ venue: SPOT, seq: 2, balances: { USDT: 'lots' } }));
    expect(badReport).toMatchObject({ code: 2, stderr: expect.stringContaining('report.balances.USDT: must be a decimal string') });

    const disable = await breaker('disable', account, '--operator', 'alice', '--reason', 'try');
    expect(disable).toMatchObject({ code: 2, stderr: expect.stringContaining('a Triggered breaker cannot be disabled') });

    const noReason = await breaker('reset', account, '--operator', 'alice');
    expect(noReason.code).not.toBe(0);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");

    const listed = await breaker('list', '--state', 'Triggered');
    expect(listed.stdout).toContain(`guard-${account}`);

    const reset = await breaker('reset', account, '--operator', 'alice', '--reason', 'reviewed; capital rebased by ops');
    expect(reset.code).toBe(0);
    const events = await breaker('events', account, '--json');
    expect(JSON.parse(events.stdout).map((e: { type: string }) => e.type)).toContain('CircuitBreakerReset');

    const state = await breaker('state', account, '--json');
    expect(JSON.parse(state.stdout)).toMatchObject({ accountId: account, lastSeq: { [SPOT]: 1 } });
  });

  it('explains a bad account config without starting anything', async () => {
    const account = uniqueAccount('clibad');
    const result = await breaker('start', account, '--capital', '0', '--venues', SPOT, '--warning', '6');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('config.initialCapital: must be greater than 0');
    expect(result.stderr).toContain('config.warningPct: must be below thresholdPct');
  });
});
