/**
 * The encryption codec: round trip, rotation, and what it does with payloads it will not decrypt (it never throws in
 * a worker: the guard's converter turns its refusal into an UndecodablePayload with the reason).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { METADATA_ENCODING_KEY, defaultPayloadConverter } from '@temporalio/common';
import type { Payload } from '@temporalio/common';
import { GuardPayloadConverter } from '../../src/api/payload-converter';
import { UndecodablePayload } from '../../src/api/undecodable';
import {
  CodecKeyError,
  EncryptionCodec,
  PayloadRefusedError,
  codecKeysFromEnv,
  parseCodecKeys,
  payloadCodecsFromEnv,
} from '../../src/codec/encryption';
import { RunningCodecServer, payloadToJson, startCodecServer } from '../../src/codec/server';

const key = () => randomBytes(32).toString('base64');
const K1 = key();
const K2 = key();
const report = { venue: 'binance-spot', seq: 7, balances: { USDT: '9650.00', BTC: '0.125' } };
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');
const converter = new GuardPayloadConverter();

function codec(keys: string, onRefused?: 'replace' | 'throw'): EncryptionCodec {
  return new EncryptionCodec(parseCodecKeys(keys, 'BREAKER_CODEC_KEYS'), { onRefused });
}

/** What the guard's converter makes of one payload after the worker's codec decoded it. */
async function throughWorker(c: EncryptionCodec, payload: Payload): Promise<unknown> {
  const [decoded] = await c.decode([payload]);
  return converter.fromPayload(decoded!);
}

describe('encryption codec', () => {
  it('round-trips a payload, metadata included, and the ciphertext does not contain the plaintext', async () => {
    const c = codec(`k1:${K1}`);
    const plain = defaultPayloadConverter.toPayload(report);
    const [encrypted] = await c.encode([plain]);
    expect(text(encrypted!.metadata![METADATA_ENCODING_KEY])).toBe('binary/encrypted');
    expect(text(encrypted!.metadata!['encryption-key-id'])).toBe('k1');
    // Only the codec's own metadata is visible: the inner encoding (json/plain) is encrypted too.
    expect(Object.keys(encrypted!.metadata!).sort()).toEqual(['encoding', 'encryption-key-id']);
    const raw = Buffer.from(encrypted!.data!).toString('latin1');
    for (const secret of ['9650.00', 'binance-spot', 'USDT', 'json/plain']) expect(raw).not.toContain(secret);
    const [decoded] = await c.decode([encrypted!]);
    expect(text(decoded!.metadata![METADATA_ENCODING_KEY])).toBe('json/plain');
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual(report);
  });

  it('uses a fresh IV for every payload: the same plaintext twice gives two ciphertexts', async () => {
    const c = codec(`k1:${K1}`);
    const plain = defaultPayloadConverter.toPayload(report);
    const [a, b] = await c.encode([plain, plain]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
    expect(Buffer.from(a!.data!.subarray(0, 12)).equals(Buffer.from(b!.data!.subarray(0, 12)))).toBe(false);
  });

  it('rotation: the new first key encrypts, the old one still decrypts', async () => {
    const before = codec(`k1:${K1}`);
    const after = codec(`k2:${K2},k1:${K1}`);
    const [old] = await before.encode([defaultPayloadConverter.toPayload(report)]);
    expect(await throughWorker(after, old!)).toEqual(report);
    const [fresh] = await after.encode([defaultPayloadConverter.toPayload(report)]);
    expect(text(fresh!.metadata!['encryption-key-id'])).toBe('k2');
    // A worker that has not received the new key yet refuses it, naming the id.
    const refused = await throughWorker(before, fresh!);
    expect(refused).toBeInstanceOf(UndecodablePayload);
    expect((refused as UndecodablePayload).error).toBe('refused by the payload codec: unknown key id k2');
  });

  it.each([
    ['a flipped ciphertext byte', (p: Payload) => ({ ...p, data: flip(p.data!, 20) })],
    ['a flipped IV byte', (p: Payload) => ({ ...p, data: flip(p.data!, 0) })],
    ['a flipped tag byte', (p: Payload) => ({ ...p, data: flip(p.data!, p.data!.length - 1) })],
    ['a truncated payload', (p: Payload) => ({ ...p, data: p.data!.subarray(0, 10) })],
    ['another key under the same id', async () => (await codec(`k1:${K2}`).encode([defaultPayloadConverter.toPayload(report)]))[0]!],
  ])('refuses %s with a refused payload, not a throw', async (_label, tamper) => {
    const c = codec(`k1:${K1}`);
    const [encrypted] = await c.encode([defaultPayloadConverter.toPayload(report)]);
    const tampered = await tamper(encrypted!);
    const [decoded] = await c.decode([tampered]);
    expect(text(decoded!.metadata![METADATA_ENCODING_KEY])).toBe('binary/refused');
    const value = converter.fromPayload(decoded!);
    expect(value).toBeInstanceOf(UndecodablePayload);
    expect((value as UndecodablePayload).error).toMatch(/^refused by the payload codec: .*key id k1/);
  });

  it('refuses a relabelled key id: the id is authenticated with the ciphertext', async () => {
    const c = codec(`k1:${K1},k2:${K1}`);
    const [encrypted] = await c.encode([defaultPayloadConverter.toPayload(report)]);
    const relabelled = { ...encrypted!, metadata: { ...encrypted!.metadata, 'encryption-key-id': Buffer.from('k2') } };
    expect((await throughWorker(c, relabelled)) as UndecodablePayload).toMatchObject({ error: expect.stringContaining('does not verify under key id k2') });
  });

  it('refuses a payload that is not encrypted while a codec is configured, saying so', async () => {
    const c = codec(`k1:${K1}`);
    const value = await throughWorker(c, defaultPayloadConverter.toPayload(report));
    expect(value).toBeInstanceOf(UndecodablePayload);
    expect((value as UndecodablePayload).error).toBe('refused by the payload codec: not encrypted with this deployment\'s key (encoding "json/plain")');
    // A sender cannot pass a refusal of its own off as the codec's either: it is not encrypted.
    const forged = { metadata: { encoding: Buffer.from('binary/refused'), 'refused-reason': Buffer.from('fine') }, data: new Uint8Array(0) };
    expect(await throughWorker(c, forged)).toMatchObject({ error: expect.stringContaining('not encrypted with this deployment\'s key (encoding "binary/refused")') });
  });

  it('refuses an unknown key id and hostile metadata without throwing, echoing little', async () => {
    const c = codec(`k1:${K1}`);
    const [encrypted] = await c.encode([defaultPayloadConverter.toPayload(report)]);
    const hostileId = Buffer.from(`\u0000evil\n${'x'.repeat(5000)}`);
    const cases: Payload[] = [
      { ...encrypted!, metadata: { ...encrypted!.metadata, 'encryption-key-id': hostileId } },
      { ...encrypted!, metadata: { encoding: encrypted!.metadata!.encoding! } },
      { metadata: {}, data: null },
      { metadata: null, data: null },
      { metadata: { encoding: Buffer.from([0xff, 0xfe]) }, data: Buffer.from('x') },
    ];
    const decoded = await c.decode(cases);
    expect(decoded.map((p) => text(p.metadata![METADATA_ENCODING_KEY]))).toEqual(cases.map(() => 'binary/refused'));
    const reasons = decoded.map((p) => (converter.fromPayload(p) as UndecodablePayload).error);
    expect(reasons[0]).toMatch(/^refused by the payload codec: unknown key id \?evil\?x+…$/);
    expect(reasons[1]).toContain('without encryption-key-id');
    expect(reasons[2]).toContain('not encrypted with this deployment\'s key (no encoding)');
    for (const r of reasons) expect(r.length).toBeLessThanOrEqual(200);
  });

  it('refuses an authentic ciphertext that is not a Temporal payload', async () => {
    const c = codec(`k1:${K1}`);
    const [encrypted] = await c.encode([defaultPayloadConverter.toPayload(report)]);
    // What a holder of the key could write in another format: bytes that verify but are no protobuf Payload (a
    // metadata field whose length runs past the end).
    const { createCipheriv } = await import('node:crypto');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', Buffer.from(K1, 'base64'), iv);
    cipher.setAAD(Buffer.from('k1'));
    const body = Buffer.concat([cipher.update(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])), cipher.final()]);
    const forged = { metadata: encrypted!.metadata, data: Buffer.concat([iv, body, cipher.getAuthTag()]) };
    expect(await throughWorker(c, forged)).toMatchObject({ error: expect.stringContaining('is not a Temporal payload') });
  });

  it('a client codec may throw a clear error instead', async () => {
    const c = codec(`k1:${K1}`, 'throw');
    const attempt = c.decode([defaultPayloadConverter.toPayload(report)]);
    await expect(attempt).rejects.toBeInstanceOf(PayloadRefusedError);
    await expect(attempt).rejects.toThrow("payload refused by the encryption codec: not encrypted with this deployment's key");
  });
});

function flip(data: Uint8Array, at: number): Uint8Array {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

describe('keys from the environment', () => {
  it('none configured: no codec', () => {
    expect(payloadCodecsFromEnv({})).toEqual([]);
    expect(payloadCodecsFromEnv({ BREAKER_CODEC_KEYS: ' ' })).toEqual([]);
  });

  it('the first key encrypts, all decrypt; from the variable or a file', async () => {
    const [c] = payloadCodecsFromEnv({ BREAKER_CODEC_KEYS: ` k2:${K2} , k1:${K1}` });
    expect((c as EncryptionCodec).primaryKeyId).toBe('k2');
    const dir = mkdtempSync(path.join(tmpdir(), 'codec-keys-'));
    try {
      const file = path.join(dir, 'keys');
      writeFileSync(file, `k2:${K2}\nk1:${K1}\n`);
      const keys = codecKeysFromEnv({ BREAKER_CODEC_KEYS_FILE: file });
      expect(keys?.primaryKeyId).toBe('k2');
      expect([...keys!.keys.keys()]).toEqual(['k2', 'k1']);
      expect(() => codecKeysFromEnv({ BREAKER_CODEC_KEYS_FILE: path.join(dir, 'missing') })).toThrow(/^BREAKER_CODEC_KEYS_FILE: cannot read .*missing \(ENOENT\)$/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  const short = randomBytes(16).toString('base64');
  it.each([
    ['wrong length', `k1:${short}`, /^BREAKER_CODEC_KEYS: entry 1 \(key id "k1"\): the key is 16 bytes, AES-256 needs 32/],
    ['duplicate id', `k1:${K1},k1:${K2}`, /^BREAKER_CODEC_KEYS: entry 2: key id "k1" appears twice$/],
    ['bad base64', `k1:${K1.slice(0, 20)}!!${K1.slice(22)}`, /^BREAKER_CODEC_KEYS: entry 1 \(key id "k1"\): the key is not valid base64$/],
    ['no colon', K1, /^BREAKER_CODEC_KEYS: entry 1 is not <keyId>:<base64 key>/],
    ['bad id', `k 1:${K1}`, /^BREAKER_CODEC_KEYS: entry 1 has an invalid key id/],
    ['empty key', 'k1:', /^BREAKER_CODEC_KEYS: entry 1 \(key id "k1"\): the key is not valid base64$/],
  ])('malformed (%s): an error naming the variable, never the key', (_label, value, message) => {
    let error: unknown;
    try {
      payloadCodecsFromEnv({ BREAKER_CODEC_KEYS: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CodecKeyError);
    expect((error as Error).message).toMatch(message);
    for (const k of [K1, K2, short]) expect((error as Error).message).not.toContain(k.slice(0, 16));
  });

  it('both the variable and the file set: refused', () => {
    expect(() => payloadCodecsFromEnv({ BREAKER_CODEC_KEYS: `k1:${K1}`, BREAKER_CODEC_KEYS_FILE: '/x' })).toThrow('set BREAKER_CODEC_KEYS or BREAKER_CODEC_KEYS_FILE, not both');
  });
});

describe('codec server requests', () => {
  let server: RunningCodecServer;
  beforeAll(async () => {
    server = await startCodecServer({ keys: parseCodecKeys(`k1:${K1}`, 'test'), port: 0, maxBodyBytes: 1024 });
  });
  afterAll(async () => {
    await server?.close();
  });
  const post = (path: string, body: string) => fetch(`${server.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });

  it('listens on loopback by default', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it.each([
    ['a body over the limit', '/decode', JSON.stringify({ payloads: [{ metadata: {}, data: 'A'.repeat(2048) }] }), 413],
    ['not JSON', '/decode', '{', 400],
    ['no object', '/decode', '[]', 400],
    ['payloads not a list', '/decode', '{"payloads": 1}', 400],
    ['data not base64', '/decode', '{"payloads": [{"metadata": {}, "data": "%%"}]}', 400],
    ['metadata value not base64', '/encode', '{"payloads": [{"metadata": {"encoding": "json/plain"}}]}', 400],
    ['an unknown path', '/decrypt', '{}', 404],
  ])('refuses %s', async (_label, path, body, status) => {
    const response = await post(path, body);
    expect(response.status).toBe(status);
    expect(await response.json()).toEqual({ error: expect.any(String) });
  });

  it('answers GET with 405, and an empty request with an empty list', async () => {
    expect((await fetch(`${server.url}/decode`)).status).toBe(405);
    const empty = await post('/decode', '{}');
    expect(empty.status).toBe(200);
    expect(await empty.json()).toEqual({ payloads: [] });
  });

  it('round-trips through /encode and /decode; returns what it cannot decrypt as it came', async () => {
    const plain = payloadToJson(defaultPayloadConverter.toPayload(report));
    const encoded = (await (await post('/encode', JSON.stringify({ payloads: [plain] }))).json()) as { payloads: unknown[] };
    const foreign = payloadToJson((await codec(`k9:${K2}`).encode([defaultPayloadConverter.toPayload(report)]))[0]!);
    const decoded = (await (await post('/decode', JSON.stringify({ payloads: [encoded.payloads[0], plain, foreign] }))).json()) as { payloads: unknown[] };
    expect(decoded.payloads).toEqual([plain, plain, foreign]);
  });
});
