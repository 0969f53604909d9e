/**
 * The signing core (src/domain/signing.ts) against independent references: Node's Buffer for base64, node:crypto's
 * Ed25519 for signatures (so the bytes are the standard ones any client library produces), and hand-written
 * expectations for canonical JSON.
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BOT_REPORT_DOMAIN,
  OPERATOR_ACTION_DOMAIN,
  OperatorActionToSign,
  botReportMessage,
  canonicalJson,
  fromBase64,
  isEd25519PublicKey,
  keyIdOf,
  newEd25519KeyPair,
  operatorActionMessage,
  publicKeyOf,
  signEd25519,
  toBase64,
  verifyEd25519,
} from '../../src/domain/signing';
import { TrustView, authenticateOperator, authenticateReport } from '../../src/domain/trust';
import { seededRandom } from '../../tooling/paper/faults';

/** The project's seeded generator (mulberry32), so that every run replays the same sequence. */
const rng = seededRandom(20261125);
const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));

describe('base64', () => {
  test('round trip against Buffer for every length 0..100 (random content, seeded)', () => {
    for (let length = 0; length <= 100; length++) {
      for (let sample = 0; sample < 5; sample++) {
        const bytes = randomBytes(length);
        const expected = Buffer.from(bytes).toString('base64');
        expect(toBase64(bytes)).toBe(expected);
        expect(fromBase64(expected)).toEqual(bytes);
      }
    }
  });

  test('every byte value in every position of a 3-byte group', () => {
    for (let v = 0; v < 256; v++) {
      for (const bytes of [[v], [0, v], [0, 0, v], [v, 255, v]]) {
        const b = Uint8Array.from(bytes);
        expect(toBase64(b)).toBe(Buffer.from(b).toString('base64'));
        expect(fromBase64(toBase64(b))).toEqual(b);
      }
    }
  });

  const refused: Array<[string, unknown]> = [
    ['missing padding', 'QQ'],
    ['missing one padding character', 'QUI'],
    ['too much padding', 'QQ==='],
    ['padding alone', '===='],
    ['padding in the middle', 'QQ==QUJD'],
    ['non-zero unused bits (QR== decodes to the same byte as QQ==)', 'QR=='],
    ['non-zero unused bits, one padding character', 'QUJ='],
    ['url-safe alphabet', 'a-_b'],
    ['whitespace', 'QUJD QUJD'],
    ['trailing newline', 'QUJD\n'],
    ['length not a multiple of 4', 'QUJDR'],
    ['non-ASCII', 'QUJ\u00e9'],
    ['over-long (1404 characters)', 'A'.repeat(1404)],
    ['a number', 1234],
    ['null', null],
    ['undefined', undefined],
    ['an object', { toString: () => 'QUJD' }],
    ['an array', ['QUJD']],
    ['a Uint8Array', new Uint8Array([1, 2, 3])],
  ];
  test.each(refused)('fromBase64 refuses %s, without throwing', (_label, input) => {
    expect(() => fromBase64(input)).not.toThrow();
    expect(fromBase64(input)).toBeUndefined();
  });

  test('the longest accepted input is 1400 characters (1050 bytes); the empty string is zero bytes', () => {
    expect(fromBase64('A'.repeat(1400))).toEqual(new Uint8Array(1050));
    expect(fromBase64('')).toEqual(new Uint8Array(0));
  });

  test('random garbage never throws, and whatever it accepts is exactly what Buffer encodes back', () => {
    const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\u00e9';
    for (let i = 0; i < 5000; i++) {
      const length = Math.floor(rng() * 12);
      const text = Array.from({ length }, () => chars[Math.floor(rng() * chars.length)]).join('');
      let decoded: Uint8Array | undefined;
      expect(() => (decoded = fromBase64(text))).not.toThrow();
      if (decoded !== undefined) expect(Buffer.from(decoded).toString('base64')).toBe(text);
    }
  });
});

describe('canonicalJson', () => {
  test.each<[string, unknown, string]>([
    ['keys sorted', { b: 1, a: 2, c: 3 }, '{"a":2,"b":1,"c":3}'],
    ['nested objects sorted at every level', { z: { y: 1, x: [{ b: 1, a: 2 }] }, a: null }, '{"a":null,"z":{"x":[{"a":2,"b":1}],"y":1}}'],
    ['undefined fields left out', { a: undefined, b: 1, c: { d: undefined } }, '{"b":1,"c":{}}'],
    ['undefined in an array becomes null, as JSON.stringify writes it', [1, undefined, 2], '[1,null,2]'],
    ['undefined alone is null', undefined, 'null'],
    ['array order kept', [3, 1, 2], '[3,1,2]'],
    ['UTF-16 code unit order: upper case before lower case', { b: 1, B: 2, a: 3, A: 4 }, '{"A":4,"B":2,"a":3,"b":1}'],
    ['UTF-16 code unit order: a prefix before its extensions', { ab: 1, a: 2, abc: 3 }, '{"a":2,"ab":1,"abc":3}'],
    ['UTF-16 code unit order: an astral character (surrogates D83D..) before U+FFFF', { '\uffff': 1, '\u{1f600}': 2 }, '{"\u{1f600}":2,"\uffff":1}'],
    ['strings escaped as JSON does, non-ASCII kept as is', { s: 'é"\\\n\u0001€' }, '{"s":"é\\"\\\\\\n\\u0001€"}'],
    ['numbers as JSON writes them', [1, 1.5, -0, 1e21, 1e-7, 0.1], '[1,1.5,0,1e+21,1e-7,0.1]'],
    ['booleans and null', [true, false, null], '[true,false,null]'],
    ['empty containers', { a: {}, b: [] }, '{"a":{},"b":[]}'],
    ['no whitespace anywhere', { 'a b': ' c ' }, '{"a b":" c "}'],
  ])('%s', (_label, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  test('independent of insertion order, and equal to JSON.stringify for pre-sorted input', () => {
    for (let i = 0; i < 200; i++) {
      const keys = Array.from({ length: 1 + Math.floor(rng() * 8) }, () => `k${Math.floor(rng() * 1e6).toString(36)}`);
      // (prefixed: integer-like keys come first in any JS object, so JSON.stringify could not serve as the reference)
      const shuffled = [...keys].sort(() => rng() - 0.5);
      const a = Object.fromEntries(keys.map((k) => [k, k.length]));
      const b = Object.fromEntries(shuffled.map((k) => [k, k.length]));
      const sorted = Object.fromEntries([...new Set(keys)].sort().map((k) => [k, k.length]));
      expect(canonicalJson(a)).toBe(canonicalJson(b));
      expect(canonicalJson(a)).toBe(JSON.stringify(sorted));
    }
  });
});

/** A key pair made by node:crypto, with its raw 32-byte keys in base64. */
function nodeKeyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  // SPKI DER for Ed25519 is a fixed 12-byte header followed by the raw 32-byte key; PKCS#8 likewise (16-byte header).
  const rawPublic = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32);
  const rawSecret = privateKey.export({ type: 'pkcs8', format: 'der' }).subarray(-32);
  return { publicKey, privateKey, publicB64: rawPublic.toString('base64'), secretB64: rawSecret.toString('base64') };
}

/** A node:crypto public key object from a raw base64 public key. */
const nodePublicKey = (b64: string) => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(b64, 'base64').toString('base64url') }, format: 'jwk' });

const action: OperatorActionToSign = {
  accountId: 'acct-1',
  action: 'resyncSeq',
  args: { venue: 'binance-spot', seq: 42 },
  operator: 'alice',
  reason: 'bot restarted from 0',
  nonce: 'AAAAAAAAAAAAAAAAAAAAAA',
  expiresAt: '2026-01-01T00:05:00.000Z',
};
const report = { venue: 'binance-spot', seq: 7, balances: { USDT: '9650.00', BTC: '0.1' } };

describe('Ed25519 against node:crypto', () => {
  test('a signature made by node:crypto verifies with verifyEd25519', () => {
    for (let i = 0; i < 10; i++) {
      const k = nodeKeyPair();
      const message = randomBytes(i * 37);
      const signature = nodeSign(null, message, k.privateKey).toString('base64');
      expect(verifyEd25519(k.publicB64, signature, message)).toBe(true);
      expect(publicKeyOf(k.secretB64)).toBe(k.publicB64);
    }
  });

  test('a signature made by signEd25519 verifies with node:crypto.verify, and is the same bytes node:crypto makes', () => {
    for (let i = 0; i < 10; i++) {
      const k = nodeKeyPair();
      const message = operatorActionMessage({ ...action, reason: `reason ${i}` });
      const signature = signEd25519(k.secretB64, message);
      expect(nodeVerify(null, message, nodePublicKey(k.publicB64), Buffer.from(signature, 'base64'))).toBe(true);
      // Ed25519 is deterministic: both implementations must produce the very same signature.
      expect(signature).toBe(nodeSign(null, message, k.privateKey).toString('base64'));
    }
  });

  test('newEd25519KeyPair makes a pair node:crypto accepts', () => {
    const { secretKey, publicKey } = newEd25519KeyPair();
    expect(isEd25519PublicKey(publicKey)).toBe(true);
    expect(publicKeyOf(secretKey)).toBe(publicKey);
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(secretKey, 'base64')]);
    const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    const message = botReportMessage('acct-1', report);
    expect(verifyEd25519(publicKey, nodeSign(null, message, privateKey).toString('base64'), message)).toBe(true);
  });
});

describe('verifyEd25519', () => {
  const k = nodeKeyPair();
  const message = operatorActionMessage(action);
  const signature = signEd25519(k.secretB64, message);
  const flip = (b64: string, index: number, bit: number) => {
    const bytes = Buffer.from(b64, 'base64');
    bytes[index]! ^= 1 << bit;
    return bytes.toString('base64');
  };

  test('the untouched signature verifies', () => {
    expect(verifyEd25519(k.publicB64, signature, message)).toBe(true);
  });

  test('any flipped bit of the message fails', () => {
    for (let i = 0; i < message.length; i++) {
      const tampered = Uint8Array.from(message);
      tampered[i]! ^= 1 << (i % 8);
      expect(verifyEd25519(k.publicB64, signature, tampered)).toBe(false);
    }
  });

  test('any flipped byte of the signature fails', () => {
    for (let i = 0; i < 64; i++) for (const bit of [0, 7]) expect(verifyEd25519(k.publicB64, flip(signature, i, bit), message)).toBe(false);
  });

  test('any flipped byte of the public key fails', () => {
    for (let i = 0; i < 32; i++) for (const bit of [0, 7]) expect(verifyEd25519(flip(k.publicB64, i, bit), signature, message)).toBe(false);
  });

  test('another key fails', () => {
    expect(verifyEd25519(nodeKeyPair().publicB64, signature, message)).toBe(false);
  });

  test('a truncated or extended message fails', () => {
    expect(verifyEd25519(k.publicB64, signature, message.subarray(0, -1))).toBe(false);
    expect(verifyEd25519(k.publicB64, signature, Uint8Array.from([...message, 0]))).toBe(false);
  });

  test('the signature with an S component not reduced mod L (malleable form) fails, as RFC 8032 requires', () => {
    // L = 2^252 + 27742317777372353535851937790883648493; S + L encodes the same point equation but is not canonical.
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const bytes = Buffer.from(signature, 'base64');
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(bytes[32 + i]!);
    let t = s + L;
    for (let i = 0; i < 32; i++) {
      bytes[32 + i] = Number(t & 0xffn);
      t >>= 8n;
    }
    expect(verifyEd25519(k.publicB64, bytes.toString('base64'), message)).toBe(false);
  });

  const malformed: Array<[string, unknown, unknown]> = [
    ['empty key', '', signature],
    ['empty signature', k.publicB64, ''],
    ['31-byte key', Buffer.alloc(31, 1).toString('base64'), signature],
    ['33-byte key', Buffer.alloc(33, 1).toString('base64'), signature],
    ['63-byte signature', k.publicB64, Buffer.from(signature, 'base64').subarray(0, 63).toString('base64')],
    ['65-byte signature', k.publicB64, Buffer.concat([Buffer.from(signature, 'base64'), Buffer.alloc(1)]).toString('base64')],
    ['key not on the curve / all zero', Buffer.alloc(32).toString('base64'), signature],
    ['all-0xff key', Buffer.alloc(32, 0xff).toString('base64'), signature],
    ['all-zero signature', k.publicB64, Buffer.alloc(64).toString('base64')],
    ['all-0xff signature', k.publicB64, Buffer.alloc(64, 0xff).toString('base64')],
    ['key in url-safe base64', Buffer.from(k.publicB64, 'base64').toString('base64url'), signature],
    ['key as a number', 12345, signature],
    ['signature as null', k.publicB64, null],
    ['signature as an object', k.publicB64, { signature }],
    ['huge signature string', k.publicB64, 'A'.repeat(100_000)],
  ];
  test.each(malformed)('%s: false, never a throw', (_label, key, sig) => {
    expect(() => verifyEd25519(key as string, sig as string, message)).not.toThrow();
    expect(verifyEd25519(key as string, sig as string, message)).toBe(false);
  });

  test('the same signature re-encoded with non-zero unused base64 bits is refused (one signature, one spelling)', () => {
    // 64 bytes = 86 characters + "==": the last character carries 2 data bits and 4 unused ones.
    const last = signature.at(-3)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const respelled = `${signature.slice(0, -3)}${alphabet[alphabet.indexOf(last) | 1]}==`;
    expect(respelled).not.toBe(signature);
    expect(Buffer.from(respelled, 'base64').toString('base64')).toBe(signature);
    expect(verifyEd25519(k.publicB64, respelled, message)).toBe(false);
  });
});

describe('messages', () => {
  test('operatorActionMessage is the domain line and the canonical JSON of exactly the seven fields', () => {
    const text = new TextDecoder().decode(operatorActionMessage({ ...action, extra: 'ignored' } as OperatorActionToSign));
    expect(text).toBe(
      `${OPERATOR_ACTION_DOMAIN}\n{"accountId":"acct-1","action":"resyncSeq","args":{"seq":42,"venue":"binance-spot"},"expiresAt":"2026-01-01T00:05:00.000Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA","operator":"alice","reason":"bot restarted from 0"}`,
    );
  });

  test('botReportMessage is the domain line and the canonical JSON of {accountId, report}', () => {
    const text = new TextDecoder().decode(botReportMessage('acct-1', report));
    expect(text).toBe(`${BOT_REPORT_DOMAIN}\n{"accountId":"acct-1","report":{"balances":{"BTC":"0.1","USDT":"9650.00"},"seq":7,"venue":"binance-spot"}}`);
  });

  test('non-ASCII is signed as UTF-8', () => {
    const bytes = botReportMessage('acct-1', { note: 'é€' });
    expect(Buffer.from(bytes).toString('utf8')).toContain('"note":"é€"');
    expect(Buffer.from(bytes).includes(Buffer.from([0xe2, 0x82, 0xac]))).toBe(true);
  });

  test('a message holds exactly one newline (the domain line\'s), whatever the fields contain', () => {
    const m = operatorActionMessage({ ...action, reason: 'line 1\nline 2', args: { 'a\nb': 'c\n' } });
    expect(m.filter((b) => b === 0x0a)).toHaveLength(1);
  });

  test('domain separation: an operator signature never verifies as a bot report, nor the other way round', () => {
    const k = nodeKeyPair();
    const opSig = signEd25519(k.secretB64, operatorActionMessage(action));
    const { accountId, ...rest } = action;
    // The bot-report message closest to the operator action: the same account and the same fields as the "report".
    expect(verifyEd25519(k.publicB64, opSig, botReportMessage(accountId, rest as unknown as Record<string, unknown>))).toBe(false);
    expect(verifyEd25519(k.publicB64, opSig, botReportMessage(accountId, { ...action } as unknown as Record<string, unknown>))).toBe(false);

    const botSig = signEd25519(k.secretB64, botReportMessage('acct-1', report));
    expect(verifyEd25519(k.publicB64, botSig, operatorActionMessage({ ...action, args: report }))).toBe(false);
    // And the messages can never coincide: their first lines differ and JSON cannot contain a raw newline.
    const opText = new TextDecoder().decode(operatorActionMessage(action));
    const botText = new TextDecoder().decode(botReportMessage('acct-1', report));
    expect(opText.split('\n')[0]).toBe(OPERATOR_ACTION_DOMAIN);
    expect(botText.split('\n')[0]).toBe(BOT_REPORT_DOMAIN);
  });
});

describe('keys', () => {
  test('signEd25519 and publicKeyOf refuse a secret key that is not 32 bytes', () => {
    for (const bad of ['', Buffer.alloc(31).toString('base64'), Buffer.alloc(64).toString('base64'), 'not base64']) {
      expect(() => signEd25519(bad, new Uint8Array(1))).toThrow(/32 bytes/);
      expect(() => publicKeyOf(bad)).toThrow(/32 bytes/);
    }
  });

  test('isEd25519PublicKey: 32 bytes of canonical base64 only', () => {
    expect(isEd25519PublicKey(Buffer.alloc(32, 7).toString('base64'))).toBe(true);
    expect(isEd25519PublicKey(Buffer.alloc(31, 7).toString('base64'))).toBe(false);
    expect(isEd25519PublicKey(Buffer.alloc(32, 7).toString('base64url'))).toBe(false);
    expect(isEd25519PublicKey(Buffer.alloc(32, 7).toString('base64').replace(/=$/, ''))).toBe(false);
  });

  test('keyIdOf: the first 12 alphanumeric characters of the base64 key', () => {
    expect(keyIdOf('ab+/cdEF0123456789xyz=')).toBe('abcdEF012345');
    const { publicKey } = newEd25519KeyPair();
    expect(keyIdOf(publicKey)).toMatch(/^[A-Za-z0-9]{12}$/);
  });
});

/**
 * docs/signing.md's worked examples, parsed out of the page: fenced blocks whose info string names them
 * (```json operator-request), so that the page cannot drift from the code.
 */
describe('docs/signing.md', () => {
  const page = readFileSync(join(__dirname, '../../docs/signing.md'), 'utf8');
  const block = (name: string): string => {
    const found = new RegExp(`^\`\`\`\\w+ ${name}\\n([\\s\\S]*?)\\n\`\`\`$`, 'm').exec(page);
    if (!found) throw new Error(`docs/signing.md has no block named ${name}`);
    return found[1]!;
  };
  const secretKey = block('example-secret-key');
  const publicKey = block('example-public-key');

  test('the example key pair is RFC 8032 test vector 1, and its public key is the secret\'s', () => {
    expect(Buffer.from(secretKey, 'base64').toString('hex')).toBe('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    expect(publicKeyOf(secretKey)).toBe(publicKey);
  });

  test('the operator request: its message is the one shown, its signature verifies and the guard accepts it', () => {
    const { operator, reason, auth, ...args } = JSON.parse(block('operator-request'));
    const message = operatorActionMessage({ accountId: 'acct-1', action: 'resyncSeq', args, operator, reason, nonce: auth.nonce, expiresAt: auth.expiresAt });
    expect(new TextDecoder().decode(message)).toBe(block('operator-message'));
    expect(verifyEd25519(publicKey, auth.signature, message)).toBe(true);
    expect(signEd25519(secretKey, message)).toBe(auth.signature);
    const trust: TrustView = { accountId: 'acct-1', listed: true, venues: ['binance-spot'], operators: [{ id: 'alice', publicKey, actions: ['resyncSeq'] }], approval: null, bots: null, source: 'docs' };
    expect(authenticateOperator({ trust, accountId: 'acct-1', action: 'resyncSeq', permission: 'resyncSeq', args, operator, reason, auth, usedNonces: {}, at: '2026-01-01T00:00:00.000Z' }).ok).toBe(true);
  });

  test('the bot report: its message is the one shown and the guard accepts it', () => {
    const report = JSON.parse(block('bot-report'));
    const { auth, ...rest } = report;
    expect(new TextDecoder().decode(botReportMessage('acct-1', rest))).toBe(block('bot-message'));
    const trust: TrustView = { accountId: 'acct-1', listed: true, venues: ['binance-spot'], operators: [], approval: null, bots: [{ id: auth.bot, publicKey, venues: ['binance-spot'] }], source: 'docs' };
    expect(authenticateReport(trust, 'acct-1', report, 'binance-spot')).toEqual({ ok: true, bot: 'mm-bot' });
  });

  const python = spawnSync('python3', ['-c', 'import cryptography'], { encoding: 'utf8' });
  (python.status === 0 ? test : test.skip)('the Python snippet prints the example signature and a report the guard accepts (needs python3 and cryptography)', () => {
    const snippet = /^```python\n([\s\S]*?)\n```$/m.exec(page)![1]!;
    const run = spawnSync('python3', ['-c', snippet], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const [signature, json] = run.stdout.trim().split('\n');
    const expected = JSON.parse(block('bot-report'));
    expect(signature).toBe(expected.auth.signature);
    expect(JSON.parse(json!)).toEqual(expected);
  });
});
