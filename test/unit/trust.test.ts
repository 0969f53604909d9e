/**
 * The guard's checks of signed operator actions and bot reports (src/domain/trust.ts): one table row per reason a
 * request is refused, each built from a valid request by changing one thing, and a check that the table names every
 * refusal the code can give.
 */
import { OperatorActionToSign, botReportMessage, keyIdOf, newEd25519KeyPair, operatorActionMessage, signEd25519 } from '../../src/domain/signing';
import {
  MAX_REMEMBERED_NONCES,
  MAX_SIGNED_VALIDITY_SECONDS,
  OPERATOR_ACTIONS,
  OperatorActionName,
  OperatorAuth,
  TrustView,
  UsedNonces,
  authenticateOperator,
  authenticateReport,
  operatorAuthSchema,
  parseBotAuth,
  parseTrustView,
  pruneNonces,
} from '../../src/domain/trust';
import { validate } from '../../src/domain/validation';

const at = '2026-01-01T00:00:00.000Z';
const atMs = Date.parse(at);
const iso = (ms: number) => new Date(ms).toISOString();

const alice = newEd25519KeyPair();
const bob = newEd25519KeyPair();
const mallory = newEd25519KeyPair();
const mmBot = newEd25519KeyPair();

const trust: TrustView = {
  accountId: 'acct-1',
  listed: true,
  venues: ['binance-spot', 'binance-usdm'],
  operators: [
    { id: 'alice', publicKey: alice.publicKey, actions: ['halt', 'reset', 'disable', 'enable', 'resyncSeq'] },
    { id: 'bob', publicKey: bob.publicKey, actions: ['halt', 'reset'] },
  ],
  approval: { actions: ['reset'], windowSeconds: 900 },
  bots: [{ id: 'mm-bot', publicKey: mmBot.publicKey, venues: ['binance-spot'] }],
  source: 'inline sha256:000000000000',
};

type OperatorInput = Parameters<typeof authenticateOperator>[0];

/** A request as signed: the fields of the signed message, and who signed it. */
interface Signed {
  accountId: string;
  action: OperatorActionName | 'approve';
  args: Record<string, unknown>;
  operator: string;
  reason: string;
  nonce: string;
  expiresAt: string;
  secretKey: string;
}
const base: Signed = {
  accountId: 'acct-1',
  action: 'resyncSeq',
  args: { venue: 'binance-spot', seq: 42 },
  operator: 'alice',
  reason: 'bot restarted from 0',
  nonce: 'nonce-0123456789abcdef',
  expiresAt: iso(atMs + 300_000),
  secretKey: alice.secretKey,
};

function sign(s: Signed): OperatorAuth {
  const fields: OperatorActionToSign = { accountId: s.accountId, action: s.action, args: s.args, operator: s.operator, reason: s.reason, nonce: s.nonce, expiresAt: s.expiresAt };
  return { nonce: s.nonce, expiresAt: s.expiresAt, signature: signEd25519(s.secretKey, operatorActionMessage(fields)) };
}

/** What the guard is given: by default exactly what was signed. */
function input(signed: Partial<Signed> = {}, presented: Partial<OperatorInput> = {}): OperatorInput {
  const s = { ...base, ...signed };
  const permission = s.action === 'approve' ? 'reset' : s.action;
  return {
    trust,
    accountId: s.accountId,
    action: s.action,
    permission,
    args: s.args,
    operator: s.operator,
    reason: s.reason,
    auth: sign(s),
    usedNonces: {},
    at,
    ...presented,
  };
}

/** Every refusal authenticateOperator can give, by the words of its message. */
const REFUSALS = {
  notLoaded: /has not loaded its worker's trust anchor yet/,
  unlisted: /is not listed in the worker's trust anchor \(inline sha256:000000000000\): no operator may/,
  unsigned: /unsigned: every .* must carry "auth"/,
  unknownOperator: /operator "\w+" is not listed for account acct-1/,
  notPermitted: /may not \w+ \(allowed: /,
  expired: /expired at/,
  tooFarAhead: new RegExp(`is more than ${MAX_SIGNED_VALIDITY_SECONDS} s ahead`),
  badExpiry: /is not an instant/,
  replayed: /was already used: a replayed request/,
  nonceTableFull: /too many signed requests/,
  badSignature: /the signature does not match operator/,
} as const;
type Refusal = keyof typeof REFUSALS;

const fullNonces = (n: number): UsedNonces => Object.fromEntries(Array.from({ length: n }, (_, i) => [`used-nonce-${String(i).padStart(8, '0')}`, iso(atMs + 60_000)]));

const table: Array<[string, OperatorInput, Refusal | 'ok', RegExp?]> = [
  ['valid', input(), 'ok'],
  ['valid approve (permission of the approved action)', input({ action: 'approve', args: { requestId: 'r-1' }, operator: 'bob', secretKey: bob.secretKey }), 'ok'],
  ['valid without args', input({ action: 'halt', args: {} }), 'ok'],
  ['trust not loaded', input({}, { trust: undefined }), 'notLoaded'],
  ['account not listed', input({}, { trust: { ...trust, listed: false, operators: [] } }), 'unlisted'],
  ['unsigned', input({}, { auth: undefined }), 'unsigned'],
  ['unknown operator, even with a valid signature of its own', input({ operator: 'mallory', secretKey: mallory.secretKey }), 'unknownOperator'],
  ['action not permitted: the message lists the allowed ones', input({ action: 'disable', args: {}, operator: 'bob', secretKey: bob.secretKey }), 'notPermitted', /bob" may not disable \(allowed: halt, reset\)/],
  ['approve of an action the approver may not take', input({ action: 'approve', args: { requestId: 'r-1' }, operator: 'bob', secretKey: bob.secretKey }, { permission: 'disable' }), 'notPermitted'],
  ['expired 1 ms ago', input({ expiresAt: iso(atMs - 1) }), 'expired'],
  ['expiring exactly now', input({ expiresAt: at }), 'expired'],
  ['valid 1 ms more', input({ expiresAt: iso(atMs + 1) }), 'ok'],
  [`expiring ${MAX_SIGNED_VALIDITY_SECONDS} s + 1 s ahead`, input({ expiresAt: iso(atMs + (MAX_SIGNED_VALIDITY_SECONDS + 1) * 1000) }), 'tooFarAhead'],
  [`expiring ${MAX_SIGNED_VALIDITY_SECONDS} s + 1 ms ahead`, input({ expiresAt: iso(atMs + MAX_SIGNED_VALIDITY_SECONDS * 1000 + 1) }), 'tooFarAhead'],
  [`expiring exactly ${MAX_SIGNED_VALIDITY_SECONDS} s ahead (the limit)`, input({ expiresAt: iso(atMs + MAX_SIGNED_VALIDITY_SECONDS * 1000) }), 'ok'],
  ['expiresAt that is not an instant, even when signed', input({ expiresAt: 'never' }), 'badExpiry'],
  ['guard clock that is not an instant', input({}, { at: 'garbage' }), 'badExpiry'],
  ['replayed nonce', input({}, { usedNonces: { [base.nonce]: base.expiresAt } }), 'replayed'],
  ['nonce named like an Object.prototype member is not taken for a used one', input({ nonce: '__defineGetter__' }), 'ok'],
  ['nonce table full', input({}, { usedNonces: fullNonces(MAX_REMEMBERED_NONCES) }), 'nonceTableFull'],
  ['nonce table one short of full', input({}, { usedNonces: fullNonces(MAX_REMEMBERED_NONCES - 1) }), 'ok'],
  ["wrong key: bob's signature presented as alice's", input({ secretKey: bob.secretKey }), 'badSignature'],
  ['tampered reason', input({}, { reason: 'something else' }), 'badSignature'],
  ['tampered args (seq)', input({}, { args: { venue: 'binance-spot', seq: 43 } }), 'badSignature'],
  ['tampered args (venue)', input({}, { args: { venue: 'binance-usdm', seq: 42 } }), 'badSignature'],
  ['tampered args (field added)', input({}, { args: { venue: 'binance-spot', seq: 42, extra: true } }), 'badSignature'],
  ['args as a string instead of a number', input({}, { args: { venue: 'binance-spot', seq: '42' } }), 'badSignature'],
  ['tampered account: signed for another account', input({ accountId: 'acct-2' }, { accountId: 'acct-1' }), 'badSignature'],
  ['tampered action: a signed enable presented as disable', input({ action: 'enable', args: {} }, { action: 'disable', permission: 'disable' }), 'badSignature'],
  ['tampered operator field: alice signed a message naming bob, presented as alice', input({ operator: 'bob' }, { operator: 'alice' }), 'badSignature'],
  ['tampered nonce', input({}, { auth: { ...sign(base), nonce: 'nonce-fedcba9876543210' } }), 'badSignature'],
  ['tampered expiresAt', input({}, { auth: { ...sign(base), expiresAt: iso(atMs + 299_000) } }), 'badSignature'],
  ['garbage signature', input({}, { auth: { ...sign(base), signature: 'not base64!' } }), 'badSignature'],
];

describe('authenticateOperator', () => {
  // Rest parameters: a callback declaring more parameters than a row has items is given jest's `done` and never ends.
  test.each(table)('%s', (...[, given, expected, message]) => {
    const result = authenticateOperator(given);
    if (expected === 'ok') {
      expect(result).toEqual({ ok: true, operator: trust.operators.find((o) => o.id === given.operator), keyId: keyIdOf(trust.operators.find((o) => o.id === given.operator)!.publicKey) });
      return;
    }
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatch(REFUSALS[expected]);
    expect(result.error.startsWith(`${given.action}: `)).toBe(true);
    for (const [other, pattern] of Object.entries(REFUSALS)) if (other !== expected) expect(result.error).not.toMatch(pattern);
    if (message) expect(result.error).toMatch(message);
  });

  test('the table covers every refusal', () => {
    const covered = new Set(table.map(([, , expected]) => expected));
    expect(Object.keys(REFUSALS).filter((r) => !covered.has(r as Refusal))).toEqual([]);
  });

  test('the error is clipped even when the operator name is huge, and never throws', () => {
    const result = authenticateOperator(input({}, { operator: 'x'.repeat(100_000) }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.length).toBeLessThanOrEqual(400);
  });

  test('every action can be signed and checked', () => {
    for (const action of OPERATOR_ACTIONS) expect(authenticateOperator(input({ action, args: {} })).ok).toBe(true);
  });
});

describe('pruneNonces', () => {
  test('keeps exactly the nonces that expire after now', () => {
    const used: UsedNonces = { a: iso(atMs - 1), b: at, c: iso(atMs + 1), d: iso(atMs + 600_000) };
    expect(pruneNonces(used, at)).toEqual({ c: iso(atMs + 1), d: iso(atMs + 600_000) });
    expect(pruneNonces({}, at)).toEqual({});
    expect(used).toHaveProperty('a'); // the input is not changed
  });
});

describe('operatorAuthSchema', () => {
  test.each<[string, unknown, boolean]>([
    ['valid', { nonce: 'A'.repeat(16), expiresAt: at, signature: 'x' }, true],
    ['64-character nonce', { nonce: 'A'.repeat(64), expiresAt: at, signature: 'x' }, true],
    ['15-character nonce', { nonce: 'A'.repeat(15), expiresAt: at, signature: 'x' }, false],
    ['65-character nonce', { nonce: 'A'.repeat(65), expiresAt: at, signature: 'x' }, false],
    ['nonce with a dot', { nonce: `${'A'.repeat(16)}.`, expiresAt: at, signature: 'x' }, false],
    ['expiresAt not a date', { nonce: 'A'.repeat(16), expiresAt: 'soon', signature: 'x' }, false],
    ['huge signature', { nonce: 'A'.repeat(16), expiresAt: at, signature: 'x'.repeat(201) }, false],
    ['unknown field', { nonce: 'A'.repeat(16), expiresAt: at, signature: 'x', extra: 1 }, false],
    ['not an object', 'auth', false],
  ])('%s', (_label, raw, ok) => {
    expect(validate(operatorAuthSchema, raw, 'auth').ok).toBe(ok);
  });
});

describe('authenticateReport', () => {
  const report = { venue: 'binance-spot', seq: 7, asOf: at, balances: { USDT: '9650.00', BTC: '0.1' } };
  const signReport = (r: Record<string, unknown>, secretKey = mmBot.secretKey, accountId = 'acct-1') => signEd25519(secretKey, botReportMessage(accountId, r));
  const signed = (r: Record<string, unknown> = report, bot = 'mm-bot', signature = signReport(r)) => ({ ...r, auth: { bot, signature } });

  test('valid: accepted with the bot id', () => {
    expect(authenticateReport(trust, 'acct-1', signed(), 'binance-spot')).toEqual({ ok: true, bot: 'mm-bot' });
  });

  test.each<[string, TrustView | undefined, Record<string, unknown>, string, RegExp | 'ok']>([
    ['trust not loaded', undefined, signed(), 'binance-spot', /has not loaded its worker's trust anchor yet/],
    ['bots null: unsigned accepted', { ...trust, bots: null }, report, 'binance-spot', 'ok'],
    ['bots null: a signed one accepted too (auth not checked)', { ...trust, bots: null }, signed(report, 'nobody', 'garbage'), 'binance-spot', 'ok'],
    ['unsigned when bots are listed', trust, report, 'binance-spot', /report.auth: is required/],
    ['bots listed but empty: unsigned refused', { ...trust, bots: [] }, report, 'binance-spot', /report.auth: is required/],
    ['auth of the wrong shape', trust, { ...report, auth: 'mm-bot' }, 'binance-spot', /report.auth/],
    ['auth with an unknown field', trust, { ...report, auth: { bot: 'mm-bot', signature: signReport(report), key: mallory.publicKey } }, 'binance-spot', /report.auth/],
    ['unknown bot', trust, signed(report, 'other-bot', signReport(report, mallory.secretKey)), 'binance-spot', /"other-bot" is not a bot of account acct-1/],
    ['bot not bound to the venue', trust, signed({ ...report, venue: 'binance-usdm' }), 'binance-usdm', /may not report for venue "binance-usdm" \(its venues: binance-spot\)/],
    ['changed balance after signing', trust, { ...signed(), balances: { USDT: '9999.00', BTC: '0.1' } }, 'binance-spot', /report.auth.signature: does not match bot "mm-bot"/],
    ['changed seq after signing', trust, { ...signed(), seq: 8 }, 'binance-spot', /report.auth.signature/],
    ['field added after signing', trust, { ...signed(), prices: { BTC: '1' } }, 'binance-spot', /report.auth.signature/],
    ['field removed after signing', trust, (({ asOf: _asOf, ...r }) => r)(signed() as typeof report & { auth: unknown }), 'binance-spot', /report.auth.signature/],
    ['signed for another account', trust, signed(report, 'mm-bot', signReport(report, mmBot.secretKey, 'acct-2')), 'binance-spot', /report.auth.signature/],
    ["signed by another key under the bot's name", trust, signed(report, 'mm-bot', signReport(report, mallory.secretKey)), 'binance-spot', /report.auth.signature/],
    ['an operator action signature presented as a report signature', trust, signed(report, 'mm-bot', sign({ ...base, secretKey: mmBot.secretKey }).signature), 'binance-spot', /report.auth.signature/],
  ])('%s', (_label, view, given, venue, expected) => {
    const result = authenticateReport(view, 'acct-1', given, venue);
    if (expected === 'ok') expect(result).toEqual({ ok: true, bot: null });
    else {
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toMatch(expected);
    }
  });

  test('parseBotAuth: shape only', () => {
    expect(parseBotAuth({ bot: 'mm-bot', signature: 'x' })).toEqual({ ok: true, value: { bot: 'mm-bot', signature: 'x' } });
    expect(parseBotAuth({ bot: '', signature: 'x' }).ok).toBe(false);
    expect(parseBotAuth({ bot: 'b'.repeat(65), signature: 'x' }).ok).toBe(false);
    expect(parseBotAuth({ bot: 'mm-bot' }).ok).toBe(false);
    expect(parseBotAuth(null).ok).toBe(false);
  });
});

describe('parseTrustView', () => {
  test('accepts a view as the anchor makes it, and a view of an unlisted account', () => {
    expect(parseTrustView(trust)).toEqual({ ok: true, value: trust });
    const unlisted: TrustView = { accountId: 'x', listed: false, venues: [], operators: [], approval: null, bots: null, source: 'inline' };
    expect(parseTrustView(unlisted)).toEqual({ ok: true, value: unlisted });
  });

  const op = trust.operators[0]!;
  test.each<[string, unknown]>([
    ['null', null],
    ['an array', [trust]],
    ['a string', JSON.stringify(trust)],
    ['listed as a string', { ...trust, listed: 'true' }],
    ['accountId a number', { ...trust, accountId: 1 }],
    ['missing operators', (({ operators: _o, ...t }) => t)(trust)],
    ['operators an object', { ...trust, operators: { alice: op } }],
    ['unknown action name', { ...trust, operators: [{ ...op, actions: ['reset', 'withdraw'] }] }],
    ['approve as a permission', { ...trust, operators: [{ ...op, actions: ['approve'] }] }],
    ['unknown approval action', { ...trust, approval: { actions: ['configure'], windowSeconds: 900 } }],
    ['approval window too short', { ...trust, approval: { actions: ['reset'], windowSeconds: 9 } }],
    ['approval window fractional', { ...trust, approval: { actions: ['reset'], windowSeconds: 900.5 } }],
    ['approval undefined (must be null)', { ...trust, approval: undefined }],
    ['bots a string', { ...trust, bots: 'mm-bot' }],
    ['huge operators array', { ...trust, operators: Array.from({ length: 101 }, (_, i) => ({ ...op, id: `op${i}` })) }],
    ['huge venues array', { ...trust, venues: Array.from({ length: 65 }, (_, i) => `v${i}`) }],
    ['huge bots array', { ...trust, bots: Array.from({ length: 101 }, (_, i) => ({ id: `b${i}`, publicKey: mmBot.publicKey, venues: [] })) }],
    ['huge actions array', { ...trust, operators: [{ ...op, actions: Array.from({ length: 11 }, () => 'halt') }] }],
    ['huge public key string', { ...trust, operators: [{ ...op, publicKey: 'A'.repeat(101) }] }],
    ['huge source', { ...trust, source: 's'.repeat(301) }],
    ['empty operator id', { ...trust, operators: [{ ...op, id: '' }] }],
  ])('refuses %s', (_label, raw) => {
    const parsed = parseTrustView(raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error).toMatch(/^trust view: /);
      expect(parsed.error.length).toBeLessThanOrEqual(400);
    }
  });
});
