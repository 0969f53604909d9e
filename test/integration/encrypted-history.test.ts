/**
 * Encrypted history: a guard worker and a client with the encryption codec work as usual, while the server's
 * history holds only ciphertext (what a client without the key reads); the codec server turns that ciphertext back
 * into plaintext for those who hold its token; a plaintext signal from a client without the key is recorded as
 * rejected by the guard, without failing a workflow task.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { METADATA_ENCODING_KEY, defaultPayloadConverter } from '@temporalio/common';
import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import { balanceReportSignal, guardWorkflowId } from '../../src/api/contract';
import { BreakerClient } from '../../src/client';
import { parseCodecKeys, payloadCodecsFromEnv } from '../../src/codec/encryption';
import { RunningCodecServer, payloadFromJson, payloadToJson, startCodecServer } from '../../src/codec/server';
import { VenueClient, createVenueClient } from '../../src/exchanges/ccxt-factory';
import { createGuardWorker } from '../../src/worker-factory';
import { rehearsal } from '../../tooling/rehearsal-trust';
import { startPaperServer, PaperServer } from '../../tooling/paper/server';
import { PERP_VENUE as PERP, SPOT_VENUE as SPOT } from '../../tooling/seed-scenario';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';
import { eventually, uniqueAccount } from './harness';

const KEYS = `k1:${randomBytes(32).toString('base64')}`;
const TOKEN = randomBytes(16).toString('hex');
const UI_ORIGIN = 'http://localhost:8233';
/** Figures distinctive enough to be found if they leaked into history in plaintext. */
const CAPITAL = '12345.67';
const SPOT_USDT = '7654.32';
const SIGNALLED_USDT = '7654.31';

let paper: PaperServer;
let native: NativeConnection;
let worker: Worker;
let running: Promise<void>;
let connection: Connection;
/** A bot or operator holding the key. */
let breaker: BreakerClient;
/** Anyone who can read the server but holds no key. */
let plain: Client;
let codecServer: RunningCodecServer;
let venues: Map<string, VenueClient>;

beforeAll(async () => {
  const credentials = { apiKey: randomBytes(16).toString('hex'), secret: randomBytes(32).toString('hex') };
  paper = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed({ spotBalances: { USDT: '7000' }, futuresBalances: { USDT: '5000' } });
  const spec = (id: string, exchange: 'binance' | 'binanceusdm') => ({ id, exchange, routeTo: paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS });
  venues = new Map([createVenueClient(spec(SPOT, 'binance'), credentials), createVenueClient(spec(PERP, 'binanceusdm'), credentials)].map((v) => [v.id, v]));
  const taskQueue = `encrypted-${randomBytes(4).toString('hex')}`;
  const address = process.env.TEST_TEMPORAL_ADDRESS!;
  native = await NativeConnection.connect({ address });
  const trust = rehearsal();
  worker = await createGuardWorker({
    connection: native,
    venues,
    taskQueue,
    workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
    payloadCodecs: payloadCodecsFromEnv({ BREAKER_CODEC_KEYS: KEYS }),
    trust: trust.anchor,
    auditDir: trust.auditDir,
  });
  running = worker.run();
  connection = await Connection.connect({ address });
  breaker = new BreakerClient(new Client({ connection, dataConverter: { payloadCodecs: payloadCodecsFromEnv({ BREAKER_CODEC_KEYS: KEYS }, { onRefused: 'throw' }) } }), taskQueue);
  plain = new Client({ connection });
  codecServer = await startCodecServer({ keys: parseCodecKeys(KEYS, 'test keys'), port: 0, token: TOKEN, corsOrigin: UI_ORIGIN });
});

afterAll(async () => {
  await codecServer?.close();
  worker?.shutdown();
  await running;
  await connection?.close();
  await native?.close();
  // The watchers' WebSocket connections would keep the process alive.
  await Promise.all([...venues.values()].map((v) => v.exchange.close()));
  await paper?.close();
});

type History = temporal.api.history.v1.IHistory;

/**
 * Every payload of a history with where it was found, except search attributes (indexed, never encoded) and headers
 * (the SDK does not encode them; this project puts nothing in them).
 */
function payloadsOf(history: History): { path: string; payload: Payload }[] {
  const found: { path: string; payload: Payload }[] = [];
  const walk = (value: unknown, path: string) => {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
    const v = value as Record<string, unknown>;
    const metadata = v.metadata as Record<string, unknown> | undefined;
    if (metadata && typeof metadata === 'object' && metadata[METADATA_ENCODING_KEY] instanceof Uint8Array) {
      found.push({ path, payload: v as Payload });
      return;
    }
    for (const [k, child] of Object.entries(v)) if (k !== 'searchAttributes' && k !== 'header') walk(child, `${path}.${k}`);
  };
  (history.events ?? []).forEach((e, i) => walk(e, `events[${i}]`));
  return found;
}

const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');

async function postCodec(path: string, body: unknown, headers: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }): Promise<Response> {
  return fetch(`${codecServer.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', ...headers }, body: JSON.stringify(body) });
}

describe('a guard with encrypted history', () => {
  const accountId = uniqueAccount('encrypted');
  let history: History;

  beforeAll(async () => {
    await breaker.startGuard({ accountId, initialCapital: CAPITAL, venues: [SPOT, PERP] });
    // The start-up read: activity inputs and results in history.
    await eventually(() => breaker.state(accountId), (s) => s.lastValuationAt !== null);
    expect((await breaker.report(accountId, { venue: SPOT, seq: 1, balances: { USDT: SPOT_USDT } })).outcome).toBe('accepted');
    await breaker.signalReport(accountId, { venue: SPOT, seq: 2, balances: { USDT: SIGNALLED_USDT } });
    await eventually(() => breaker.state(accountId), (s) => s.lastSeq[SPOT] === 2);
    history = await plain.workflow.getHandle(guardWorkflowId(accountId)).fetchHistory();
  });

  it('works as usual through a client with the codec', async () => {
    const state = await breaker.state(accountId);
    expect(state).toMatchObject({ state: 'Active', lastSeq: { [SPOT]: 2 }, counters: { reportsAccepted: 2, reportsRejected: 0 } });
    expect(state.initialCapital).toBe(CAPITAL);
  });

  it('leaves only ciphertext in the server: input, signal, update and activity payloads', () => {
    const payloads = payloadsOf(history);
    const at = (kind: string) => payloads.filter((p) => p.path.includes(kind));
    // Each kind of payload is there: the test cannot pass on a history that holds none.
    for (const kind of ['workflowExecutionStartedEventAttributes.input', 'workflowExecutionSignaledEventAttributes.input', 'workflowExecutionUpdateAcceptedEventAttributes', 'activityTaskScheduledEventAttributes.input', 'activityTaskCompletedEventAttributes.result']) {
      expect([kind, at(kind).length > 0]).toEqual([kind, true]);
    }
    for (const { path, payload } of payloads) {
      // Core writes the marker of workflow.patched() itself, past the codec: it holds the patch id, nothing else.
      if (path.includes('markerRecordedEventAttributes.details.patch-data')) continue;
      expect([path, text(payload.metadata![METADATA_ENCODING_KEY]), text(payload.metadata!['encryption-key-id'])]).toEqual([path, 'binary/encrypted', 'k1']);
    }
    // Nowhere in the history's bytes (payloads or anything else): capital, balances, venue names.
    const raw = Buffer.from(temporal.api.history.v1.History.encode(history).finish()).toString('latin1');
    for (const secret of [CAPITAL, SPOT_USDT, SIGNALLED_USDT, SPOT, PERP]) expect([secret, raw.includes(secret)]).toEqual([secret, false]);
    // What stays visible: the workflow id (and so the account id) and the workflow type.
    expect(raw).toContain(guardWorkflowId(accountId));
    expect(raw).toContain('accountGuard');
  });

  it('a client without the key reads nothing: its query answer is ciphertext it cannot decode', async () => {
    await expect(plain.workflow.getHandle(guardWorkflowId(accountId)).query('state')).rejects.toThrow(/binary\/encrypted/);
  });

  it('the codec server decodes those payloads for a holder of its token', async () => {
    const started = payloadsOf(history).find((p) => p.path.includes('workflowExecutionStartedEventAttributes.input'))!.payload;
    // The bot's signal (the watcher signals its observations too).
    const signalled = (history.events ?? []).find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === balanceReportSignal.name)!
      .workflowExecutionSignaledEventAttributes!.input!.payloads![0]!;
    const response = await postCodec('/decode', { payloads: [started, signalled].map(payloadToJson) });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { payloads: unknown[] };
    const decoded = body.payloads.map((p, i) => payloadFromJson(p, i));
    expect(decoded.map((p) => text(p.metadata![METADATA_ENCODING_KEY]))).toEqual(['json/plain', 'json/plain']);
    expect(defaultPayloadConverter.fromPayload(decoded[0]!)).toMatchObject({ config: { accountId, initialCapital: CAPITAL, venues: [SPOT, PERP] } });
    expect(defaultPayloadConverter.fromPayload(decoded[1]!)).toEqual({ venue: SPOT, seq: 2, balances: { USDT: SIGNALLED_USDT } });
    // The namespace-prefixed path the CLI's endpoint template produces works too.
    expect((await postCodec('/default/decode', { payloads: [payloadToJson(started)] })).status).toBe(200);
  });

  it('the codec server refuses requests without the token, and answers the Web UI origin\'s preflight', async () => {
    const started = payloadsOf(history)[0]!.payload;
    const missing = await postCodec('/decode', { payloads: [payloadToJson(started)] }, {});
    expect(missing.status).toBe(401);
    expect(await missing.text()).not.toContain(CAPITAL);
    expect((await postCodec('/decode', { payloads: [] }, { Authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await postCodec('/encode', { payloads: [] }, { Authorization: 'Basic abc' })).status).toBe(401);
    const preflight = await fetch(`${codecServer.url}/decode`, { method: 'OPTIONS', headers: { Origin: UI_ORIGIN, 'Access-Control-Request-Method': 'POST' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/);
    const otherOrigin = await fetch(`${codecServer.url}/decode`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example' } });
    expect(otherOrigin.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('the codec server encodes what the CLI or Web UI sends, and the worker accepts it', async () => {
    const report = defaultPayloadConverter.toPayload({ venue: SPOT, seq: 3, balances: { USDT: '7000' } });
    const response = await postCodec('/encode', { payloads: [payloadToJson(report)] });
    expect(response.status).toBe(200);
    const [encoded] = ((await response.json()) as { payloads: unknown[] }).payloads.map((p, i) => payloadFromJson(p, i));
    expect(text(encoded!.metadata![METADATA_ENCODING_KEY])).toBe('binary/encrypted');
    // Sent as it is (already encoded) by a client without a codec: what `temporal workflow signal --codec-endpoint` does.
    await plain.workflowService.signalWorkflowExecution({
      namespace: 'default',
      workflowExecution: { workflowId: guardWorkflowId(accountId) },
      signalName: balanceReportSignal.name,
      input: { payloads: [encoded!] },
      identity: 'codec-server-test',
    });
    await eventually(() => breaker.state(accountId), (s) => s.lastSeq[SPOT] === 3);
  });
});

describe('the temporal CLI through the codec server', () => {
  const run = promisify(execFile);
  const temporalCli = async (...args: string[]) =>
    (await run(process.env.TEST_TEMPORAL_CLI!, [...args, '--address', process.env.TEST_TEMPORAL_ADDRESS!, '--codec-endpoint', codecServer.url, '--codec-auth', `Bearer ${TOKEN}`], { timeout: 30_000 })).stdout;

  it('signals a guard and reads its state, encrypted both ways', async () => {
    const accountId = uniqueAccount('enccli');
    await breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    await eventually(() => breaker.state(accountId), (s) => s.lastValuationAt !== null);
    await temporalCli('workflow', 'signal', '--workflow-id', guardWorkflowId(accountId), '--name', 'balanceReport', '--input', JSON.stringify({ venue: SPOT, seq: 1, balances: { USDT: '6999' } }));
    const state = await eventually(
      async () => JSON.parse(await temporalCli('workflow', 'query', '--workflow-id', guardWorkflowId(accountId), '--type', 'state', '--output', 'json')),
      (out) => out.queryResult?.[0]?.lastSeq?.[SPOT] === 1,
    );
    expect(state.queryResult[0]).toMatchObject({ accountId, state: 'Active', counters: { reportsRejected: 0 } });
    // The signal went through the codec server's /encode: what the server stores is ciphertext.
    const history = await plain.workflow.getHandle(guardWorkflowId(accountId)).fetchHistory();
    const signal = (history.events ?? []).find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === balanceReportSignal.name)!;
    expect(text(signal.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!.metadata![METADATA_ENCODING_KEY])).toBe('binary/encrypted');
  });
});

describe('a client without the key', () => {
  it('has its plaintext signal recorded as rejected, and its update refused, without failing a workflow task', async () => {
    const accountId = uniqueAccount('plaintext');
    await breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT, PERP] });
    const rogue = plain.workflow.getHandle(guardWorkflowId(accountId));
    await rogue.signal(balanceReportSignal, { venue: SPOT, seq: 1, balances: { USDT: '1' } });
    const state = await eventually(() => breaker.state(accountId), (s) => s.counters.reportsRejected === 1);
    expect(state.lastSeq[SPOT] ?? null).toBeNull();
    const rejected = (await breaker.events(accountId)).filter((e) => e.type === 'ReportRejected');
    expect(rejected).toEqual([expect.objectContaining({ error: expect.stringContaining("refused by the payload codec: not encrypted with this deployment's key") })]);
    const update = rogue.executeUpdate('reportBalances', { args: [{ venue: SPOT, seq: 2, balances: { USDT: '1' } }] });
    await expect(update).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    await expect(update).rejects.toMatchObject({ cause: { type: 'InvalidReport', message: expect.stringContaining('not encrypted with this deployment') } });
    const types = ((await rogue.fetchHistory()).events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
    expect(types).toContain('EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED');
    expect(types).not.toContain('EVENT_TYPE_WORKFLOW_TASK_FAILED');
    expect((await breaker.state(accountId)).state).toBe('Active');
  });
});
