import { MAX_ERROR_CHARS, MAX_OPERATOR_CHARS, MAX_REASON_CHARS } from '../../src/domain/limits';
import { parseOperatorRequest, parseResyncRequest } from '../../src/domain/operator';
import { oneOf } from '../../src/domain/validation';

const valid = { operator: 'alice', reason: 'loss explained, bots stopped' };
const OPERATOR_REQUIRED = 'is required: who is acting (1-64 characters)';
const REASON_REQUIRED = 'is required: why (1-500 characters)';
const MB2 = 2 * 1024 * 1024;

function errorOf(raw: unknown, action = 'reset'): string {
  const parsed = parseOperatorRequest(raw, action);
  if (parsed.ok) throw new Error(`accepted: ${JSON.stringify(raw).slice(0, 200)}`);
  return parsed.error;
}

describe('operator requests', () => {
  it('accepts a request and trims both fields', () => {
    expect(parseOperatorRequest(valid, 'reset')).toEqual({ ok: true, value: valid });
    expect(parseOperatorRequest({ operator: '  alice\t', reason: '\n why ' }, 'reset')).toEqual({ ok: true, value: { operator: 'alice', reason: 'why' } });
  });

  it('accepts the limits exactly', () => {
    const raw = { operator: 'o'.repeat(MAX_OPERATOR_CHARS), reason: 'r'.repeat(MAX_REASON_CHARS) };
    expect(parseOperatorRequest(raw, 'reset')).toEqual({ ok: true, value: raw });
    expect(parseOperatorRequest({ operator: ` ${raw.operator} `, reason: raw.reason }, 'reset').ok).toBe(true);
    expect(parseOperatorRequest({ operator: 'Zoë 🚀', reason: 'unicode is fine' }, 'reset').ok).toBe(true);
  });

  it.each<[string, unknown, string, string | RegExp]>([
    ['missing operator', { reason: 'why' }, 'reset', `reset.operator: ${OPERATOR_REQUIRED}`],
    ['missing reason', { operator: 'alice' }, 'disable', `disable.reason: ${REASON_REQUIRED}`],
    ['missing both', {}, 'reset', `reset.operator: ${OPERATOR_REQUIRED}; reset.reason: ${REASON_REQUIRED}`],
    ['empty operator', { ...valid, operator: '' }, 'reset', `reset.operator: ${OPERATOR_REQUIRED}`],
    ['blank operator', { ...valid, operator: '   ' }, 'reset', 'reset.operator: must not be blank'],
    ['blank reason', { ...valid, reason: '\t\n' }, 'enable', 'enable.reason: must not be blank'],
    ['operator as a number', { ...valid, operator: 7 }, 'reset', 'reset.operator: must be a string, got 7'],
    ['reason null', { ...valid, reason: null }, 'reset', 'reset.reason: must be a string, got null'],
    ['bell in the reason', { ...valid, reason: 'stop\u0007' }, 'halt', 'halt.reason: must not contain control characters'],
    ['NUL in the operator', { ...valid, operator: 'al\u0000ice' }, 'reset', 'reset.operator: must not contain control characters'],
    ['newline inside the operator', { ...valid, operator: 'alice\nbob' }, 'reset', 'reset.operator: must not contain control characters'],
    ['escape sequence in the reason', { ...valid, reason: 'ok \u001b[31mred' }, 'reset', 'reset.reason: must not contain control characters'],
    ['C1 control in the reason', { ...valid, reason: 'ok \u009b' }, 'reset', 'reset.reason: must not contain control characters'],
    ['line separator in the operator', { ...valid, operator: 'a\u2028b' }, 'reset', 'reset.operator: must not contain control characters'],
    ['65-character operator', { ...valid, operator: 'o'.repeat(65) }, 'reset', 'reset.operator: must be at most 64 characters, got 65 characters'],
    ['501-character reason', { ...valid, reason: 'r'.repeat(501) }, 'reset', 'reset.reason: must be at most 500 characters, got 501 characters'],
    ['2 MB reason', { ...valid, reason: 'r'.repeat(MB2) }, 'reset', 'reset.reason: must be at most 500 characters, got 2097152 characters'],
    ['unknown field', { ...valid, force: true }, 'reset', 'reset: unknown field "force"; allowed fields: operator, reason, auth'],
    ['null', null, 'reset', 'reset: must be an object such as {"operator": "alice", "reason": "..."}, got null'],
    ['a string', 'alice', 'reset', 'reset: must be an object such as {"operator": "alice", "reason": "..."}, got "alice"'],
    ['nothing', undefined, 'reset', 'reset: is required'],
    ['an array', [valid], 'reset', 'reset: must be an object such as {"operator": "alice", "reason": "..."}, got an array of 1 item'],
    ['prototype keys', JSON.parse('{"operator": "a", "reason": "b", "__proto__": {"admin": true}}'), 'reset', 'reset: unknown field "__proto__"; allowed fields: operator, reason, auth'],
  ])('rejects %s', (_label, raw, action, message) => {
    const error = errorOf(raw, action);
    if (typeof message === 'string') expect(error).toBe(message);
    else expect(error).toMatch(message);
  });

  it('caps the message and the echo of hostile input', () => {
    const huge = 'q'.repeat(MB2);
    const raw = { operator: huge, reason: huge, ...Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`${i}${huge.slice(0, 100)}`, huge])) };
    const error = errorOf(raw);
    expect(error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
    expect(error).not.toContain('q'.repeat(65));
    expect(error).toMatch(/^reset\.operator: must be at most 64 characters, got 2097152 characters; reset\.reason: must be at most 500 characters, got 2097152 characters; reset: unknown fields "0q{63}…/);
  });

  describe('with fields of the action', () => {
    const extra = { venue: oneOf(['binance-spot', 'binance-usdm']) };

    it('accepts and returns them', () => {
      expect(parseOperatorRequest({ ...valid, venue: 'binance-usdm' }, 'close', extra)).toEqual({ ok: true, value: { ...valid, venue: 'binance-usdm' } });
    });

    it.each<[string, unknown, string]>([
      ['missing', valid, 'close.venue: is required'],
      ['wrong', { ...valid, venue: 'kraken' }, 'close.venue: must be one of "binance-spot", "binance-usdm", got "kraken"'],
      ['and an unknown one', { ...valid, venue: 'binance-spot', side: 'long' }, 'close: unknown field "side"; allowed fields: operator, reason, auth, venue'],
    ])('rejects them %s', (_label, raw, message) => {
      const parsed = parseOperatorRequest(raw, 'close', extra);
      expect(parsed).toEqual({ ok: false, error: message });
    });
  });
});

describe('resync requests', () => {
  const venues = ['binance-spot', 'binance-usdm'];
  const SEQ = 'a whole number from 0 to 9007199254740991, or null to accept the next report whatever its seq';

  it.each([[0], [41], [Number.MAX_SAFE_INTEGER], [null]])('accepts seq %p', (seq) => {
    expect(parseResyncRequest({ ...valid, venue: 'binance-spot', seq }, venues)).toEqual({ ok: true, value: { ...valid, venue: 'binance-spot', seq } });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['missing seq', { venue: 'binance-spot' }, `resync.seq: is required: ${SEQ}`],
    ['seq -1', { venue: 'binance-spot', seq: -1 }, `resync.seq: must be ${SEQ}, got -1`],
    ['seq 1.5', { venue: 'binance-spot', seq: 1.5 }, `resync.seq: must be ${SEQ}, got 1.5`],
    ['seq 2^53', { venue: 'binance-spot', seq: 2 ** 53 }, `resync.seq: must be ${SEQ}, got 9007199254740992`],
    ['seq NaN', { venue: 'binance-spot', seq: NaN }, `resync.seq: must be ${SEQ}, got NaN`],
    ['seq as a string', { venue: 'binance-spot', seq: '3' }, `resync.seq: must be ${SEQ}, got "3"`],
    ['missing venue', { seq: 3 }, 'resync.venue: is required: one of "binance-spot", "binance-usdm"'],
    ['unknown venue', { venue: 'kraken', seq: 3 }, 'resync.venue: must be one of "binance-spot", "binance-usdm", got "kraken"'],
    ['2 MB venue', { venue: 'v'.repeat(MB2), seq: 3 }, `resync.venue: must be one of "binance-spot", "binance-usdm", got "${'v'.repeat(64)}…(2097152 characters)"`],
    ['unknown field', { venue: 'binance-spot', seq: 3, force: true }, 'resync: unknown field "force"; allowed fields: operator, reason, auth, venue, seq'],
  ])('rejects %s', (_label, fields, message) => {
    expect(parseResyncRequest({ ...valid, ...fields }, venues)).toEqual({ ok: false, error: message });
  });
});
