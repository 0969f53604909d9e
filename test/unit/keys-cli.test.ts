/**
 * `breaker keygen` and `breaker sign` (src/cli/keys.ts) on a fresh commander program, and the signing helpers they
 * use (src/trust/sign-request.ts): what keygen writes and prints, and that what sign prints is a request the guard's
 * own check accepts.
 */
import { Command } from 'commander';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SIGNABLE_ACTIONS, registerKeyCommands } from '../../src/cli/keys';
import { newEd25519KeyPair } from '../../src/domain/signing';
import { MAX_SIGNED_VALIDITY_SECONDS, OperatorActionName, TrustView, authenticateOperator, authenticateReport } from '../../src/domain/trust';
import { readKeyFile, signBotReport, signOperatorRequest } from '../../src/trust/sign-request';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'breaker-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `breaker <argv>` and returns what it printed and the exit code it set (0 when none). */
async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  let code = 0;
  const program = new Command('breaker').exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  registerKeyCommands(program, { out: (l) => out.push(l), err: (l) => err.push(l), exit: (c) => (code = c) });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    // commander's own usage errors (exitOverride turns its exit into a throw)
    code = (e as { exitCode?: number }).exitCode ?? 99;
  }
  return { out: out.join('\n'), err: err.join('\n'), code };
}

const trustFor = (id: string, publicKey: string, actions: OperatorActionName[] = ['halt', 'reset', 'disable', 'enable', 'resyncSeq']): TrustView => ({
  accountId: 'acct-1',
  listed: true,
  venues: ['binance-spot'],
  operators: [{ id, publicKey, actions }],
  approval: null,
  bots: null,
  source: 'test',
});

describe('keygen', () => {
  test('writes a 0600 key file, prints only the public key and the anchor snippet', async () => {
    const file = join(dir, 'alice.key');
    const r = await run(['keygen', '--out', file, '--operator', 'alice']);
    expect(r.code).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const key = JSON.parse(readFileSync(file, 'utf8'));
    expect(Object.keys(key).sort()).toEqual(['id', 'kind', 'publicKey', 'secretKey']);
    expect(key).toMatchObject({ kind: 'portfolio-breaker-ed25519', id: 'alice' });
    expect(readKeyFile(file)).toEqual(key);

    expect(r.out.split('\n')).toEqual([`publicKey ${key.publicKey}`, JSON.stringify({ id: 'alice', publicKey: key.publicKey })]);
    expect(JSON.parse(r.out.split('\n')[1]!)).toEqual({ id: 'alice', publicKey: key.publicKey });
    // The secret appears nowhere on the screen, in base64 or any other spelling of it.
    const secret = Buffer.from(key.secretKey, 'base64');
    for (const text of [r.out, r.err]) {
      for (const spelling of [key.secretKey, secret.toString('hex'), secret.toString('base64url'), key.secretKey.slice(0, 16)]) expect(text).not.toContain(spelling);
    }
  });

  test('refuses to overwrite an existing file, which stays as it was', async () => {
    const file = join(dir, 'alice.key');
    writeFileSync(file, 'precious', { mode: 0o600 });
    const r = await run(['keygen', '--out', file, '--operator', 'alice']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/already exists; keygen never overwrites a key file/);
    expect(r.out).toBe('');
    expect(readFileSync(file, 'utf8')).toBe('precious');
  });

  test('a bot key, and an id the anchor would refuse', async () => {
    const ok = await run(['keygen', '--out', join(dir, 'bot.key'), '--bot', 'mm-bot']);
    expect(ok.code).toBe(0);
    expect(readKeyFile(join(dir, 'bot.key')).id).toBe('mm-bot');
    expect(ok.err).toMatch(/"bots"/);
    const bad = await run(['keygen', '--out', join(dir, 'x.key'), '--operator', 'alice smith']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/not a trust anchor id/);
    expect(() => statSync(join(dir, 'x.key'))).toThrow();
  });

  test('--operator and --bot together are refused', async () => {
    const r = await run(['keygen', '--out', join(dir, 'x.key'), '--operator', 'a', '--bot', 'b']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/cannot be used with/);
  });
});

describe('sign', () => {
  const at = new Date();
  async function keyFile(id = 'alice') {
    const file = join(dir, `${id}.key`);
    expect((await run(['keygen', '--out', file, '--operator', id])).code).toBe(0);
    return { file, ...readKeyFile(file) };
  }

  test('the printed request is accepted by the guard\'s own check', async () => {
    const key = await keyFile();
    const r = await run(['sign', 'acct-1', 'resyncSeq', '--key', key.file, '--reason', 'bot restarted from 0', '--args', '{"venue": "binance-spot", "seq": 42}']);
    expect(r.code).toBe(0);
    expect(r.out.split('\n')).toHaveLength(1);
    const request = JSON.parse(r.out);
    const { operator, reason, auth, ...args } = request;
    expect({ operator, reason, args }).toEqual({ operator: 'alice', reason: 'bot restarted from 0', args: { venue: 'binance-spot', seq: 42 } });
    expect(auth.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const ttl = Date.parse(auth.expiresAt) - at.getTime();
    expect(ttl).toBeGreaterThan(290_000);
    expect(ttl).toBeLessThanOrEqual(310_000);

    const check = (over: Partial<Parameters<typeof authenticateOperator>[0]> = {}) =>
      authenticateOperator({ trust: trustFor('alice', key.publicKey), accountId: 'acct-1', action: 'resyncSeq', permission: 'resyncSeq', args, operator, reason, auth, usedNonces: {}, at: new Date().toISOString(), ...over });
    expect(check()).toMatchObject({ ok: true, operator: { id: 'alice' } });
    // and only for what was signed
    expect(check({ accountId: 'acct-2' }).ok).toBe(false);
    expect(check({ args: { venue: 'binance-spot', seq: 43 } }).ok).toBe(false);
    expect(check({ trust: trustFor('alice', newEd25519KeyPair().publicKey) }).ok).toBe(false);
  });

  test('every action, default args, --operator overriding the key file\'s id, --ttl', async () => {
    const key = await keyFile('ops-key');
    for (const action of SIGNABLE_ACTIONS) {
      const r = await run(['sign', 'acct-1', action, '--key', key.file, '--reason', 'drill', '--operator', 'alice', '--ttl', String(MAX_SIGNED_VALIDITY_SECONDS)]);
      expect(r.code).toBe(0);
      const { operator, reason, auth, ...args } = JSON.parse(r.out);
      expect(operator).toBe('alice');
      expect(args).toEqual({});
      expect(Date.parse(auth.expiresAt) - Date.now()).toBeGreaterThan((MAX_SIGNED_VALIDITY_SECONDS - 10) * 1000);
      const permission = action === 'approve' ? 'reset' : action;
      expect(
        authenticateOperator({ trust: trustFor('alice', key.publicKey), accountId: 'acct-1', action, permission, args, operator, reason, auth, usedNonces: {}, at: new Date().toISOString() }).ok,
      ).toBe(true);
    }
  });

  test.each([['601'], ['0'], ['-5'], ['1.5'], ['ten']])('--ttl %s refused', async (ttl) => {
    const key = await keyFile();
    const r = await run(['sign', 'acct-1', 'reset', '--key', key.file, '--reason', 'x', '--ttl', ttl]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(new RegExp(`whole seconds from 1 to ${MAX_SIGNED_VALIDITY_SECONDS}`));
    expect(r.out).toBe('');
  });

  test.each([[0o644], [0o640], [0o604], [0o660], [0o700]])('a key file with mode %o is refused if others can read it', async (mode) => {
    const key = await keyFile();
    chmodSync(key.file, mode);
    const r = await run(['sign', 'acct-1', 'reset', '--key', key.file, '--reason', 'x']);
    if ((mode & 0o077) === 0) {
      expect(r.code).toBe(0);
      return;
    }
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`permissions 0${mode.toString(8)} are too open.*chmod 600`));
    expect(r.out).toBe('');
  });

  test('unknown action refused, listing the allowed ones', async () => {
    const key = await keyFile();
    const r = await run(['sign', 'acct-1', 'withdraw', '--key', key.file, '--reason', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown action "withdraw"; allowed: reset, disable, enable, halt, resyncSeq, approve');
  });

  test.each<[string, string, RegExp]>([
    ['not JSON', '{venue:', /--args: not valid JSON/],
    ['an array', '[1]', /--args: must be a JSON object/],
    ['a reserved field', '{"reason": "other"}', /--args: reason belong to the request itself/],
  ])('--args %s refused', async (_label, args, message) => {
    const key = await keyFile();
    const r = await run(['sign', 'acct-1', 'resyncSeq', '--key', key.file, '--reason', 'x', '--args', args]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });

  test('a missing key file, and a file that is not a key file', async () => {
    const missing = await run(['sign', 'acct-1', 'reset', '--key', join(dir, 'nope.key'), '--reason', 'x']);
    expect(missing.err).toMatch(/key file .*nope\.key: cannot be read \(ENOENT\)/);
    const other = join(dir, 'other.json');
    writeFileSync(other, '{"kind": "something else"}', { mode: 0o600 });
    expect((await run(['sign', 'acct-1', 'reset', '--key', other, '--reason', 'x'])).err).toMatch(/not a portfolio-breaker key file/);
    const { secretKey } = newEd25519KeyPair();
    writeFileSync(other, JSON.stringify({ kind: 'portfolio-breaker-ed25519', id: 'a', secretKey, publicKey: newEd25519KeyPair().publicKey }), { mode: 0o600 });
    expect((await run(['sign', 'acct-1', 'reset', '--key', other, '--reason', 'x'])).err).toMatch(/its publicKey is not the secretKey's/);
    writeFileSync(other, JSON.stringify({ kind: 'portfolio-breaker-ed25519', id: 'a', secretKey: 'short', publicKey: 'x' }), { mode: 0o600 });
    expect((await run(['sign', 'acct-1', 'reset', '--key', other, '--reason', 'x'])).err).toMatch(/secretKey is not a base64 Ed25519 secret key/);
  });
});

describe('signOperatorRequest and signBotReport', () => {
  const { secretKey, publicKey } = newEd25519KeyPair();
  const now = new Date('2026-01-01T00:00:00.000Z');

  test('the request shape, a fresh nonce each time, and expiry from now', () => {
    const sign = () => signOperatorRequest({ accountId: 'acct-1', action: 'halt', operator: 'alice', reason: 'fat finger', secretKey, ttlSeconds: 60, now });
    const a = sign();
    const b = sign();
    expect(Object.keys(a)).toEqual(['operator', 'reason', 'auth']);
    expect(a.auth).toMatchObject({ expiresAt: '2026-01-01T00:01:00.000Z' });
    expect((a.auth as { nonce: string }).nonce).not.toBe((b.auth as { nonce: string }).nonce);
    const { operator, reason, auth } = a as { operator: string; reason: string; auth: { nonce: string; expiresAt: string; signature: string } };
    expect(authenticateOperator({ trust: trustFor('alice', publicKey), accountId: 'acct-1', action: 'halt', permission: 'halt', args: {}, operator, reason, auth, usedNonces: {}, at: now.toISOString() }).ok).toBe(true);
  });

  test.each([[0], [MAX_SIGNED_VALIDITY_SECONDS + 1], [1.5], [Number.NaN]])('ttl %s refused', (ttlSeconds) => {
    expect(() => signOperatorRequest({ accountId: 'a', action: 'halt', operator: 'alice', reason: 'r', secretKey, ttlSeconds })).toThrow(/ttl: must be a whole number of seconds/);
  });

  test('args naming operator, reason or auth are refused', () => {
    for (const k of ['operator', 'reason', 'auth']) {
      expect(() => signOperatorRequest({ accountId: 'a', action: 'halt', operator: 'alice', reason: 'r', secretKey, args: { [k]: 'x' } })).toThrow(`args: ${k} belong to the request itself`);
    }
  });

  test('a signed report is accepted by the guard\'s check; a report re-signed replaces its old auth', () => {
    const trust: TrustView = { ...trustFor('alice', publicKey), bots: [{ id: 'mm-bot', publicKey, venues: ['binance-spot'] }] };
    const report = { venue: 'binance-spot', seq: 3, balances: { USDT: '100.00' } };
    const signed = signBotReport('acct-1', report, 'mm-bot', secretKey);
    expect(authenticateReport(trust, 'acct-1', signed, 'binance-spot')).toEqual({ ok: true, bot: 'mm-bot' });
    const resigned = signBotReport('acct-1', { ...signed, seq: 4 }, 'mm-bot', secretKey);
    expect(authenticateReport(trust, 'acct-1', resigned, 'binance-spot')).toEqual({ ok: true, bot: 'mm-bot' });
    expect(authenticateReport(trust, 'acct-1', { ...signed, seq: 4 }, 'binance-spot').ok).toBe(false);
  });
});
