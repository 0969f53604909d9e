/**
 * The guard's payload converter decodes what the default converter decodes, identically, and turns what it cannot
 * decode into an UndecodablePayload with a short reason, never an exception.
 */
import { TextDecoder } from 'node:util';
import { Payload, ValueError, defaultPayloadConverter } from '@temporalio/common';
import { MAX_UNDECODABLE_REASON_CHARS, firstInvalidUtf8Byte, payloadConverter } from '../../src/api/payload-converter';
import { UndecodablePayload, isUndecodable } from '../../src/api/undecodable';

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));
const payload = (encoding: string | Uint8Array | undefined, data?: Uint8Array | string): Payload => ({
  metadata: encoding === undefined ? {} : { encoding: typeof encoding === 'string' ? bytes(encoding) : encoding },
  ...(data === undefined ? {} : { data: typeof data === 'string' ? bytes(data) : data }),
});

/** Decodes with our converter and expects an UndecodablePayload; returns its reason. */
function refused(p: Payload): string {
  const value = payloadConverter.fromPayload<unknown>(p);
  expect(value).toBeInstanceOf(UndecodablePayload);
  if (!isUndecodable(value)) throw new Error('unreachable');
  expect(value.error.length).toBeLessThanOrEqual(MAX_UNDECODABLE_REASON_CHARS);
  return value.error;
}

describe('values the default converter handles', () => {
  const values: [string, unknown][] = [
    ['a balance report', { venue: 'binance-spot', seq: 7, balances: { USDT: '9650.00', BTC: '0.1' }, prices: { BTC: '40000' } }],
    ['a string', 'hello'],
    ['an empty string', ''],
    ['non-ASCII text', 'Zürich 東京 💸 \u2028'],
    ['a number', 42.5],
    ['zero', 0],
    ['false', false],
    ['null', null],
    ['an empty object', {}],
    ['nested arrays', [[1, 2], ['x', { y: null }], []]],
    ['a large object', Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`A${i}`, `${i}.5`]))],
  ];

  it.each(values)('%s: the same payload out, the same value back', (_label, value) => {
    const ours = payloadConverter.toPayload(value);
    expect(ours).toEqual(defaultPayloadConverter.toPayload(value));
    expect(payloadConverter.fromPayload(ours)).toEqual(defaultPayloadConverter.fromPayload(ours));
    expect(payloadConverter.fromPayload(ours)).toEqual(value);
  });

  it('undefined goes through binary/null and comes back undefined', () => {
    const p = payloadConverter.toPayload(undefined);
    expect(p).toEqual(defaultPayloadConverter.toPayload(undefined));
    expect(new TextDecoder().decode(p.metadata!.encoding!)).toBe('binary/null');
    expect(payloadConverter.fromPayload(p)).toBeUndefined();
  });

  it('binary data goes through binary/plain and comes back as the same bytes', () => {
    const data = new Uint8Array([0, 1, 0xff, 0xfe, 0x80]); // not UTF-8, and need not be: it is binary
    const p = payloadConverter.toPayload(data);
    expect(p).toEqual(defaultPayloadConverter.toPayload(data));
    const back = payloadConverter.fromPayload<Uint8Array>(p);
    expect(back).toBeInstanceOf(Uint8Array);
    expect([...back]).toEqual([...data]);
    // binary/plain without data: whatever the default answers (no throw).
    expect(payloadConverter.fromPayload(payload('binary/plain'))).toEqual(defaultPayloadConverter.fromPayload(payload('binary/plain')));
  });

  it('a JSON payload as other SDKs write it (no spaces, unicode escapes) decodes as the default decodes it', () => {
    const p = payload('json/plain', '{"venue":"binance-spot","seq":1,"balances":{"USDT":"1.5"},"note":"\\u00e9\\ud83d\\udcb8"}');
    expect(payloadConverter.fromPayload(p)).toEqual(defaultPayloadConverter.fromPayload(p));
  });

  it('values JSON cannot carry are refused on the way out, as by the default', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => payloadConverter.toPayload(cyclic)).toThrow(ValueError);
    expect(() => payloadConverter.toPayload(10n)).toThrow(ValueError);
  });
});

describe('payloads the default converter throws on', () => {
  it('an unknown encoding (json/protobuf, as `temporal --input-meta encoding=json/protobuf` sends it)', () => {
    const p = payload('json/protobuf', '{"venue":"binance-spot"}');
    expect(() => defaultPayloadConverter.fromPayload(p)).toThrow(/Unknown encoding/);
    expect(refused(p)).toMatch(/^unknown encoding "json\/protobuf"/);
    expect(refused(payload('binary/protobuf', new Uint8Array([8, 1])))).toContain('"binary/protobuf"');
  });

  it("NaN, as Python's json module writes float('nan')", () => {
    const p = payload('json/plain', '{"venue": "binance-spot", "seq": 3, "balances": {"USDT": NaN}}');
    expect(() => defaultPayloadConverter.fromPayload(p)).toThrow(SyntaxError);
    const reason = refused(p);
    expect(reason).toMatch(/^json\/plain payload is not valid JSON: /);
    expect(reason).toContain("Unexpected token 'N'");
    expect(refused(payload('json/plain', 'NaN'))).toContain('not valid JSON');
    expect(refused(payload('json/plain', '[Infinity]'))).toContain('not valid JSON');
  });

  it('truncated and empty JSON', () => {
    expect(refused(payload('json/plain', '{"venue": "binance-spot", "bal'))).toMatch(/^json\/plain payload is not valid JSON: .*(Unterminated|end of JSON)/);
    expect(refused(payload('json/plain', ''))).toContain('Unexpected end of JSON input');
  });

  it('invalid UTF-8 in JSON data (which the SDK decoder would silently turn into U+FFFD)', () => {
    const p = payload('json/plain', new Uint8Array([0x22, 0x61, 0xff, 0x62, 0x22])); // "a\xffb"
    expect(defaultPayloadConverter.fromPayload(p)).toBe('a\ufffdb');
    expect(refused(p)).toBe('json/plain payload is not valid UTF-8 (byte 2 of 5)');
    // An encoded surrogate half (CESU-8) and an overlong "/" are not UTF-8 either.
    expect(refused(payload('json/plain', new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22])))).toContain('not valid UTF-8 (byte 1 of 5)');
    expect(refused(payload('json/plain', new Uint8Array([0x22, 0xc0, 0xaf, 0x22])))).toContain('not valid UTF-8');
  });

  it('missing metadata, encoding or data', () => {
    expect(refused({ data: bytes('{}') })).toBe('payload has no metadata');
    expect(refused({ metadata: null, data: bytes('{}') })).toBe('payload has no metadata');
    expect(refused(payload(undefined, '{}'))).toBe('payload metadata has no encoding');
    expect(refused(payload('json/plain'))).toBe('json/plain payload has no data');
    expect(refused(payload(new Uint8Array([0x6a, 0xff])))).toBe('payload encoding is not valid UTF-8');
  });

  it('a 2 MB payload: the reason stays short and quotes at most 64 characters of it', () => {
    const marker = 'abcdefghijklmnopqrstuvwxyz0123456789';
    const big = `{"venue": "x", "balances": {${Array.from({ length: 60_000 }, (_, i) => `"${marker}${i}": "1"`).join(', ')}, "USDT": NaN}}`;
    expect(big.length).toBeGreaterThan(2_000_000);
    const reason = refused(payload('json/plain', big));
    expect(reason).toContain('not valid JSON');
    expect(reason.length).toBeLessThan(150);
    // No 65-character run of the payload appears in the reason.
    for (let i = 0; i + 65 <= reason.length; i++) expect(big).not.toContain(reason.slice(i, i + 65));

    const bigEncoding = refused(payload('x'.repeat(2_000_000), '{}'));
    expect(bigEncoding).toContain(`"${'x'.repeat(64)}…(2000000 bytes)"`);
    expect(bigEncoding).not.toContain('x'.repeat(65));

    const bigInvalid = refused(payload('json/plain', new Uint8Array([...bytes(big.slice(0, 2_000_000)), 0xc3])));
    expect(bigInvalid).toBe('json/plain payload is not valid UTF-8 (byte 2000000 of 2000001)');
  });

  it('control characters in a reason are replaced, so the reason is safe to show and log', () => {
    expect(refused(payload('json/\u0007plain\n', '{}'))).toContain('"json/?plain?"');
  });
});

describe('firstInvalidUtf8Byte agrees with a strict decoder', () => {
  const strict = new TextDecoder('utf-8', { fatal: true });
  const valid = (b: Uint8Array) => {
    try {
      strict.decode(b);
      return true;
    } catch {
      return false;
    }
  };

  it('on every 1- and 2-byte sequence and on the boundaries of 3- and 4-byte ones', () => {
    const cases: number[][] = [];
    for (let a = 0; a < 256; a++) {
      cases.push([a]);
      for (let b = 0; b < 256; b++) cases.push([a, b]);
    }
    for (const lead of [0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5]) {
      for (const b of [0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0]) {
        cases.push([lead, b, 0x80], [lead, b, 0xbf], [lead, b, 0xc0], [lead, b, 0x80, 0x80], [lead, b, 0x80, 0x7f]);
      }
    }
    const disagreements = cases.filter((c) => (firstInvalidUtf8Byte(c) < 0) !== valid(new Uint8Array(c)));
    expect(disagreements).toEqual([]);
  });
});
