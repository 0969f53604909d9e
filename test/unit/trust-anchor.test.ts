/**
 * The worker's trust anchor (src/trust/anchor.ts): what a file must say, how each mistake is named, how the file is
 * re-read when it changes, and how its venue bindings are checked against the worker's venue specs.
 */
import { mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newEd25519KeyPair } from '../../src/domain/signing';
import { VenueSpec } from '../../src/exchanges/venues';
import { anchorVenueProblems, loadTrustAnchor, parseTrustAnchor, trustAnchorFrom } from '../../src/trust/anchor';

const alice = newEd25519KeyPair().publicKey;
const bob = newEd25519KeyPair().publicKey;
const carol = newEd25519KeyPair().publicKey;
const bot = newEd25519KeyPair().publicKey;

/** The example of the module's documentation, with real keys. */
const example = () => ({
  accounts: {
    'acct-1': {
      venues: ['binance-spot', 'binance-usdm'],
      operators: [
        { id: 'alice', publicKey: alice, actions: ['halt', 'reset', 'disable', 'enable', 'resyncSeq'] },
        { id: 'bob', publicKey: bob, actions: ['halt', 'reset'] },
      ],
      approval: { actions: ['reset'], windowSeconds: 900 },
      bots: [{ id: 'mm-bot', publicKey: bot, venues: ['binance-spot'] }],
    },
  },
});
type Example = ReturnType<typeof example>;
type Account = Example['accounts']['acct-1'];
const withAccount = (change: (a: Account) => unknown) => {
  const e = example();
  return { accounts: { 'acct-1': change(e.accounts['acct-1']) } };
};

describe('parseTrustAnchor', () => {
  test('accepts the documented example; approval of disable too once a second operator may disable', () => {
    expect(parseTrustAnchor(example(), 'test').viewOf('acct-1').approval).toEqual({ actions: ['reset'], windowSeconds: 900 });
    const content = withAccount((a) => ({ ...a, approval: { actions: ['reset', 'disable'], windowSeconds: 900 }, operators: [a.operators[0], { ...a.operators[1], actions: ['halt', 'reset', 'disable'] }] }));
    const anchor = parseTrustAnchor(content, 'test');
    expect(anchor.source).toBe('test');
    expect(anchor.accounts()).toEqual(['acct-1']);
    expect(anchor.viewOf('acct-1')).toEqual({
      accountId: 'acct-1',
      listed: true,
      venues: ['binance-spot', 'binance-usdm'],
      operators: [example().accounts['acct-1'].operators[0], { ...example().accounts['acct-1'].operators[1], actions: ['halt', 'reset', 'disable'] }],
      approval: { actions: ['reset', 'disable'], windowSeconds: 900 },
      bots: [{ id: 'mm-bot', publicKey: bot, venues: ['binance-spot'] }],
      source: 'test',
    });
  });

  test('optional parts: no approval, no bots (reports unsigned), default approval window', () => {
    const minimal = parseTrustAnchor({ accounts: { a: { venues: ['v'], operators: [] } } }, 't');
    expect(minimal.viewOf('a')).toMatchObject({ listed: true, operators: [], approval: null, bots: null });
    const defaulted = parseTrustAnchor(withAccount((a) => ({ ...a, approval: { actions: ['reset'] } })), 't');
    expect(defaulted.viewOf('acct-1').approval).toEqual({ actions: ['reset'], windowSeconds: 900 });
  });

  test('an unlisted account gets a view with no operators, including names of Object.prototype members', () => {
    const anchor = parseTrustAnchor(example(), 't');
    for (const id of ['acct-2', 'constructor', '__proto__', 'toString']) {
      expect(anchor.viewOf(id)).toEqual({ accountId: id, listed: false, venues: [], operators: [], approval: null, bots: null, source: 't' });
    }
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['bad key (not base64)', withAccount((a) => ({ ...a, operators: [{ ...a.operators[0], publicKey: 'not-a-key' }, a.operators[1]] })), /accounts\.acct-1\.operators\.0\.publicKey: must be a base64 Ed25519 public key/],
    ['bad key (31 bytes)', withAccount((a) => ({ ...a, operators: [{ ...a.operators[0], publicKey: Buffer.alloc(31, 1).toString('base64') }, a.operators[1]] })), /operators\.0\.publicKey/],
    ['bad bot key', withAccount((a) => ({ ...a, bots: [{ ...a.bots[0], publicKey: '' }] })), /accounts\.acct-1\.bots\.0\.publicKey/],
    ['duplicate operator', withAccount((a) => ({ ...a, operators: [...a.operators, { id: 'alice', publicKey: carol, actions: ['halt'] }] })), /accounts\.acct-1\.operators: operator "alice" appears twice/],
    ['same key for two operators', withAccount((a) => ({ ...a, operators: [a.operators[0], { ...a.operators[1], publicKey: alice }] })), /accounts\.acct-1\.operators\.1: the same public key serves two operators/],
    [
      'same key for two operators, the second spelled with non-zero unused base64 bits',
      withAccount((a) => ({ ...a, operators: [a.operators[0], { ...a.operators[1], publicKey: respell(alice) }] })),
      /operators\.1\.publicKey: must be a base64 Ed25519 public key/,
    ],
    ['approval with one eligible operator', withAccount((a) => ({ ...a, approval: { actions: ['disable'], windowSeconds: 900 } })), /accounts\.acct-1\.approval: "disable" needs a second approver, but only 1 operator\(s\) may disable/],
    ['approval with no eligible operator', withAccount((a) => ({ ...a, operators: [], approval: { actions: ['reset'] } })), /"reset" needs a second approver, but only 0 operator/],
    ['approval of an action that cannot need one', withAccount((a) => ({ ...a, approval: { actions: ['halt'] } })), /accounts\.acct-1\.approval\.actions\.0/],
    ['approval window too short', withAccount((a) => ({ ...a, approval: { actions: ['reset'], windowSeconds: 5 } })), /approval\.windowSeconds/],
    ['bot venue not one of the account\'s', withAccount((a) => ({ ...a, bots: [{ ...a.bots[0], venues: ['kraken'] }] })), /accounts\.acct-1\.bots\.0\.venues: "kraken" is not one of the account's venues \(binance-spot, binance-usdm\)/],
    ['bot with no venue', withAccount((a) => ({ ...a, bots: [{ ...a.bots[0], venues: [] }] })), /accounts\.acct-1\.bots\.0\.venues/],
    [
      'venue bound to two accounts',
      { accounts: { ...example().accounts, 'acct-2': { venues: ['binance-usdm'], operators: [] } } },
      /accounts\.acct-2\.venues: venue "binance-usdm" is already bound to account "acct-1"/,
    ],
    ['unknown field at the top', { ...example(), version: 2 }, /version|Unrecognized key/i],
    ['unknown field in an account', withAccount((a) => ({ ...a, capital: '10000' })), /accounts\.acct-1.*capital/],
    ['unknown field in an operator (a secret pasted by mistake)', withAccount((a) => ({ ...a, operators: [{ ...a.operators[0], secretKey: 'x' }, a.operators[1]] })), /accounts\.acct-1\.operators\.0.*secretKey/],
    ['unknown field in a bot', withAccount((a) => ({ ...a, bots: [{ ...a.bots[0], account: 'acct-1' }] })), /accounts\.acct-1\.bots\.0.*account/],
    ['unknown action', withAccount((a) => ({ ...a, operators: [{ ...a.operators[0], actions: ['withdraw'] }, a.operators[1]] })), /accounts\.acct-1\.operators\.0\.actions\.0/],
    ['operator with no action', withAccount((a) => ({ ...a, operators: [{ ...a.operators[0], actions: [] }, a.operators[1]] })), /accounts\.acct-1\.operators\.0\.actions/],
    ['bad operator id', withAccount((a) => ({ ...a, operators: [{ ...a.operators[0], id: 'alice smith' }, a.operators[1]] })), /accounts\.acct-1\.operators\.0\.id/],
    ['bad account id', { accounts: { 'acct 1': example().accounts['acct-1'] } }, /account ids are 1-64 characters of A-Z a-z 0-9 _ \. -/],
    ['account id too long', { accounts: { ['a'.repeat(65)]: example().accounts['acct-1'] } }, /account ids are 1-64 characters/],
    ['bad venue id', withAccount((a) => ({ ...a, venues: ['Binance Spot'] })), /accounts\.acct-1\.venues\.0/],
    ['no venues', withAccount((a) => ({ ...a, venues: [] })), /accounts\.acct-1\.venues/],
    ['accounts missing', {}, /accounts/],
    ['not an object', 'accounts', /Invalid trust anchor/],
  ];
  test.each(bad)('refuses %s, naming the field', (...[, content, message]) => {
    expect(() => parseTrustAnchor(content, 'file /etc/trust.json')).toThrow(/^Invalid trust anchor \(file \/etc\/trust\.json\): /);
    expect(() => parseTrustAnchor(content, 'file /etc/trust.json')).toThrow(message);
  });

  test('the "*" entry serves every account not listed by name, but is not one of accounts()', () => {
    const anchor = parseTrustAnchor({ accounts: { ...example().accounts, '*': { venues: [], operators: [{ id: 'carol', publicKey: carol, actions: ['halt'] }] } } }, 't');
    expect(anchor.hasAnyAccount).toBe(true);
    expect(anchor.accounts()).toEqual(['acct-1']);
    expect(anchor.viewOf('made-up').operators.map((o) => o.id)).toEqual(['carol']);
    expect(anchor.viewOf('acct-1').operators.map((o) => o.id)).toEqual(['alice', 'bob']);
    expect(parseTrustAnchor(example(), 't').hasAnyAccount).toBe(false);
  });

  test('trustAnchorFrom: the same checks, with a digest of the content in the source', () => {
    expect(trustAnchorFrom(example()).source).toMatch(/^inline sha256:[0-9a-f]{12}$/);
    expect(trustAnchorFrom(example(), 'demo').source).toBe(trustAnchorFrom(example(), 'demo').source);
    expect(() => trustAnchorFrom({ accounts: { 'acct 1': {} } })).toThrow(/Invalid trust anchor \(inline sha256:/);
  });
});

/** The same 32-byte key, with the unused low bits of its last base64 character set: Buffer decodes both alike. */
function respell(publicKey: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const spelled = `${publicKey.slice(0, 42)}${alphabet[alphabet.indexOf(publicKey[42]!) | 1]}=`;
  expect(Buffer.from(spelled, 'base64').equals(Buffer.from(publicKey, 'base64'))).toBe(true);
  return spelled;
}

describe('loadTrustAnchor', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trust-anchor-'));
    path = join(dir, 'trust.json');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    jest.restoreAllMocks();
  });
  /** Writes the file and sets its mtime explicitly, so that a rewrite within the same millisecond is still seen. */
  const write = (text: string, mtimeSeconds: number) => {
    writeFileSync(path, text);
    utimesSync(path, mtimeSeconds, mtimeSeconds);
  };

  test('unset variable: the error names BREAKER_TRUST_FILE', () => {
    expect(() => loadTrustAnchor({})).toThrow(/set BREAKER_TRUST_FILE/);
    expect(() => loadTrustAnchor({ BREAKER_TRUST_FILE: '' })).toThrow(/BREAKER_TRUST_FILE/);
  });

  test('missing file', () => {
    expect(() => loadTrustAnchor({ BREAKER_TRUST_FILE: path })).toThrow(`BREAKER_TRUST_FILE ${path}: cannot be read (ENOENT)`);
  });

  test('invalid JSON', () => {
    write('{ "accounts": ', 1_000_000);
    expect(() => loadTrustAnchor({ BREAKER_TRUST_FILE: path })).toThrow(`BREAKER_TRUST_FILE ${path}: not valid JSON`);
  });

  test('invalid content names the file', () => {
    write(JSON.stringify({ accounts: { 'acct 1': {} } }), 1_000_000);
    expect(() => loadTrustAnchor({ BREAKER_TRUST_FILE: path })).toThrow(new RegExp(`^Invalid trust anchor \\(file ${path} sha256:[0-9a-f]{12}\\)`));
  });

  test('read again after the file changes: a new operator is seen, a removed one is gone', () => {
    write(JSON.stringify(example()), 1_000_000);
    const anchor = loadTrustAnchor({ BREAKER_TRUST_FILE: path });
    const firstSource = anchor.source;
    expect(firstSource).toMatch(new RegExp(`^file ${path} sha256:[0-9a-f]{12}$`));
    expect(anchor.viewOf('acct-1').operators.map((o) => o.id)).toEqual(['alice', 'bob']);

    // Bob's key is revoked and carol added.
    write(JSON.stringify(withAccount((a) => ({ ...a, approval: undefined, operators: [a.operators[0], { id: 'carol', publicKey: carol, actions: ['halt'] }] }))), 1_000_010);
    expect(anchor.viewOf('acct-1').operators.map((o) => o.id)).toEqual(['alice', 'carol']);
    expect(anchor.source).not.toBe(firstSource);

    // A new account appears in accounts() too.
    write(JSON.stringify({ accounts: { ...example().accounts, 'acct-2': { venues: ['kraken'], operators: [] } } }), 1_000_020);
    expect(anchor.accounts()).toEqual(['acct-1', 'acct-2']);
  });

  test('a broken edit or a deleted file keeps the last valid content, and says so', () => {
    const errors = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    write(JSON.stringify(example()), 1_000_000);
    const anchor = loadTrustAnchor({ BREAKER_TRUST_FILE: path });
    const source = anchor.source;

    write('{ "accounts": { "acct-1": ', 1_000_010);
    expect(anchor.viewOf('acct-1').operators.map((o) => o.id)).toEqual(['alice', 'bob']);
    expect(anchor.source).toBe(source);
    expect(errors).toHaveBeenCalledWith(expect.stringMatching(/^trust anchor: keeping the last valid content: BREAKER_TRUST_FILE .*: not valid JSON/));

    write(JSON.stringify(withAccount((a) => ({ ...a, operators: [a.operators[0], { ...a.operators[1], publicKey: alice }] }))), 1_000_020);
    expect(anchor.viewOf('acct-1').operators.map((o) => o.publicKey)).toEqual([alice, bob]);
    expect(errors).toHaveBeenLastCalledWith(expect.stringMatching(/the same public key serves two operators/));

    unlinkSync(path);
    expect(anchor.accounts()).toEqual(['acct-1']);
    expect(errors).toHaveBeenLastCalledWith(expect.stringMatching(/cannot be read \(ENOENT\)/));

    // A fixed file is taken again.
    write(JSON.stringify(withAccount((a) => ({ ...a, approval: undefined, operators: [a.operators[1]] }))), 1_000_030);
    expect(anchor.viewOf('acct-1').operators.map((o) => o.id)).toEqual(['bob']);
  });
});

describe('anchorVenueProblems', () => {
  const spec = (s: Partial<VenueSpec> & Pick<VenueSpec, 'id'>): VenueSpec => ({ exchange: 'binance', timeoutMs: 10_000, ...s });
  const anchor = trustAnchorFrom({
    accounts: {
      'acct-1': { venues: ['binance-spot', 'binance-usdm'], operators: [] },
      'acct-2': { venues: ['paper-spot'], operators: [] },
    },
  });

  test.each<[string, VenueSpec[], string[]]>([
    [
      'live venues bound to their accounts, a paper venue without an account',
      [spec({ id: 'binance-spot', account: 'acct-1' }), spec({ id: 'binance-usdm', exchange: 'binanceusdm', mode: 'live', account: 'acct-1' }), spec({ id: 'paper-spot', routeTo: 'http://127.0.0.1:9000' })],
      [],
    ],
    ['a demo venue bound to its account', [spec({ id: 'binance-spot', mode: 'demo', account: 'acct-1' }), spec({ id: 'binance-usdm', account: 'acct-1' }), spec({ id: 'paper-spot', mode: 'paper' })], []],
    [
      'a paper venue bound to another account is not a problem (paper venues serve any account)',
      [spec({ id: 'binance-spot', account: 'acct-1' }), spec({ id: 'binance-usdm', account: 'acct-1' }), spec({ id: 'paper-spot', routeTo: 'http://127.0.0.1:9000', account: 'acct-1' })],
      [],
    ],
    [
      'a venue the worker does not configure',
      [spec({ id: 'binance-spot', account: 'acct-1' }), spec({ id: 'paper-spot', mode: 'paper' })],
      ['trust anchor: account "acct-1" lists venue "binance-usdm", which BREAKER_VENUES does not configure'],
    ],
    [
      'a live venue bound to another account',
      [spec({ id: 'binance-spot', account: 'acct-2' }), spec({ id: 'binance-usdm', account: 'acct-1' }), spec({ id: 'paper-spot', mode: 'paper' })],
      ['trust anchor: account "acct-1" lists venue "binance-spot", but the venue is bound to account "acct-2"'],
    ],
    [
      'a live venue bound to no account, and a demo one likewise',
      [spec({ id: 'binance-spot' }), spec({ id: 'binance-usdm', mode: 'demo' }), spec({ id: 'paper-spot', mode: 'paper' })],
      [
        'trust anchor: account "acct-1" lists venue "binance-spot", but the venue (live) is bound to no account',
        'trust anchor: account "acct-1" lists venue "binance-usdm", but the venue (demo) is bound to no account',
      ],
    ],
    ['no venues configured at all', [], ['binance-spot', 'binance-usdm'].map((v) => `trust anchor: account "acct-1" lists venue "${v}", which BREAKER_VENUES does not configure`).concat('trust anchor: account "acct-2" lists venue "paper-spot", which BREAKER_VENUES does not configure')],
  ])('%s', (...[, specs, problems]) => {
    expect(anchorVenueProblems(anchor, specs)).toEqual(problems);
  });

  test('the "*" entry is refused when the worker has a live or demo venue, accepted with paper venues only', () => {
    const rehearsal = trustAnchorFrom({ accounts: { '*': { venues: [], operators: [] } } });
    expect(anchorVenueProblems(rehearsal, [spec({ id: 'paper-spot', mode: 'paper' })])).toEqual([]);
    expect(anchorVenueProblems(rehearsal, [spec({ id: 'paper-spot', mode: 'paper' }), spec({ id: 'binance-spot', mode: 'demo', account: 'a' })])).toEqual([
      'trust anchor: the "*" entry (every account) is for paper rehearsals only, and this worker has demo venue "binance-spot"; list each account by name',
    ]);
  });
});
