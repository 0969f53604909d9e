/**
 * The watchdog against the real server and real guards: it reports an account with no guard, a terminated guard, a
 * second workflow claiming the account, a guard whose workflow tasks fail (a bad deploy) or that no worker serves, a
 * guard that cannot read its venues, and a healthy one; it alerts a webhook once per ongoing problem, with the same
 * key after a restart, and `breaker watch --once` exits 0 or 1 accordingly.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { NativeConnection, Worker } from '@temporalio/worker';
import { BreakerAccountAttribute, guardWorkflowId } from '../../src/api/contract';
import { registerWatchCommand } from '../../src/cli/watch';
import { AccountCheck, WatchdogAlert, checkAccounts, runWatchdog } from '../../src/watchdog/watchdog';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('watchdog');
  // Worth the guards' capital (10,000 USDT), so that a healthy guard stays Active.
  h.paper.exchange.seed({ spotBalances: { USDT: '6000' }, futuresBalances: { USDT: '4000' } });
});
afterAll(async () => {
  await h?.stop();
});

const check = async (accountId: string, queryTimeoutMs = 3_000): Promise<AccountCheck> =>
  (await checkAccounts({ client: h.client, accounts: [accountId], queryTimeoutMs, venuesOf: () => [SPOT, PERP] }))[0]!;
const kinds = (c: AccountCheck) => c.findings.map((f) => f.kind);
const messages = (c: AccountCheck) => c.findings.map((f) => f.message).join('\n');

/** A workflow of type accountGuard on a task queue no worker polls: it stays Running and never runs a line. */
async function startUnserved(workflowId: string, accountId?: string) {
  return h.client.workflow.start('accountGuard', {
    workflowId,
    taskQueue: `unserved-${randomBytes(4).toString('hex')}`,
    args: [],
    ...(accountId ? { typedSearchAttributes: [{ key: BreakerAccountAttribute, value: accountId }] } : {}),
  });
}

describe('a healthy guard', () => {
  const accountId = uniqueAccount('watch-ok');

  it('is ok once it has valued the account', async () => {
    await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    const c = await eventually(() => check(accountId), (c) => c.observation.query.kind === 'answered' && c.observation.query.lastValuationAt !== null);
    expect(kinds(c)).toEqual(['ok']);
    expect(c.findings[0]!.message).toMatch(new RegExp(`^${accountId}: guard running, Active, valued \\d+ s ago$`));
    // The guard's own staleness limit was read from its config (the default: 300 s, or twice the valuation interval).
    expect(c.observation.query).toMatchObject({ staleAfterSeconds: 300 });
  });

  it('breaker watch --once exits 0 when every account in the anchor is ok, and 1 when one is not', async () => {
    const missing = uniqueAccount('watch-cli-missing');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'breaker-watch-'));
    const anchor = (accounts: string[]) => {
      const file = path.join(dir, `anchor-${accounts.length}.json`);
      writeFileSync(file, JSON.stringify({ accounts: Object.fromEntries(accounts.map((a, i) => [a, { venues: [`venue-${i}`], operators: [] }])) }));
      return file;
    };
    const run = async (file: string): Promise<number | string | undefined> => {
      const saved = { exitCode: process.exitCode, trust: process.env.BREAKER_TRUST_FILE, webhook: process.env.ALERT_WEBHOOK_URL };
      const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
      process.env.BREAKER_TRUST_FILE = file;
      delete process.env.ALERT_WEBHOOK_URL;
      process.exitCode = undefined;
      try {
        const program = new Command().exitOverride();
        registerWatchCommand(program, async () => ({ client: h.client, close: async () => undefined }));
        await program.parseAsync(['node', 'breaker', 'watch', '--once', '--query-timeout', '3000']);
        return process.exitCode;
      } finally {
        log.mockRestore();
        process.exitCode = saved.exitCode;
        process.env.BREAKER_TRUST_FILE = saved.trust;
        if (saved.webhook !== undefined) process.env.ALERT_WEBHOOK_URL = saved.webhook;
      }
    };
    expect(await run(anchor([accountId]))).toBe(0);
    expect(await run(anchor([accountId, missing]))).toBe(1);
  });
});

it('reports an account of the anchor that has no guard as missing', async () => {
  const accountId = uniqueAccount('watch-missing');
  const c = await check(accountId);
  expect(kinds(c)).toEqual(['missing']);
  expect(messages(c)).toContain(`${accountId}: no guard (workflow guard-${accountId} not found)`);
  expect(messages(c)).toContain(`breaker start ${accountId} --capital <initial capital> --venues ${SPOT},${PERP}`);
});

it('reports a terminated guard as not running, with how to start it again', async () => {
  const accountId = uniqueAccount('watch-terminated');
  const handle = await h.breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
  await eventually(() => check(accountId), (c) => c.observation.query.kind === 'answered');
  await handle.terminate('watchdog test');
  const c = await check(accountId);
  expect(kinds(c)).toEqual(['not-running']);
  expect(messages(c)).toMatch(new RegExp(`^${accountId}: guard terminated at \\S+ \\(run \\S+\\).*start it again: breaker start ${accountId}`));
  expect(c.observation.query).toEqual({ kind: 'notAsked' });
});

it('reports a second workflow that carries the account (BreakerAccount) under another id as a duplicate', async () => {
  const accountId = uniqueAccount('watch-duplicate');
  const rogue = await startUnserved(`rogue-${accountId}`, accountId);
  try {
    // Visibility follows a start by a moment.
    const c = await eventually(() => check(accountId), (c) => kinds(c).includes('duplicate'));
    expect(kinds(c)).toEqual(['duplicate', 'missing']);
    expect(messages(c)).toContain(`${accountId}: 1 other workflow(s) run as its guard (rogue-${accountId}); only guard-${accountId} may act`);
  } finally {
    await rogue.terminate('watchdog test');
  }
});

describe('a wedged guard', () => {
  it('whose workflow tasks fail (a bad deploy that throws a TypeError) has a failing task and does not answer', async () => {
    const accountId = uniqueAccount('watch-broken');
    const taskQueue = `watchdog-broken-${randomBytes(4).toString('hex')}`;
    const connection = await NativeConnection.connect({ address: h.address });
    try {
      const worker = await Worker.create({ connection, taskQueue, workflowsPath: require.resolve('./fixtures/broken-guard-workflow') });
      await worker.runUntil(async () => {
        const handle = await h.client.workflow.start('accountGuard', { workflowId: guardWorkflowId(accountId), taskQueue, args: [] });
        try {
          const c = await eventually(() => check(accountId), (c) => kinds(c).includes('failing-task'));
          expect(kinds(c)).toEqual(['failing-task', 'wedged']);
          expect(c.observation.execution).toMatchObject({ status: 'RUNNING', taskQueue });
          expect(messages(c)).toContain(`${accountId}: guard's workflow task has failed`);
          expect(messages(c)).toContain(`${accountId}: guard guard-${accountId} is running but its state query`);
        } finally {
          await handle.terminate('watchdog test');
        }
      });
    } finally {
      await connection.close();
    }
  });

  it('that no worker serves does not answer its query within the timeout', async () => {
    const accountId = uniqueAccount('watch-unserved');
    const handle = await startUnserved(guardWorkflowId(accountId), accountId);
    try {
      const c = await check(accountId, 1_000);
      expect(kinds(c)).toEqual(['wedged']);
      expect(c.observation.query).toEqual({ kind: 'failed', timedOut: true, error: 'no answer within 1000 ms' });
      expect(messages(c)).toContain(`${accountId}: guard guard-${accountId} is running but its state query did not answer`);
    } finally {
      await handle.terminate('watchdog test');
    }
  });
});

describe('alerts', () => {
  let server: http.Server;
  const received: { key: string | undefined; alert: WatchdogAlert }[] = [];
  let url: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push({ key: req.headers['idempotency-key'] as string | undefined, alert: JSON.parse(body) as WatchdogAlert });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('posts a finding once per ongoing problem, and a restarted watchdog sends the same idempotency key', async () => {
    const accountId = uniqueAccount('watch-alert');
    const handle = await startUnserved(guardWorkflowId(accountId), accountId);
    await handle.terminate('watchdog test');
    const lines: string[] = [];
    const watch = () => runWatchdog({ client: h.client, accounts: () => [accountId], alertWebhookUrl: url, intervalSeconds: 1, rounds: 2, print: (l) => lines.push(l) });

    await watch();
    // Two rounds, both printed; one alert.
    expect(lines.filter((l) => l.includes('NOT-RUNNING') && l.includes(`${accountId}: guard terminated at`))).toHaveLength(2);
    expect(received).toHaveLength(1);
    const [first] = received;
    expect(first!.key).toBe(first!.alert.id);
    expect(first!.alert).toMatchObject({ source: 'watchdog', kind: 'not-running', accountId });

    await watch();
    expect(received).toHaveLength(2);
    expect(received[1]!.key).toBe(first!.key);
  });

  it('refuses a webhook that is neither HTTPS nor loopback before checking anything', async () => {
    await expect(runWatchdog({ client: h.client, accounts: () => ['acct-1'], alertWebhookUrl: 'http://example.com/hook', rounds: 1, print: () => undefined })).rejects.toThrow(
      'ALERT_WEBHOOK_URL: must be https',
    );
  });

  it('keeps watching when Temporal cannot be reached: the failed check is itself a finding, and alerted', async () => {
    const accountId = uniqueAccount('watch-unreachable');
    let attempts = 0;
    const checks = await runWatchdog({
      client: async () => {
        attempts += 1;
        throw new Error('connect ECONNREFUSED 127.0.0.1:1');
      },
      accounts: () => [accountId],
      alertWebhookUrl: url,
      intervalSeconds: 1,
      rounds: 2,
      print: () => undefined,
    });
    expect(attempts).toBe(2);
    expect(checks[0]!.findings).toEqual([expect.objectContaining({ kind: 'unchecked', message: `could not check ${accountId}: cannot connect to Temporal: connect ECONNREFUSED 127.0.0.1:1` })]);
    expect(received.filter((r) => r.alert.accountId === accountId).map((r) => r.alert.kind)).toEqual(['unchecked']);
  });
});

it('reports a guard that cannot read its venues as blind once its last valuation is older than its staleness limit', async () => {
  const accountId = uniqueAccount('watch-blind');
  // Valued every second, stale after 4 s; no watcher, so that the guard's own reads are its only source.
  const handle = await h.breaker.startGuard({
    accountId,
    initialCapital: '10000',
    venues: [SPOT, PERP],
    valuationIntervalSeconds: 1,
    watch: { enabled: false },
    blindPolicy: { staleAfterSeconds: 4 },
  });
  try {
    await eventually(() => check(accountId), (c) => kinds(c).join() === 'ok' && c.observation.query.kind === 'answered' && c.observation.query.lastValuationAt !== null);
    // Every venue request now fails (HTTP 503), so no valuation completes.
    h.paper.faults.add({ endpoint: '*', kind: 'http5xx' });
    // (The guard may call itself blind a moment before its last valuation passes the limit: wait for the watchdog's own finding.)
    const c = await eventually(() => check(accountId), (c) => c.findings.some((f) => f.kind === 'blind' && f.message.includes('has not valued')));
    expect(kinds(c)).toEqual(['blind']);
    expect(messages(c)).toMatch(new RegExp(`^${accountId}: guard has not valued the account since \\S+ \\(\\d+ s ago\\), beyond its 4 s staleness limit`));
  } finally {
    h.paper.faults.clear();
    await handle.terminate('watchdog test');
  }
});
