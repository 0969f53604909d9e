/**
 * `npm run paper` as a user runs it: a child process that prints its URL, credentials and the worker's venue
 * configuration; real ccxt clients built from exactly what it printed sign requests to it; SIGTERM closes it.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ccxt from 'ccxt';
import { createVenueClient } from '../../src/exchanges/ccxt-factory';
import { credentialsFor, loadVenueSpecs } from '../../src/exchanges/venues';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';

const ROOT = path.resolve(__dirname, '../..');
const MAIN = 'tooling/paper/main.ts';

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `node --import tsx tooling/paper/main.ts ...args` and waits until it has printed everything. */
async function startPaper(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`paper did not start in 60 s:\n${stdout}\n${stderr}`)), 60_000);
    const check = () => {
      if (stdout.includes('Ctrl-C stops it.')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`paper exited (${code}) before it was ready:\n${stdout}\n${stderr}`));
    });
  });
  await ready;
  return { child, output: () => stdout, exited };
}

/** What a user copies from the output: the URL, and the worker's environment from the `export` lines. */
function printed(output: string): { url: string; env: Record<string, string> } {
  const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
  if (!url) throw new Error(`no URL in:\n${output}`);
  const env: Record<string, string> = {};
  for (const [, name, value] of output.matchAll(/^\s*export (\w+)=(.*)$/gm)) {
    env[name!] = value!.startsWith("'") ? value!.slice(1, -1).replace(/'\\''/g, "'") : value!;
  }
  return { url, env };
}

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await r.exited;
  }
});

describe('npm run paper (tooling/paper/main.ts)', () => {
  it('prints a URL on a free loopback port, generated credentials and a BREAKER_VENUES that real ccxt clients can use; SIGTERM closes it', async () => {
    const paper = await startPaper(['--port', '0']);
    running.push(paper);
    const { url, env } = printed(paper.output());
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(url).port)).toBeGreaterThan(0);
    expect(env.PAPER_API_KEY).toMatch(/^[0-9a-f]{32}$/);
    expect(env.PAPER_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(paper.output()).toContain(`API key:    ${env.PAPER_API_KEY}`);
    expect(paper.output()).toContain(`BREAKER_VENUES=${env.BREAKER_VENUES}`);

    // Exactly what a worker does with that environment (src/worker.ts).
    const specs = loadVenueSpecs(env);
    expect(specs.map((s) => [s.id, s.exchange, s.routeTo])).toEqual([
      ['binance-spot', 'binance', url],
      ['binance-usdm', 'binanceusdm', url],
    ]);
    const [spot, perp] = specs.map((spec) => createVenueClient({ ...spec, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentialsFor(spec, env)));
    // Signed requests (GET /api/v3/account, GET /fapi/v3/account) through ccxt's real binance classes.
    const spotBalance = await spot!.exchange.fetchBalance();
    expect(String(spotBalance['USDT']?.total)).toBe('4000');
    expect(String(spotBalance['BTC']?.total)).toBe('0.1');
    const perpBalances = await perp!.books.balances();
    expect(Object.keys(perpBalances)).toEqual(['USDT']);
    expect(perpBalances.USDT!.toFixed()).toBe('2000');
    // A wrong secret is refused like the real venue refuses it.
    const forged = createVenueClient({ ...specs[0]!, rateLimitMs: PAPER_RATE_LIMIT_MS }, { apiKey: env.PAPER_API_KEY!, secret: 'not-the-secret' });
    await expect(forged.exchange.fetchBalance()).rejects.toBeInstanceOf(ccxt.AuthenticationError);

    paper.child.kill('SIGTERM');
    expect(await paper.exited).toBe(0);
    expect(paper.output()).toContain('SIGTERM: closing the paper exchange');
    await expect(fetch(`${url}/api/v3/ping`)).rejects.toThrow();
  });

  it('takes the credentials and a seed file from the command line', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'paper-main-'));
    try {
      const seedFile = path.join(dir, 'seed.json');
      writeFileSync(seedFile, JSON.stringify({ markets: [{ base: 'XYZ', quote: 'BTC', price: '0.0005' }], spotBalances: { USDT: '100', XYZ: '1000', LDBTC: '0.01' } }));
      const paper = await startPaper(['--port', '0', '--api-key', 'rehearsal-key', '--secret', 'rehearsal-secret', '--seed', seedFile]);
      running.push(paper);
      const { url, env } = printed(paper.output());
      expect(env).toMatchObject({ PAPER_API_KEY: 'rehearsal-key', PAPER_SECRET: 'rehearsal-secret' });
      const spec = loadVenueSpecs(env)[0]!;
      const spot = createVenueClient({ ...spec, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentialsFor(spec, env));
      await spot.exchange.loadMarkets();
      expect(spot.exchange.markets!['XYZ/BTC']).toMatchObject({ base: 'XYZ', quote: 'BTC', spot: true });
      expect(spot.exchange.markets!['XYZ/USDT']).toBeUndefined();
      expect(await spot.books.balances()).toEqual({ USDT: expect.anything(), XYZ: expect.anything(), LDBTC: expect.anything() });
      // Only the seed: none of the demo account's BTC or orders.
      const state = (await (await fetch(`${url}/control/state`)).json()) as { openOrders: { total: number } };
      expect(state.openOrders.total).toBe(0);
      paper.child.kill('SIGINT');
      expect(await paper.exited).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a seed it cannot use, and exits 1 with the reason', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'paper-main-'));
    try {
      const seedFile = path.join(dir, 'seed.json');
      writeFileSync(seedFile, JSON.stringify({ spotBalances: { BTC: 0.1 } }));
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--port', '0', '--seed', seedFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toContain('seed rejected');
      expect(stderr).toContain('not a decimal string');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
