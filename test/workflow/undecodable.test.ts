/**
 * Payloads the worker cannot decode (an unknown encoding, JSON with NaN as Python writes it) are refused; they never
 * fail a workflow task. End to end through the bundle's payload converter (src/api/payload-converter.ts).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { RawValue } from '@temporalio/common';
import type { Payload } from '@temporalio/common';
import { WorkflowHarness, startWorkflowHarness, uniqueAccount } from './harness';

const run = promisify(execFile);
const VENUE = 'spot';
/** What Python's json.dumps writes for a report with float('nan'). */
const PYTHON_NAN_REPORT = `{"venue": "${VENUE}", "seq": 7, "balances": {"USDT": NaN}}`;
const raw = (encoding: string, data: string): RawValue => {
  const payload: Payload = { metadata: { encoding: new TextEncoder().encode(encoding) }, data: new TextEncoder().encode(data) };
  return RawValue.fromPayload(payload);
};

let h: WorkflowHarness;
beforeAll(async () => {
  h = await startWorkflowHarness('undecodable');
  h.stubs.venue(VENUE).setHoldings({ balances: { USDT: '10000' } });
});
afterAll(async () => {
  await h?.stop();
});

it('signals and updates the worker cannot decode are refused; the guard keeps working', async () => {
  const accountId = uniqueAccount('undecodable');
  const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [VENUE] });
  await h.eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);

  // As `temporal workflow signal --input-meta encoding=json/protobuf` sends it.
  const { stdout } = await run(
    process.env.TEST_TEMPORAL_CLI!,
    ['workflow', 'signal', '--workflow-id', handle.workflowId, '--name', 'balanceReport', '--input', JSON.stringify({ venue: VENUE, seq: 5, balances: { USDT: '1' } }), '--input-meta', 'encoding=json/protobuf', '--address', process.env.TEST_TEMPORAL_ADDRESS!],
    { timeout: 30_000 },
  );
  expect(stdout).toContain('Signal workflow succeeded');
  await handle.signal('balanceReport', raw('json/plain', PYTHON_NAN_REPORT));

  // An update is refused with a non-retryable failure (the default converter's SyntaxError would be retryable).
  const attempt = handle.executeUpdate('reportBalances', { args: [raw('json/plain', PYTHON_NAN_REPORT)] });
  await expect(attempt).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
  await expect(attempt).rejects.toMatchObject({ cause: { nonRetryable: true } });

  // None of it reached the state, and the guard still answers and accepts reports.
  expect((await h.breaker.state(accountId)).lastSeq[VENUE] ?? null).toBeNull();
  expect(await h.breaker.report(accountId, { venue: VENUE, seq: 8, balances: { USDT: '9990' } })).toMatchObject({ outcome: 'accepted' });
  expect(await h.historyHasFailedWorkflowTask(handle)).toEqual([]);
});
