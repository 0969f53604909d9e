import { parseBalanceReport } from '../../src/domain/report';

const venues = ['binance-spot', 'binance-usdm'];
const valid = { venue: 'binance-spot', seq: 1, balances: { USDT: '4000', BTC: '0.1' }, prices: { BTC: '40000' } };

describe('balance report validation', () => {
  it('accepts a full snapshot', () => {
    expect(parseBalanceReport(valid, venues)).toEqual({ ok: true, value: valid });
    const withPositions = {
      venue: 'binance-usdm',
      seq: 7,
      asOf: '2026-01-01T00:00:00Z',
      balances: { USDT: '2000' },
      positions: [{ symbol: 'BTC/USDT:USDT', side: 'long', contracts: '0.1', unrealizedPnl: '-21.5' }],
    };
    expect(parseBalanceReport(withPositions, venues).ok).toBe(true);
  });

  it.each([
    ['NaN balance', { balances: { BTC: 'NaN' } }, 'report.balances.BTC: must be a decimal string'],
    ['number balance', { balances: { BTC: 0.1 } }, 'report.balances.BTC: must be a decimal string such as "0.1", got the number 0.1'],
    ['negative balance', { balances: { BTC: '-1' } }, 'report.balances.BTC: must not be negative'],
    ['non-numeric string', { balances: { BTC: 'lots' } }, 'got the string "lots"'],
    ['zero price', { prices: { BTC: '0' } }, 'report.prices.BTC: must be greater than 0'],
    ['unknown venue', { venue: 'kraken' }, 'report.venue: unknown venue "kraken"'],
    ['missing venue', { venue: undefined }, 'report.venue'],
    ['missing seq', { seq: undefined }, 'report.seq'],
    ['fractional seq', { seq: 1.5 }, 'report.seq: must be a whole number'],
    ['negative seq', { seq: -1 }, 'report.seq'],
    ['string seq', { seq: '1' }, 'report.seq'],
    ['missing balances', { balances: undefined }, 'report.balances'],
    ['array balances', { balances: ['1'] }, 'report.balances'],
    ['lower-case asset', { balances: { btc: '1' } }, 'report.balances.btc: asset names are 1-20 upper-case letters and digits, e.g. "BTC", got "btc"'],
    ['bad asOf', { asOf: 'yesterday' }, 'report.asOf: must be an ISO-8601 timestamp'],
    ['bad position side', { positions: [{ symbol: 'X', side: 'up', contracts: '1', unrealizedPnl: '0' }] }, 'report.positions.0.side'],
    ['unknown field', { apiSecret: 'x' }, 'apiSecret'],
  ])('rejects %s', (_label, override, message) => {
    const parsed = parseBalanceReport({ ...valid, ...override }, venues);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toContain(message);
  });

  it.each([[null], [undefined], ['a string'], [42], [[]]])('rejects a payload that is not an object: %p', (raw) => {
    expect(parseBalanceReport(raw, venues).ok).toBe(false);
  });
});
