/**
 * Two processes appending to one account's audit log at once (two workers during a failover) must take turns
 * through the lock file: the result is one valid chain holding every entry of both.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { read, verify } from '../../src/audit/log';

const ROOT = path.resolve(__dirname, '../..');
const CHILD = path.join(ROOT, 'test/fixtures/audit-append-child.ts');

function runChild(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'audit-procs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('two processes appending 50 entries each to one account leave one verified chain of 100', async () => {
  const results = await Promise.all([runChild([dir, 'acct-1', 'w1', '50']), runChild([dir, 'acct-1', 'w2', '50'])]);
  expect(results).toEqual([{ code: 0, stderr: '' }, { code: 0, stderr: '' }]);
  const [result] = await verify(dir, 'acct-1');
  expect(result).toMatchObject({ ok: true, records: 100, problem: null, warnings: [] });
  const records = await read(dir, 'acct-1');
  expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  for (const prefix of ['w1', 'w2']) {
    // Each writer's entries, all present and in its own order.
    expect(records.filter((r) => r.eventId.startsWith(`${prefix}-`)).map((r) => r.eventId)).toEqual(Array.from({ length: 50 }, (_, i) => `${prefix}-${i + 1}`));
  }
  expect((await readdir(dir)).sort()).toEqual(['acct-1.head', 'acct-1.jsonl']);
}, 120_000);
