/**
 * Issue 8: venue errors by Binance's own code, and time. The activities through real ccxt `binance` and
 * `binanceusdm` classes against the paper exchange, which now refuses timestamps and keys as Binance does.
 * Before this issue: a key revoked after a successful read was ccxt's DDoSProtection (retried as VenueUnavailable);
 * a worker 5 s fast failed every signed call on Binance (and the paper exchange did not notice: it checked
 * |now - timestamp| <= recvWindow); -1021 was retried for ever; 451 and 403 were retried as outages.
 */
import { createHmac } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, LogEntry } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import { VenueFailureType } from '../../src/api/failures';
import { TEST_CREDENTIALS, paperVenueClients } from './paper-fixture';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import { seedPaperAccount } from '../../tooling/seed-scenario';

const credentials = TEST_CREDENTIALS;
let paper: PaperServer;
beforeEach(async () => {
  paper = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed(seedPaperAccount());
});
afterEach(async () => {
  await paper.close();
});

const logs: LogEntry[] = [];
function activityEnv() {
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('INFO', (entry) => logs.push(entry)) });
  return { run: <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => env.run(fn, ...args) as Promise<R> };
}

function activities() {
  return createActivities({ venues: paperVenueClients(paper.url, credentials) });
}

const control = async (path: string, body: unknown) => {
  const res = await fetch(`${paper.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  return res.json() as Promise<Record<string, unknown>>;
};

describe('a key whose permissions change after it worked', () => {
  it.each(['spot', 'perp'])('revoked after a successful read: %s cancel fails as non-retryable VenueAuthFailed, not an outage', async (venue) => {
    const acts = activities();
    await activityEnv().run(acts.readVenue, venue, 'USDT');
    await control('/control/keys', { apiKey: credentials.apiKey, status: 'revoked' });
    const cancel = activityEnv().run(acts.cancelAllOpenOrders, venue);
    await expect(cancel).rejects.toMatchObject({ type: VenueFailureType.AuthFailed, nonRetryable: true, message: expect.stringContaining('(Binance -2015)') });
    await expect(activityEnv().run(acts.readVenue, venue, 'USDT')).rejects.toMatchObject({ type: VenueFailureType.AuthFailed, nonRetryable: true });
  });

  it('read-only: reads still work, the emergency cancel fails as non-retryable VenueAuthFailed; restored, it cancels', async () => {
    const acts = activities();
    await control('/control/keys', { apiKey: credentials.apiKey, status: 'readOnly' });
    expect((await activityEnv().run(acts.readVenue, 'spot', 'USDT')).balances).toEqual({ USDT: '4000', BTC: '0.1' });
    await expect(activityEnv().run(acts.cancelAllOpenOrders, 'spot')).rejects.toMatchObject({ type: VenueFailureType.AuthFailed, nonRetryable: true });
    expect(paper.exchange.snapshot().openOrders.total).toBe(7);
    await control('/control/keys', { apiKey: credentials.apiKey, status: 'ok' });
    expect(await activityEnv().run(acts.cancelAllOpenOrders, 'spot')).toEqual({ venue: 'spot', cancelled: 3, openAfter: 0 });
  });
});

describe('time: the worker signs with the venue clock', () => {
  it('paper clock 5 s behind the worker (worker 5 s fast): reads and cancels succeed after the sync, offset logged', async () => {
    await control('/control/clock', { offsetMs: -5_000 });
    const acts = activities();
    logs.length = 0;
    expect((await activityEnv().run(acts.readVenue, 'spot', 'USDT')).balances).toEqual({ USDT: '4000', BTC: '0.1' });
    expect((await activityEnv().run(acts.readVenue, 'perp', 'USDT')).balances).toEqual({ USDT: '2000' });
    expect(await activityEnv().run(acts.cancelAllOpenOrders, 'spot')).toMatchObject({ cancelled: 3, openAfter: 0 });
    expect(await activityEnv().run(acts.cancelAllOpenOrders, 'perp')).toMatchObject({ cancelled: 4, openAfter: 0 });
    const synced = logs.filter((l) => l.message.includes('clock synchronised'));
    expect(synced.map((l) => l.meta?.venue)).toEqual(['spot', 'perp']);
    expect(synced.every((l) => Math.abs(Number(l.meta?.clockOffsetMs) - 5_000) < 1_000)).toBe(true);
    expect(logs.map((l) => `${l.message} ${JSON.stringify(l.meta ?? {}, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`).join('\n')).not.toMatch(new RegExp(`${credentials.secret}|${credentials.apiKey}`));
  });

  it('the clock moves after the first sync: the -1021 is followed by one resync and the cancel retried once', async () => {
    const acts = activities();
    await activityEnv().run(acts.readVenue, 'perp', 'USDT'); // synced at offset 0
    await control('/control/clock', { offsetMs: -3_000 });
    const timeRequests = paper.requests.get('GET /fapi/v1/time') ?? 0;
    expect(await activityEnv().run(acts.cancelAllOpenOrders, 'perp')).toEqual({ venue: 'perp', cancelled: 4, openAfter: 0 });
    expect((paper.requests.get('GET /fapi/v1/time') ?? 0) - timeRequests).toBe(1);
  });

  it('a refusal that persists after the resync is a non-retryable VenueClockSkew (reads and cancels)', async () => {
    const acts = activities();
    paper.faults.add({ endpoint: 'GET /api/v3/account', kind: 'timestamp' });
    await expect(activityEnv().run(acts.readVenue, 'spot', 'USDT')).rejects.toMatchObject({ type: VenueFailureType.ClockSkew, nonRetryable: true });
    // Tried once, resynchronised, tried once more: not retried for ever.
    expect(paper.faults.applied.length).toBe(2);
    paper.faults.add({ endpoint: 'DELETE /fapi/v1/allOpenOrders', kind: 'timestamp' });
    await expect(activityEnv().run(acts.cancelAllOpenOrders, 'perp')).rejects.toMatchObject({ type: VenueFailureType.ClockSkew, nonRetryable: true });
  });
});

describe('the venue refuses to serve this worker', () => {
  it.each([
    ['http451', 'restricted location'],
    ['http403', "blocked by the venue's WAF"],
  ] as const)('%s: reads and cancels fail as non-retryable VenueRefused (%s)', async (kind, words) => {
    const acts = activities();
    paper.faults.add({ endpoint: '/api/v3', kind });
    await expect(activityEnv().run(acts.readVenue, 'spot', 'USDT')).rejects.toMatchObject({ type: VenueFailureType.Refused, nonRetryable: true, message: expect.stringContaining(words) });
    paper.faults.add({ endpoint: '/fapi', kind });
    await expect(activityEnv().run(acts.cancelAllOpenOrders, 'perp')).rejects.toMatchObject({ type: VenueFailureType.Refused, nonRetryable: true });
  });
});

describe('paper exchange: Binance timing security', () => {
  const sign = (query: string) => createHmac('sha256', credentials.secret).update(query).digest('hex');
  const account = async (timestamp: number, recvWindow: number) => {
    const query = `timestamp=${timestamp}&recvWindow=${recvWindow}`;
    const res = await fetch(`${paper.url}/api/v3/account?${query}&signature=${sign(query)}`, { headers: { 'X-MBX-APIKEY': credentials.apiKey } });
    return { status: res.status, code: ((await res.json()) as { code?: number }).code };
  };
  const serverTime = async (path: string) => ((await (await fetch(`${paper.url}${path}`)).json()) as { serverTime: number }).serverTime;

  it('serves /api/v3/time and /fapi/v1/time on its own clock', async () => {
    await control('/control/clock', { offsetMs: -5_000 });
    for (const path of ['/api/v3/time', '/fapi/v1/time']) {
      expect(Math.abs(Date.now() - 5_000 - (await serverTime(path)))).toBeLessThan(500);
    }
  });

  it('refuses a timestamp 1000 ms or more ahead whatever the recvWindow, accepts one behind within the recvWindow', async () => {
    const now = await serverTime('/api/v3/time');
    expect(await account(now + 1_500, 60_000)).toEqual({ status: 400, code: -1021 });
    expect(await account(now + 300, 5_000)).toMatchObject({ status: 200 });
    expect(await account(now - 4_000, 5_000)).toMatchObject({ status: 200 });
    expect(await account(now - 7_000, 5_000)).toEqual({ status: 400, code: -1021 });
    expect(await account(now - 7_000, 10_000)).toMatchObject({ status: 200 });
    expect(await account(now, 60_001)).toEqual({ status: 400, code: -1131 });
  });

  it('refuses bad control requests', async () => {
    const post = (path: string, body: unknown) => fetch(`${paper.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post('/control/clock', { offsetMs: '5s' })).status).toBe(400);
    expect((await post('/control/keys', { apiKey: 'nobody', status: 'revoked' })).status).toBe(404);
    expect((await post('/control/keys', { apiKey: credentials.apiKey, status: 'banned' })).status).toBe(400);
  });
});
