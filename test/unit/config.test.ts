import { DEFAULT_BLIND_POLICY, parseAccountConfig, parseGuardInputConfig } from '../../src/domain/config';
import { MAX_ERROR_CHARS, MAX_IGNORED_ASSETS, MAX_VENUES_PER_ACCOUNT } from '../../src/domain/limits';

const valid = { accountId: 'acct-1', initialCapital: '10000.00', venues: ['binance-spot', 'binance-usdm'] };
const defaults = {
  ...valid,
  referenceCurrency: 'USDT',
  warningPct: '3',
  thresholdPct: '5',
  autoClosePositions: false,
  valuationIntervalSeconds: 60,
  sweepIntervalSeconds: 30,
  maxSeqJump: 1_000_000,
  blindPolicy: { action: 'failClosed', dustValue: '10', staleAfterSeconds: 300, warnAfterSeconds: 120, tripAfterSeconds: 600, ignoreAssets: [] },
  watch: { enabled: true, snapshotIntervalSeconds: 60, pollIntervalSeconds: 2, streamSilenceSeconds: 10 },
};
const ALLOWED =
  'allowed fields: accountId, initialCapital, referenceCurrency, warningPct, thresholdPct, autoClosePositions, venues, ' +
  'valuationIntervalSeconds, sweepIntervalSeconds, maxSeqJump, blindPolicy, watch';
const ACCOUNT_ID_RULE = 'must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit';
const VENUE_RULE = 'must be lower-case letters, digits, "_" or "-" (e.g. "binance-spot")';
const MB2 = 2 * 1024 * 1024;

function errorOf(raw: unknown): string {
  const parsed = parseAccountConfig(raw);
  if (parsed.ok) throw new Error(`accepted: ${JSON.stringify(raw).slice(0, 200)}`);
  return parsed.error;
}

describe('account config', () => {
  it('fills in the defaults', () => {
    expect(parseAccountConfig(valid)).toEqual({ ok: true, value: defaults });
    expect(DEFAULT_BLIND_POLICY).toEqual(defaults.blindPolicy);
  });

  it('fills in the blind policy field by field', () => {
    const parsed = parseAccountConfig({ ...valid, blindPolicy: { action: 'lastKnownPrice', ignoreAssets: ['LUNC'] } });
    expect(parsed.ok && parsed.value.blindPolicy).toEqual({ ...DEFAULT_BLIND_POLICY, action: 'lastKnownPrice', ignoreAssets: ['LUNC'] });
  });

  it('gives every config an ignoreAssets list of its own', () => {
    const a = parseAccountConfig(valid);
    const b = parseAccountConfig(valid);
    if (!a.ok || !b.ok) throw new Error('rejected');
    a.value.blindPolicy.ignoreAssets.push('BTC');
    expect(b.value.blindPolicy.ignoreAssets).toEqual([]);
    expect(DEFAULT_BLIND_POLICY.ignoreAssets).toEqual([]);
  });

  it('accepts the limits exactly', () => {
    const full = {
      ...valid,
      accountId: 'a'.repeat(64),
      thresholdPct: '100',
      warningPct: '99.99',
      venues: Array.from({ length: MAX_VENUES_PER_ACCOUNT }, (_, i) => `v${i}${'x'.repeat(37)}`),
      maxSeqJump: Number.MAX_SAFE_INTEGER,
      valuationIntervalSeconds: 86_400,
      sweepIntervalSeconds: 3_600,
      blindPolicy: {
        dustValue: '0',
        staleAfterSeconds: 604_800,
        warnAfterSeconds: 604_799,
        tripAfterSeconds: 604_800,
        ignoreAssets: Array.from({ length: MAX_IGNORED_ASSETS }, (_, i) => `A${i}`),
      },
    };
    expect(parseAccountConfig(full).ok).toBe(true);
  });

  it.each<[string, Record<string, unknown>, string | RegExp]>([
    ['zero capital', { initialCapital: '0' }, 'config.initialCapital: must be greater than 0, got "0"'],
    ['negative capital', { initialCapital: '-5' }, 'config.initialCapital: must be greater than 0, got "-5"'],
    ['capital as a number', { initialCapital: 10000 }, 'config.initialCapital: must be a decimal string such as "10000", got the number 10000'],
    ['capital NaN', { initialCapital: NaN }, 'config.initialCapital: must be a decimal string such as "0.5", got the number NaN'],
    ['missing capital', { initialCapital: undefined }, 'config.initialCapital: is required'],
    [
      '700,000-digit capital',
      { initialCapital: '1'.repeat(700_000) },
      /^config\.initialCapital: must be a decimal string of at most 48 characters, got the string "1{64}…\(700000 characters\)"$/,
    ],
    ['warning = threshold', { warningPct: '5', thresholdPct: '5' }, 'config.warningPct: must be below thresholdPct ("5"), got "5"'],
    ['warning above threshold', { warningPct: '6' }, 'config.warningPct: must be below thresholdPct ("5"), got "6"'],
    ['zero warning', { warningPct: '0' }, 'config.warningPct: must be greater than 0, got "0"'],
    ['zero capital and warning above threshold', { initialCapital: '0', warningPct: '6' }, 'config.initialCapital: must be greater than 0, got "0"; config.warningPct: must be below thresholdPct ("5"), got "6"'],
    ['valuation interval out of range', { valuationIntervalSeconds: 1e300 }, 'config.valuationIntervalSeconds: must be a whole number from 1 to 86400, got 1e+300'],
    ['trip after out of range', { blindPolicy: { warnAfterSeconds: 700, tripAfterSeconds: 0 } }, 'config.blindPolicy.tripAfterSeconds: must be a whole number from 1 to 604800, got 0'],
    ['threshold above 100', { thresholdPct: '101', warningPct: '50' }, 'config.thresholdPct: must be at most 100, got "101"'],
    ['EUR', { referenceCurrency: 'EUR' }, 'config.referenceCurrency: must be one of "USDT", "USDC", got "EUR"'],
    ['lower-case currency', { referenceCurrency: 'usdt' }, 'config.referenceCurrency: must be one of "USDT", "USDC", got "usdt"'],
    ['autoClosePositions "yes"', { autoClosePositions: 'yes' }, 'config.autoClosePositions: must be true or false, got "yes"'],
    ['no venues', { venues: [] }, 'config.venues: must list at least one venue'],
    ['missing venues', { venues: undefined }, 'config.venues: is required'],
    ['venues as a string', { venues: 'binance-spot' }, 'config.venues: must be a list of venues, got "binance-spot"'],
    ['a venue twice', { venues: ['a', 'a'] }, 'config.venues: must not list a venue twice'],
    ['too many venues', { venues: Array.from({ length: 9 }, (_, i) => `v${i}`) }, 'config.venues: must list at most 8 venues, got 9'],
    ['a million venues', { venues: new Array(1_000_000).fill('a') }, 'config.venues: must list at most 8 venues, got 1000000'],
    ['upper-case venue', { venues: ['Binance Spot'] }, `config.venues.0: ${VENUE_RULE}, got "Binance Spot"`],
    ['41-character venue', { venues: ['v'.repeat(41)] }, 'config.venues.0: must be at most 40 characters, got 41 characters'],
    ['number venue', { venues: [7] }, 'config.venues.0: must be a string, got 7'],
    ['empty account id', { accountId: '' }, 'config.accountId: is required'],
    ['account id with a slash', { accountId: 'a/b' }, `config.accountId: ${ACCOUNT_ID_RULE}, got "a/b"`],
    ['65-character account id', { accountId: 'a'.repeat(65) }, 'config.accountId: must be at most 64 characters, got 65 characters'],
    ['2 MB account id', { accountId: 'a'.repeat(MB2) }, 'config.accountId: must be at most 64 characters, got 2097152 characters'],
    ['zero valuation interval', { valuationIntervalSeconds: 0 }, 'config.valuationIntervalSeconds: must be a whole number from 1 to 86400, got 0'],
    ['fractional sweep interval', { sweepIntervalSeconds: 0.5 }, 'config.sweepIntervalSeconds: must be a whole number from 1 to 3600, got 0.5'],
    ['sweep interval as a string', { sweepIntervalSeconds: '30' }, 'config.sweepIntervalSeconds: must be a whole number from 1 to 3600, got "30"'],
    ['maxSeqJump 0', { maxSeqJump: 0 }, 'config.maxSeqJump: must be a whole number from 1 to 9007199254740991, got 0'],
    ['maxSeqJump 2^53', { maxSeqJump: 2 ** 53 }, 'config.maxSeqJump: must be a whole number from 1 to 9007199254740991, got 9007199254740992'],
    ['maxSeqJump Infinity', { maxSeqJump: Infinity }, 'config.maxSeqJump: must be a whole number from 1 to 9007199254740991, got Infinity'],
    // blindPolicy
    ['blind policy null', { blindPolicy: null }, /^config\.blindPolicy: must be an object such as \{"action": "failClosed", .*\}, got null$/],
    ['blind action "panic"', { blindPolicy: { action: 'panic' } }, 'config.blindPolicy.action: must be one of "failClosed", "lastKnownPrice", "ignore", got "panic"'],
    ['negative dust value', { blindPolicy: { dustValue: '-1' } }, 'config.blindPolicy.dustValue: must not be negative, got "-1"'],
    ['dust value as a number', { blindPolicy: { dustValue: 10 } }, 'config.blindPolicy.dustValue: must be a decimal string such as "10", got the number 10'],
    ['stale after 0 s', { blindPolicy: { staleAfterSeconds: 0 } }, 'config.blindPolicy.staleAfterSeconds: must be a whole number from 1 to 604800, got 0'],
    ['trip after 8 days', { blindPolicy: { tripAfterSeconds: 691_200 } }, 'config.blindPolicy.tripAfterSeconds: must be a whole number from 1 to 604800, got 691200'],
    ['warn = trip', { blindPolicy: { warnAfterSeconds: 600 } }, 'config.blindPolicy.warnAfterSeconds: must be below tripAfterSeconds (600), got 600'],
    [
      'stale within one valuation interval',
      { valuationIntervalSeconds: 300, blindPolicy: { staleAfterSeconds: 300 } },
      'config.blindPolicy.staleAfterSeconds: must be greater than valuationIntervalSeconds (300), got 300',
    ],
    [
      'lower-case ignored asset',
      { blindPolicy: { ignoreAssets: ['luna'] } },
      'config.blindPolicy.ignoreAssets.0: asset names are 1-20 upper-case letters and digits, e.g. "BTC", got "luna"',
    ],
    ['an ignored asset twice', { blindPolicy: { ignoreAssets: ['LUNA', 'LUNA'] } }, 'config.blindPolicy.ignoreAssets: must not list an asset twice'],
    [
      'too many ignored assets',
      { blindPolicy: { ignoreAssets: Array.from({ length: MAX_IGNORED_ASSETS + 1 }, (_, i) => `A${i}`) } },
      'config.blindPolicy.ignoreAssets: must list at most 100 assets, got 101',
    ],
    [
      'unknown blind policy field',
      { blindPolicy: { mode: 'strict' } },
      'config.blindPolicy: unknown field "mode"; allowed fields: action, dustValue, staleAfterSeconds, warnAfterSeconds, tripAfterSeconds, ignoreAssets',
    ],
    // the watcher
    ['a watch flag as a string', { watch: { enabled: 'yes' } }, 'config.watch.enabled: must be true or false, got "yes"'],
    ['a zero poll interval', { watch: { pollIntervalSeconds: 0 } }, /^config\.watch\.pollIntervalSeconds: must be a whole number from 1 to 300, got 0/],
    ['a NaN silence', { watch: { streamSilenceSeconds: NaN } }, /^config\.watch\.streamSilenceSeconds: must be a whole number from 1 to 3600/],
    [
      'snapshots no more often than holdings go stale',
      { watch: { snapshotIntervalSeconds: 300 } },
      'config.watch.snapshotIntervalSeconds: must be below blindPolicy.staleAfterSeconds (300), got 300',
    ],
    [
      'unknown watch field',
      { watch: { streams: false } },
      'config.watch: unknown field "streams"; allowed fields: enabled, snapshotIntervalSeconds, pollIntervalSeconds, streamSilenceSeconds',
    ],
    // the object
    ['unknown field', { surprise: true }, `config: unknown field "surprise"; ${ALLOWED}`],
    [
      'several problems',
      { accountId: 'a/b', initialCapital: 1, referenceCurrency: 'EUR' },
      `config.accountId: ${ACCOUNT_ID_RULE}, got "a/b"; config.initialCapital: must be a decimal string such as "1", got the number 1; ` +
        'config.referenceCurrency: must be one of "USDT", "USDC", got "EUR"',
    ],
  ])('rejects %s', (_label, override, message) => {
    const error = errorOf({ ...valid, ...override });
    if (typeof message === 'string') expect(error).toBe(message);
    else expect(error).toMatch(message);
  });

  it.each<[unknown, string]>([
    [null, /got null$/.source],
    ['acct-1', /got "acct-1"$/.source],
    [[valid], /got an array of 1 item$/.source],
    [JSON.parse('{"__proto__": {"accountId": "x"}}'), /^config\.accountId: is required; .*; config: unknown field "__proto__"; allowed fields: accountId/.source],
  ])('rejects %p', (raw, pattern) => {
    expect(errorOf(raw)).toMatch(new RegExp(pattern));
  });

  it('caps the message and the echo of hostile input', () => {
    const huge = 'q'.repeat(MB2);
    const raw = {
      accountId: huge,
      initialCapital: huge,
      referenceCurrency: huge,
      warningPct: NaN,
      autoClosePositions: huge,
      venues: [huge],
      blindPolicy: { action: huge, ignoreAssets: [huge], [huge]: 1 },
      [huge]: huge,
    };
    const started = performance.now();
    const error = errorOf(raw);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
    expect(error).not.toContain('q'.repeat(65));
    expect(error).toMatch(/^config\.accountId: must be at most 64 characters, got 2097152 characters; /);
  });
});

describe('guard start input', () => {
  it('validates the config and hands the state back untouched', () => {
    const state = { version: 3, anything: ['at', 'all'] };
    expect(parseGuardInputConfig({ config: valid, state })).toEqual({ ok: true, value: { config: defaults, state } });
    expect(parseGuardInputConfig({ config: valid })).toEqual({ ok: true, value: { config: defaults, state: undefined } });
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'input: the guard starts with {"config": {...}}, got null'],
    ['nothing', undefined, 'input: the guard starts with {"config": {...}}, got nothing'],
    ['a string', 'acct-1', 'input: the guard starts with {"config": {...}}, got "acct-1"'],
    ['a number', 5, 'input: the guard starts with {"config": {...}}, got 5'],
    ['an array', [valid], 'input: the guard starts with {"config": {...}}, got an array of 1 item'],
    ['a config without the wrapper', valid, 'input.config is required: wrap the account config as {"config": {...}}'],
    ['half a config without the wrapper', { initialCapital: '1' }, 'input.config is required: wrap the account config as {"config": {...}}'],
    ['an empty object', {}, 'input.config: is required: the account config, as {"config": {...}}'],
    ['an unknown field', { config: valid, extra: 1 }, 'input: unknown field "extra"; allowed fields: config, state, signedBy'],
    [
      'an unknown field and a bad config',
      { config: { ...valid, referenceCurrency: 'EUR' }, configs: [] },
      'input: unknown field "configs"; allowed fields: config, state, signedBy; config.referenceCurrency: must be one of "USDT", "USDC", got "EUR"',
    ],
    ['a config of the wrong type', { config: 'acct-1' }, /^config: must be an object such as .*, got "acct-1"$/.source],
    ['a bad config', { config: { ...valid, initialCapital: 10000 } }, 'config.initialCapital: must be a decimal string such as "10000", got the number 10000'],
    ['EUR', { config: { ...valid, referenceCurrency: 'EUR' } }, 'config.referenceCurrency: must be one of "USDT", "USDC", got "EUR"'],
  ])('rejects %s', (_label, raw, message) => {
    const parsed = parseGuardInputConfig(raw);
    expect(parsed.ok).toBe(false);
    const error = parsed.ok ? '' : parsed.error;
    if (message.startsWith('^')) expect(error).toMatch(new RegExp(message));
    else expect(error).toBe(message);
  });

  it('caps the message for 100,000 unknown fields of 2 MB names', () => {
    const name = 'q'.repeat(MB2);
    const raw = { config: valid, ...Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`${i}${name.slice(0, 200)}`, 1])) };
    const parsed = parseGuardInputConfig(raw);
    const error = parsed.ok ? '' : parsed.error;
    expect(error).toMatch(/^input: unknown fields "0q{63}…\(201 characters\)", "1q{63}…\(201 characters\)", "2q{63}…\(201 characters\)" and 99997 more; allowed fields: config, state, signedBy$/);
    expect(error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
  });
});
