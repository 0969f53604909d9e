/**
 * The worker's health file (BREAKER_HEALTH_FILE), which the compose health check reads: touched while the worker
 * polls, and left to age once it is gone.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkerProcess } from '../../tooling/crash/worker-process';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import { eventually } from './harness';

let paper: PaperServer;
const credentials = { apiKey: randomBytes(8).toString('hex'), secret: randomBytes(16).toString('hex') };
beforeAll(async () => {
  paper = await startPaperServer({ credentials: [credentials] });
});
afterAll(async () => {
  await paper?.close();
});

it('a running worker touches its health file; a killed one leaves it to age', async () => {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'breaker-health-')), 'alive');
  const worker = await WorkerProcess.start({
    address: process.env.TEST_TEMPORAL_ADDRESS!,
    taskQueue: `health-${randomBytes(3).toString('hex')}`,
    workflowBundle: process.env.TEST_WORKFLOW_BUNDLE!,
    paperUrl: paper.url,
    credentials,
    env: { BREAKER_HEALTH_FILE: file },
  });
  try {
    const first = await eventually(async () => (existsSync(file) ? statSync(file).mtimeMs : 0), (m) => m > 0, 20_000);
    // Touched again while it runs (every 10 s).
    await eventually(async () => statSync(file).mtimeMs, (m) => m > first, 25_000);
    await worker.kill();
    const last = statSync(file).mtimeMs;
    await new Promise((r) => setTimeout(r, 11_000));
    expect(statSync(file).mtimeMs).toBe(last);
  } finally {
    await worker.kill();
  }
}, 90_000);
