import { Decimal } from '../../src/domain/money';
import { VenueHoldings, valuePortfolio } from '../../src/domain/valuation';

const at = '2026-01-01T00:00:00.000Z';
const holdings = (h: Partial<VenueHoldings>): VenueHoldings => ({ balances: {}, prices: {}, positions: [], asOf: at, source: 'bot', ...h });

describe('valuePortfolio', () => {
  it('values balances × prices and positions across venues', () => {
    const v = valuePortfolio(
      {
        spot: holdings({ balances: { USDT: '4000', BTC: '0.1', ETH: '2' }, prices: { BTC: '38250', ETH: '2000.5' } }),
        perp: holdings({
          balances: { USDT: '2000' },
          positions: [{ symbol: 'BTC/USDT:USDT', side: 'long', contracts: '0.1', unrealizedPnl: '-175' }],
        }),
      },
      ['spot', 'perp'],
      '14000',
      'USDT',
      at,
    );
    expect(v).toMatchObject({
      complete: true,
      totalValue: '13651',
      perVenue: { spot: '11826', perp: '1825' },
      pnl: '-349',
      unrealizedPnl: '-175',
      realizedPnl: '-174',
    });
    expect(v.lossPct.startsWith('2.49285714285714285714')).toBe(true);
  });

  it('matches the seed demo figures exactly', () => {
    const cases: [string, string][] = [['39000', '2'], ['38250', '3.5'], ['37900', '4.2'], ['37250', '5.5']];
    for (const [price, loss] of cases) {
      const pnl = new Decimal(price).minus(40000).times('0.1').toFixed();
      const v = valuePortfolio(
        {
          spot: holdings({ balances: { USDT: '4000', BTC: '0.1' }, prices: { BTC: price } }),
          perp: holdings({ balances: { USDT: '2000' }, positions: [{ symbol: 'BTC/USDT:USDT', side: 'long', contracts: '0.1', unrealizedPnl: pnl }] }),
        },
        ['spot', 'perp'],
        '10000.00',
        'USDT',
        at,
      );
      expect(v.lossPct).toBe(loss);
    }
  });

  it('prices an asset from another venue when its own venue has no price, freshest first', () => {
    const v = valuePortfolio(
      {
        a: holdings({ balances: { BTC: '1' } }),
        b: holdings({ prices: { BTC: '100' }, asOf: '2026-01-01T00:00:00Z' }),
        c: holdings({ prices: { BTC: '200' }, asOf: '2026-01-02T00:00:00Z' }),
      },
      ['a', 'b', 'c'],
      '100',
      'USDT',
      at,
    );
    expect(v.perVenue.a).toBe('200');
  });

  it('is incomplete when a venue is missing or an asset has no price, and says which', () => {
    const v = valuePortfolio({ a: holdings({ balances: { DOGE: '5', USDT: '1', XRP: '0' } }) }, ['a', 'b'], '10', 'USDT', at);
    expect(v.complete).toBe(false);
    expect(v.missingVenues).toEqual(['b']);
    expect(v.unpriced).toEqual([{ venue: 'a', asset: 'DOGE' }]);
  });

  it('reports a negative loss when the account is up', () => {
    const v = valuePortfolio({ a: holdings({ balances: { USDT: '11000' } }) }, ['a'], '10000', 'USDT', at);
    expect(v.lossPct).toBe('-10');
  });

  it('keeps full precision on amounts far beyond a double', () => {
    const v = valuePortfolio(
      { a: holdings({ balances: { USDT: '12345678901234567890.123456789', SHIB: '1000' }, prices: { SHIB: '0.00001' } }) },
      ['a'],
      '1',
      'USDT',
      at,
    );
    expect(v.totalValue).toBe('12345678901234567890.133456789');
  });
});
