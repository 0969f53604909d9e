/**
 * The validators say the same, precise things inside Temporal's webpack workflow bundle as in Node. They once did not:
 * zod's English messages are installed as a side effect that webpack drops from the bundle (zod declares
 * `"sideEffects": false`), and every message became "Invalid input" in the workflow only. Unit tests, which run in
 * Node, could not see it; this test runs the validators in a real bundle on a real worker.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { MAX_ERROR_CHARS } from '../../src/domain/limits';
import { validationCaseResults, validationMessages } from '../fixtures/validation-workflow';

const WORKFLOWS = path.resolve(__dirname, '../fixtures/validation-workflow.ts');

/** The messages that matter most, exactly (the rest are compared with Node's). */
const EXPECTED: Record<string, string> = {
  'report: unknown field': 'report: unknown field "foo"; allowed fields: venue, seq, asOf, balances, prices, positions, auth',
  'report: missing venue': 'report.venue: is required',
  'report: unknown venue': 'report.venue: unknown venue "kraken"; this account has "binance-spot", "binance-usdm"',
  'report: seq -1': 'report.seq: must be a whole number from 0 to 9007199254740991, got -1',
  'report: seq 1.5': 'report.seq: must be a whole number from 0 to 9007199254740991, got 1.5',
  'report: seq 2^53': 'report.seq: must be a whole number from 0 to 9007199254740991, got 9007199254740992',
  'report: seq 1e300': 'report.seq: must be a whole number from 0 to 9007199254740991, got 1e+300',
  'report: side LONG': 'report.positions.0.side: must be one of "long", "short", got "LONG"',
  'report: number balance': 'report.balances.BTC: must be a decimal string such as "0.1", got the number 0.1',
  'report: 100,001 balances': 'report.balances: must hold at most 2000 entries, got 100001',
  'config: EUR': 'config.referenceCurrency: must be one of "USDT", "USDC", got "EUR"',
  'config: unknown field':
    'config: unknown field "surprise"; allowed fields: accountId, initialCapital, referenceCurrency, warningPct, thresholdPct, ' +
    'autoClosePositions, venues, valuationIntervalSeconds, sweepIntervalSeconds, maxSeqJump, blindPolicy, watch',
  'config: missing initialCapital': 'config.initialCapital: is required',
  'operator: missing': 'reset.operator: is required: who is acting (1-64 characters); reset.reason: is required: why (1-500 characters)',
  'operator: control characters': 'halt.reason: must not contain control characters',
  'operator: extra field of plain zod': 'close.count: must be at least 1',
  'zod: English locale': 'Invalid input: expected string, received number',
  'guard input: null': 'input: the guard starts with {"config": {...}}, got null',
  'guard input: bare config': 'input.config is required: wrap the account config as {"config": {...}}',
  'guard input: unknown field': 'input: unknown field "extra"; allowed fields: config, state, signedBy',
};

let runtimeInstalled = false;

describe('validation inside the workflow bundle', () => {
  let inBundle: Record<string, string>;

  beforeAll(async () => {
    const address = process.env.TEST_TEMPORAL_ADDRESS;
    if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is not set: run integration tests through jest (globalSetup)');
    if (!runtimeInstalled) {
      try {
        Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
      } catch {
        // Already installed in this process: keep it.
      }
      runtimeInstalled = true;
    }
    // A bundle of its own (the shared one holds only the guard): the same bundler the worker uses in production.
    const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS, logger: new DefaultLogger('ERROR') });
    const taskQueue = `test-validation-bundle-${randomBytes(4).toString('hex')}`;
    const nativeConnection = await NativeConnection.connect({ address });
    const connection = await Connection.connect({ address });
    try {
      const worker = await Worker.create({ connection: nativeConnection, taskQueue, workflowBundle: { code } });
      const client = new Client({ connection });
      inBundle = await worker.runUntil(
        client.workflow.execute(validationMessages, {
          taskQueue,
          workflowId: `validation-bundle-${randomBytes(4).toString('hex')}`,
          // A workflow task that fails (e.g. a result over the 2 MB payload limit, as when messages echoed their
          // input) is retried forever; fail the test instead of hanging.
          workflowExecutionTimeout: '1 minute',
        }),
      );
    } finally {
      await connection.close();
      await nativeConnection.close();
    }
  });

  it('says exactly what Node says, for every case', () => {
    expect(inBundle).toEqual(validationCaseResults());
  });

  it.each(Object.entries(EXPECTED))('%s: %s', (label, message) => {
    expect(inBundle[label]).toBe(message);
  });

  it('never falls back to "Invalid input", never exceeds the cap, never echoes more than 64 characters of a value', () => {
    const errors = Object.entries(inBundle).filter(([label, answer]) => !answer.startsWith('ok ') && !label.startsWith('zod:'));
    expect(errors.length).toBeGreaterThan(20);
    for (const [label, message] of errors) {
      expect([label, message]).toEqual([label, expect.not.stringContaining('Invalid input')]);
      expect(message.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
      expect(message).not.toMatch(/v{65}|9{65}/);
    }
    expect(inBundle['report: 2 MB venue']).toMatch(/^report\.venue: unknown venue "v{64}…\(2097152 characters\)"; this account has "binance-spot", "binance-usdm"$/);
    expect(inBundle['report: 700,000-digit amount']).toMatch(/^report\.balances\.BTC: must be a decimal string of at most 48 characters, got the string "9{64}…\(700000 characters\)"$/);
    expect(inBundle['report: __proto__ asset']).toMatch(/^report\.balances\.__proto__: asset names are 1-20 upper-case letters and digits/);
    expect(inBundle['report: valid, zero rows dropped']).toBe('ok {"venue":"binance-spot","seq":1,"balances":{"USDT":"4000"}}');
  });
});
