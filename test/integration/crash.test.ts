/**
 * The reason the product exists: a shutdown that has started always finishes. Real worker processes are SIGKILLed
 * at chosen moments of a shutdown, the Temporal server is stopped and restarted on its database, and every fault
 * kind is injected into the venue. Each time the paper exchange must end with zero open orders (and zero positions
 * with auto-close), and the guard must record exactly one trigger and one shutdown. `npm run chaos` runs the same
 * scenarios at scale with a seeded schedule.
 */
import { Client, Connection } from '@temporalio/client';
import { KILL_POINTS, ScenarioResult, faultScenarios, runScenario, startRestartableServer } from '../../tooling/crash/crash';

let connection: Connection;
let env: { address: string; workflowBundle: string; client: Client };
beforeAll(async () => {
  connection = await Connection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! });
  env = { address: process.env.TEST_TEMPORAL_ADDRESS!, workflowBundle: process.env.TEST_WORKFLOW_BUNDLE!, client: new Client({ connection }) };
});
afterAll(async () => {
  await connection?.close();
});

function expectFlatAndRecordedOnce(r: ScenarioResult, autoClose: boolean): void {
  expect({ ordersLeft: r.ordersLeft, positionsLeft: autoClose ? r.positionsLeft : 0, triggers: r.triggers, shutdowns: r.shutdowns, secretLeaked: r.secretLeaked }).toEqual({
    ordersLeft: 0,
    positionsLeft: 0,
    triggers: 1,
    shutdowns: 1,
    secretLeaked: false,
  });
}

describe('SIGKILL of the worker mid-shutdown', () => {
  it.each(KILL_POINTS.map((point, i) => [point, i] as const))('at %s: a new worker finishes the shutdown', async (point, i) => {
    const autoClose = point === 'duringClose';
    const result = await runScenario(env, {
      name: `kill-${point}`,
      orders: 24,
      autoClose,
      kill: { point, index: i + 1, releaseBeforeKill: i % 2 === 0 },
    });
    expectFlatAndRecordedOnce(result, autoClose);
  });
});

describe('Temporal server restart mid-shutdown', () => {
  let restartable: Awaited<ReturnType<typeof startRestartableServer>>;
  beforeAll(async () => {
    restartable = await startRestartableServer();
  });
  afterAll(async () => {
    await restartable?.stop();
  });

  it('stopped with SIGKILL and restarted on the same database, the shutdown still finishes', async () => {
    const result = await runScenario(
      { address: restartable.address, workflowBundle: env.workflowBundle, client: restartable.client },
      { name: 'server-restart', orders: 24, autoClose: true, serverRestart: restartable.restartAt(2) },
    );
    expectFlatAndRecordedOnce(result, true);
  });
});

describe('venue faults during the shutdown', () => {
  it.each(faultScenarios().map((f) => [f.kind, f] as const))('%s: retried or classified, and the account ends flat', async (kind, f) => {
    const result = await runScenario(env, { name: `fault-${kind}`, orders: 12, autoClose: false, fault: f.fault, timeoutMs: f.timeoutMs });
    expectFlatAndRecordedOnce(result, false);
    expect(result.faultsApplied).toBeGreaterThan(0);
    if (kind === 'auth') {
      // Never reported as done while the venue refused: shown as failed, alerted, then finished once it accepted.
      expect(result.failedVenuesSeen).toEqual(['binance-usdm']);
      expect(result.alerts.map((a) => a.kind)).toContain('VenueAuthFailed');
      expect(result.events.map((e) => e.type)).toContain('VenueShutdownFailed');
    }
    expect(result.alerts.map((a) => a.kind)).toEqual(expect.arrayContaining(['CircuitBreakerTriggered', 'ShutdownComplete']));
  });
});

describe('a bot that keeps trading after the trigger', () => {
  it('has its new orders swept within the sweep interval, without a second trigger', async () => {
    const result = await runScenario(env, { name: 'bot-after-trigger', orders: 6, autoClose: false, botOrdersAfterFlat: 9 });
    expectFlatAndRecordedOnce(result, false);
    expect(result.events.filter((e) => e.type === 'OrdersSwept').length).toBeGreaterThan(0);
  });
});
