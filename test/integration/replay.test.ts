/**
 * Determinism guard: every history in test/histories and its older sets (recorded from real runs with RECORD_HISTORIES=1) must replay
 * against today's workflow code without a nondeterminism error. A negative control keeps the test honest: a history
 * recorded from the guard before it became one decider (test/histories/must-fail) must fail to replay.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { readHistory } from '../../tooling/crash/histories';

const dir = path.resolve(__dirname, '../histories');
/**
 * Today's recordings, and those of earlier versions of the guard still running somewhere (each set in a folder of its
 * own, e.g. before-watcher/: recorded before the watcher, they must keep replaying with it patched in).
 */
const OLDER = ['before-watcher', 'before-trust'];
const files = [
  ...readdirSync(dir).filter((f) => f.endsWith('.json')),
  ...OLDER.flatMap((sub) => readdirSync(path.join(dir, sub)).filter((f) => f.endsWith('.json')).map((f) => path.join(sub, f))),
];

beforeAll(() => {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // already installed by another file in this worker process
  }
});

describe('replay of recorded histories', () => {
  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)('%s replays without nondeterminism', async (file) => {
    const history = readHistory(path.join(dir, file));
    await Worker.runReplayHistory({ workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! } }, history, file);
  });

  it('negative control: a history of the pre-decider workflow fails to replay', async () => {
    const history = readHistory(path.join(dir, 'must-fail', 'v1-seed-scenario.json'));
    await expect(Worker.runReplayHistory({ workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! } }, history, 'v1')).rejects.toBeInstanceOf(
      DeterminismViolationError,
    );
  });
});
