import { parseBalanceReport } from '../../src/domain/report';
import {
  MAX_BALANCE_ROWS,
  MAX_ERROR_CHARS,
  MAX_NONZERO_BALANCES,
  MAX_POSITIONS_PER_REPORT,
  MAX_PRICES_PER_REPORT,
  MAX_SYMBOL_CHARS,
} from '../../src/domain/limits';

const venues = ['binance-spot', 'binance-usdm'];
const valid = { venue: 'binance-spot', seq: 1, balances: { USDT: '4000', BTC: '0.1' }, prices: { BTC: '40000' } };
const position = { symbol: 'BTC/USDT:USDT', side: 'long', contracts: '0.1', unrealizedPnl: '-21.5' };
const SEQ_RANGE = 'must be a whole number from 0 to 9007199254740991';
const ALLOWED = 'allowed fields: venue, seq, asOf, balances, prices, positions, auth';
const ASSET_RULE = 'asset names are 1-20 upper-case letters and digits, e.g. "BTC"';
const MB2 = 2 * 1024 * 1024;

/** A map of `count` assets ("A0", "A1", ...), each with `amount`. */
function assets(count: number, amount = '1'): Record<string, string> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`A${i}`, amount]));
}

function errorOf(raw: unknown): string {
  const parsed = parseBalanceReport(raw, venues);
  if (parsed.ok) throw new Error(`accepted: ${JSON.stringify(raw).slice(0, 200)}`);
  return parsed.error;
}

describe('balance report validation', () => {
  it('accepts a full snapshot', () => {
    expect(parseBalanceReport(valid, venues)).toEqual({ ok: true, value: valid });
    const withPositions = {
      venue: 'binance-usdm',
      seq: 7,
      asOf: '2026-01-01T00:00:00Z',
      balances: { USDT: '2000' },
      positions: [position],
    };
    expect(parseBalanceReport(withPositions, venues)).toEqual({ ok: true, value: withPositions });
  });

  it('accepts the limits exactly', () => {
    const report = {
      venue: 'binance-usdm',
      seq: Number.MAX_SAFE_INTEGER,
      balances: { ...assets(MAX_NONZERO_BALANCES), ...Object.fromEntries(Array.from({ length: MAX_BALANCE_ROWS - MAX_NONZERO_BALANCES }, (_, i) => [`Z${i}`, '0'])) },
      prices: assets(MAX_PRICES_PER_REPORT, '2'),
      positions: Array.from({ length: MAX_POSITIONS_PER_REPORT }, () => ({ ...position, symbol: 'S'.repeat(MAX_SYMBOL_CHARS) })),
    };
    const parsed = parseBalanceReport(report, venues);
    expect(parsed.ok && Object.keys(parsed.value.balances).length).toBe(MAX_NONZERO_BALANCES);
  });

  it('drops zero-amount balance rows (a full Binance balance list is mostly "0.00000000")', () => {
    const parsed = parseBalanceReport({ ...valid, balances: { USDT: '4000', BNB: '0.00000000', ETH: '0', LDUSDT: '-0.0', BTC: '0.1' } }, venues);
    expect(parsed).toEqual({ ok: true, value: { ...valid, balances: { USDT: '4000', BTC: '0.1' } } });
  });

  it('never lets "__proto__" or "constructor" through as assets', () => {
    const raw = JSON.parse('{"venue": "binance-spot", "seq": 1, "balances": {"__proto__": "1", "constructor": "2"}}');
    expect(errorOf(raw)).toBe(
      `report.balances.__proto__: ${ASSET_RULE}, got "__proto__"; report.balances.constructor: ${ASSET_RULE}, got "constructor"`,
    );
    expect(errorOf(JSON.parse('{"venue": "binance-spot", "seq": 1, "balances": {}, "__proto__": {"x": 1}}'))).toBe(
      `report: unknown field "__proto__"; ${ALLOWED}`,
    );
  });

  it.each<[string, Record<string, unknown>, string | RegExp]>([
    // venue
    ['missing venue', { venue: undefined }, 'report.venue: is required'],
    ['unknown venue', { venue: 'kraken' }, 'report.venue: unknown venue "kraken"; this account has "binance-spot", "binance-usdm"'],
    ['number venue', { venue: 5 }, 'report.venue: must be a venue id (one of "binance-spot", "binance-usdm"), got 5'],
    ['2 MB venue', { venue: 'v'.repeat(MB2) }, /^report\.venue: unknown venue "v{64}…\(2097152 characters\)"; this account has "binance-spot", "binance-usdm"$/],
    // seq
    ['missing seq', { seq: undefined }, 'report.seq: is required'],
    ['seq -1', { seq: -1 }, `report.seq: ${SEQ_RANGE}, got -1`],
    ['seq 1.5', { seq: 1.5 }, `report.seq: ${SEQ_RANGE}, got 1.5`],
    ['seq 2^53', { seq: 2 ** 53 }, `report.seq: ${SEQ_RANGE}, got 9007199254740992`],
    ['seq 1e300', { seq: 1e300 }, `report.seq: ${SEQ_RANGE}, got 1e+300`],
    ['seq NaN', { seq: NaN }, `report.seq: ${SEQ_RANGE}, got NaN`],
    ['seq Infinity', { seq: Infinity }, `report.seq: ${SEQ_RANGE}, got Infinity`],
    ['seq as a string', { seq: '1' }, `report.seq: ${SEQ_RANGE}, got "1"`],
    ['seq null', { seq: null }, `report.seq: ${SEQ_RANGE}, got null`],
    // balances
    ['missing balances', { balances: undefined }, 'report.balances: is required'],
    ['array balances', { balances: ['1'] }, 'report.balances: must be an object such as {"USDT": "4000.00"}, got an array of 1 item'],
    ['NaN balance', { balances: { BTC: 'NaN' } }, 'report.balances.BTC: must be a decimal string such as "9650.00", got the string "NaN"'],
    ['NaN number balance', { balances: { BTC: NaN } }, 'report.balances.BTC: must be a decimal string such as "0.5", got the number NaN'],
    ['Infinity balance', { balances: { BTC: Infinity } }, 'report.balances.BTC: must be a decimal string such as "0.5", got the number Infinity'],
    ['number balance', { balances: { BTC: 0.1 } }, 'report.balances.BTC: must be a decimal string such as "0.1", got the number 0.1'],
    ['exponent balance', { balances: { BTC: '1e5' } }, 'report.balances.BTC: must be a decimal string such as "9650.00", got the string "1e5"'],
    ['negative balance', { balances: { BTC: '-1' } }, 'report.balances.BTC: must not be negative, got "-1"'],
    ['non-numeric string', { balances: { BTC: 'lots' } }, 'report.balances.BTC: must be a decimal string such as "9650.00", got the string "lots"'],
    [
      '700,000-digit amount',
      { balances: { BTC: '9'.repeat(700_000) } },
      /^report\.balances\.BTC: must be a decimal string of at most 48 characters, got the string "9{64}…\(700000 characters\)"$/,
    ],
    ['49-character amount', { balances: { BTC: `1.${'0'.repeat(47)}` } }, /^report\.balances\.BTC: must be a decimal string of at most 48 characters, got the string "1\.0{47}"$/],
    ['lower-case asset', { balances: { btc: '1' } }, `report.balances.btc: ${ASSET_RULE}, got "btc"`],
    ['21-character asset', { balances: { ['A'.repeat(21)]: '1' } }, `report.balances.${'A'.repeat(21)}: ${ASSET_RULE}, got "${'A'.repeat(21)}"`],
    [
      'five bad asset names',
      { balances: { a: '1', b: '1', c: '1', d: '1', e: '1' } },
      `report.balances.a: ${ASSET_RULE}, got "a"; report.balances.b: ${ASSET_RULE}, got "b"; report.balances.c: ${ASSET_RULE}, got "c"; report.balances: and 2 more keys like that`,
    ],
    ['100,001-row balances', { balances: assets(100_001) }, 'report.balances: must hold at most 2000 entries, got 100001'],
    ['2,001-row balances', { balances: assets(MAX_BALANCE_ROWS + 1, '0') }, 'report.balances: must hold at most 2000 entries, got 2001'],
    ['201 non-zero balances', { balances: assets(MAX_NONZERO_BALANCES + 1) }, 'report.balances: must hold at most 200 non-zero balances, got 201'],
    // prices
    ['zero price', { prices: { BTC: '0' } }, 'report.prices.BTC: must be greater than 0, got "0"'],
    ['201 prices', { prices: assets(MAX_PRICES_PER_REPORT + 1) }, 'report.prices: must hold at most 200 entries, got 201'],
    ['prices as a string', { prices: 'BTC=40000' }, 'report.prices: must be an object such as {"USDT": "4000.00"}, got "BTC=40000"'],
    // positions
    ['side LONG', { positions: [{ ...position, side: 'LONG' }] }, 'report.positions.0.side: must be one of "long", "short", got "LONG"'],
    ['missing side', { positions: [{ ...position, side: undefined }] }, 'report.positions.0.side: is required'],
    ['negative contracts', { positions: [{ ...position, contracts: '-1' }] }, 'report.positions.0.contracts: must not be negative, got "-1"'],
    ['missing symbol', { positions: [{ ...position, symbol: undefined }] }, 'report.positions.0.symbol: is required: a ccxt symbol such as "BTC/USDT:USDT"'],
    ['65-character symbol', { positions: [{ ...position, symbol: 'S'.repeat(65) }] }, 'report.positions.0.symbol: must be at most 64 characters, got 65 characters'],
    ['2 MB symbol', { positions: [{ ...position, symbol: 'S'.repeat(MB2) }] }, 'report.positions.0.symbol: must be at most 64 characters, got 2097152 characters'],
    ['symbol with a newline', { positions: [{ ...position, symbol: 'BTC\nUSDT' }] }, 'report.positions.0.symbol: must not contain control characters'],
    [
      'unknown position field',
      { positions: [{ ...position, leverage: 10 }] },
      'report.positions.0: unknown field "leverage"; allowed fields: symbol, side, contracts, unrealizedPnl, entryPrice, markPrice',
    ],
    ['null position', { positions: [null] }, /^report\.positions\.0: must be an object such as \{"symbol": "BTC\/USDT:USDT", .*\}, got null$/],
    ['positions as an object', { positions: { BTC: position } }, 'report.positions: must be a list of positions, got an object'],
    ['101 positions', { positions: Array.from({ length: MAX_POSITIONS_PER_REPORT + 1 }, () => position) }, 'report.positions: must list at most 100 positions, got 101'],
    ['a million positions', { positions: new Array(1_000_000).fill(0) }, 'report.positions: must list at most 100 positions, got 1000000'],
    // asOf and unknown fields
    ['bad asOf', { asOf: 'yesterday' }, 'report.asOf: must be an ISO-8601 timestamp such as "2026-01-31T12:00:00Z", got "yesterday"'],
    ['2 MB asOf', { asOf: '2'.repeat(MB2) }, /^report\.asOf: must be an ISO-8601 timestamp such as "2026-01-31T12:00:00Z", got "2{64}…\(2097152 characters\)"$/],
    ['unknown field', { apiSecret: 'x' }, `report: unknown field "apiSecret"; ${ALLOWED}`],
    ['four unknown fields', { a: 1, b: 2, c: 3, d: 4 }, `report: unknown fields "a", "b", "c" and 1 more; ${ALLOWED}`],
    ['a 2 MB unknown field name', { ['k'.repeat(MB2)]: 1 }, /^report: unknown field "k{64}…\(2097152 characters\)"; allowed fields: venue/],
    [
      'twelve positions without a side',
      { positions: Array.from({ length: 12 }, () => ({ ...position, side: undefined })) },
      /^(report\.positions\.\d+\.side: is required; ){8}and 4 more problems$/,
    ],
    [
      'so many problems that the message is cut',
      { positions: Array.from({ length: 12 }, () => ({ ...position, side: 'up' })) },
      /^(report\.positions\.\d+\.side: must be one of "long", "short", got "up"; ){5}report\.positions\.5\.side: must be one of "long",… \(555 characters\)$/,
    ],
  ])('rejects %s', (_label, override, message) => {
    const error = errorOf({ ...valid, ...override });
    if (typeof message === 'string') expect(error).toBe(message);
    else expect(error).toMatch(message);
  });

  it.each<[unknown, string]>([
    [null, 'got null'],
    [undefined, 'is required'],
    ['a string', 'got "a string"'],
    [42, 'got 42'],
    [NaN, 'got NaN'],
    [[], 'got an array of 0 items'],
    [true, 'got true'],
  ])('rejects a payload that is not an object: %p', (raw, tail) => {
    const error = errorOf(raw);
    expect(error).toBe(tail === 'is required' ? 'report: is required' : `report: must be an object such as {"venue": "binance-spot", "seq": 1, "balances": {"USDT": "4000.00"}}, ${tail}`);
  });

  describe('hostile input', () => {
    const huge = 'q'.repeat(MB2);
    const hostile: [string, unknown][] = [
      ['2 MB everywhere', { venue: huge, seq: huge, asOf: huge, balances: { BTC: huge }, prices: { [huge]: huge }, positions: [{ symbol: huge, side: huge }], [huge]: huge }],
      ['100,000 unknown fields', { ...valid, ...Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`${huge.slice(0, 100)}${i}`, huge])) }],
      ['a 100,000-key price map', { ...valid, prices: assets(100_000, huge) }],
      ['NaN and Infinity everywhere', { venue: NaN, seq: Infinity, asOf: -Infinity, balances: { BTC: NaN }, prices: { BTC: Infinity }, positions: [{ contracts: NaN }] }],
      ['prototype keys', JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {}}, "balances": {"__proto__": "1"}}')],
      ['nested arrays', { ...valid, positions: [[[[[[huge]]]]]] }],
    ];

    it.each(hostile)('%s: answers with a capped message, quickly, without throwing', (_label, raw) => {
      const started = performance.now();
      const error = errorOf(raw);
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
      expect(error).not.toContain('q'.repeat(65));
      expect(error).toMatch(/^report/);
      expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    });
  });
});
