/**
 * Determinism guard: every history in test/histories (recorded from real runs with RECORD_HISTORIES=1) must replay
 * against today's workflow code without a nondeterminism error.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { readHistory } from '../../tooling/crash/histories';

const dir = path.resolve(__dirname, '../histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

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
});
