import { Decimal } from '../../src/domain/money';
import { PositionReport } from '../../src/domain/report';
import { PriceBook, PriceQuote, Valuation, ValuationPolicy, VenueHoldings, describeBlindSpots, valuePortfolio } from '../../src/domain/valuation';

/** The valuation time; `old` is 600 s before it, `edge` exactly the 300 s the policy allows. */
const at = '2026-01-01T00:10:00.000Z';
const old = '2026-01-01T00:00:00.000Z';
const edge = '2026-01-01T00:05:00.000Z';
const justOverEdge = '2026-01-01T00:04:59.999Z';

const policy: ValuationPolicy = { dustValue: '10', staleAfterSeconds: 300, ignoreAssets: [] };
const holdings = (h: Partial<VenueHoldings>): VenueHoldings => ({ balances: {}, positions: [], asOf: at, receivedAt: at, source: 'bot', ...h });
const quote = (price: string, pricedAt = at, venue = 'spot'): PriceQuote => ({ price, at: pricedAt, venue });
const position = (unrealizedPnl: string, side: 'long' | 'short' = 'long'): PositionReport => ({ symbol: 'BTC/USDT:USDT', side, contracts: '0.1', unrealizedPnl });

interface Case {
  holdings: Record<string, VenueHoldings | undefined>;
  venues: string[];
  prices?: PriceBook;
  capital: string;
  policy?: Partial<ValuationPolicy>;
  /** Fields checked exactly; the blind-spot lists and `complete` default to "sees everything". */
  expect: Partial<Valuation>;
}
const value = (c: Case) => valuePortfolio(c.holdings, c.venues, c.prices ?? {}, c.capital, 'USDT', at, { ...policy, ...c.policy });
const seesEverything: Partial<Valuation> = { missingVenues: [], staleVenues: [], stalePrices: [], unpriced: [], complete: true };

const cases: Record<string, Case> = {
  'the reference currency is worth exactly 1, whatever the book says, and is never a stale price': {
    holdings: { spot: holdings({ balances: { USDT: '4000' } }) },
    venues: ['spot'],
    prices: { USDT: quote('0.998', old) },
    capital: '4000',
    expect: { at, totalValue: '4000', perVenue: { spot: '4000' }, pnl: '0', lossPct: '0', unrealizedPnl: '0', realizedPnl: '0' },
  },
  'an asset is priced from the book, whichever venue the quote came from': {
    holdings: { spot: holdings({ balances: { BTC: '0.1' } }) },
    venues: ['spot'],
    prices: { BTC: quote('38250', at, 'perp') },
    capital: '4000',
    expect: { totalValue: '3825', perVenue: { spot: '3825' }, pnl: '-175', lossPct: '4.375' },
  },
  'values balances × prices and positions across venues': {
    holdings: {
      spot: holdings({ balances: { USDT: '4000', BTC: '0.1', ETH: '2' } }),
      perp: holdings({ balances: { USDT: '2000' }, positions: [position('-175')] }),
    },
    venues: ['spot', 'perp'],
    prices: { BTC: quote('38250'), ETH: quote('2000.5') },
    capital: '14000',
    expect: {
      totalValue: '13651',
      perVenue: { spot: '11826', perp: '1825' },
      capital: '14000',
      pnl: '-349',
      unrealizedPnl: '-175',
      realizedPnl: '-174',
      lossPct: '2.492857142857142857142857142857142857143',
    },
  },
  "positions' unrealized P&L, long and short, is inside the total and apart from the realized P&L": {
    holdings: { perp: holdings({ balances: { USDT: '2000' }, positions: [position('-175'), position('50.5', 'short')] }) },
    venues: ['perp'],
    capital: '2000',
    expect: { totalValue: '1875.5', perVenue: { perp: '1875.5' }, pnl: '-124.5', unrealizedPnl: '-124.5', realizedPnl: '0', lossPct: '6.225' },
  },
  'a missing venue makes the valuation incomplete and is left out of perVenue': {
    holdings: { a: holdings({ balances: { USDT: '10' } }) },
    venues: ['a', 'b'],
    capital: '10',
    expect: { missingVenues: ['b'], complete: false, perVenue: { a: '10' }, totalValue: '10' },
  },
  'a venue whose holdings are undefined is missing too': {
    holdings: { a: undefined, b: holdings({ balances: { USDT: '10' } }) },
    venues: ['a', 'b'],
    capital: '10',
    expect: { missingVenues: ['a'], complete: false, perVenue: { b: '10' } },
  },
  'holdings of a venue not configured are not counted': {
    holdings: { a: holdings({ balances: { USDT: '10' } }), stray: holdings({ balances: { USDT: '1000' } }) },
    venues: ['a'],
    capital: '10',
    expect: { totalValue: '10', perVenue: { a: '10' } },
  },
  'a stale venue is listed and still valued as last known': {
    holdings: { a: holdings({ balances: { USDT: '9000' }, receivedAt: old }) },
    venues: ['a'],
    capital: '10000',
    expect: { staleVenues: [{ venue: 'a', receivedAt: old }], totalValue: '9000', lossPct: '10', complete: true },
  },
  'holdings exactly staleAfterSeconds old are fresh': {
    holdings: { a: holdings({ balances: { USDT: '1' }, receivedAt: edge }) },
    venues: ['a'],
    capital: '1',
    expect: { totalValue: '1' },
  },
  'holdings a millisecond older than that are stale': {
    holdings: { a: holdings({ balances: { USDT: '1' }, receivedAt: justOverEdge }) },
    venues: ['a'],
    capital: '1',
    expect: { staleVenues: [{ venue: 'a', receivedAt: justOverEdge }], totalValue: '1' },
  },
  'staleness is measured from receivedAt, never from the source’s asOf': {
    holdings: { a: holdings({ balances: { USDT: '1' }, asOf: old, receivedAt: at }) },
    venues: ['a'],
    capital: '1',
    expect: { staleVenues: [] },
  },
  'a stale price worth at least the dust value is listed, and counted': {
    holdings: { a: holdings({ balances: { BTC: '0.001' } }) },
    venues: ['a'],
    prices: { BTC: quote('38250', old, 'b') },
    capital: '38.25',
    expect: { stalePrices: [{ venue: 'a', asset: 'BTC', price: '38250', pricedAt: old, value: '38.25' }], totalValue: '38.25', lossPct: '0' },
  },
  'a stale price worth exactly the dust value is listed': {
    holdings: { a: holdings({ balances: { DOGE: '100' } }) },
    venues: ['a'],
    prices: { DOGE: quote('0.1', old) },
    capital: '10',
    expect: { stalePrices: [{ venue: 'a', asset: 'DOGE', price: '0.1', pricedAt: old, value: '10' }], totalValue: '10' },
  },
  'a stale price worth less than the dust value is not listed, but still counted': {
    holdings: { a: holdings({ balances: { DOGE: '99.99', USDT: '90.001' } }) },
    venues: ['a'],
    prices: { DOGE: quote('0.1', old) },
    capital: '100',
    expect: { stalePrices: [], totalValue: '100', perVenue: { a: '100' }, lossPct: '0' },
  },
  'a price exactly staleAfterSeconds old is fresh, however much it is worth': {
    holdings: { a: holdings({ balances: { BTC: '10' } }) },
    venues: ['a'],
    prices: { BTC: quote('40000', edge) },
    capital: '400000',
    expect: { stalePrices: [], totalValue: '400000' },
  },
  'an ignored asset is neither counted nor listed, priced or not': {
    holdings: { a: holdings({ balances: { USDT: '100', NFT: '5', LOCKED: '7' }, receivedAt: at }) },
    venues: ['a'],
    prices: { NFT: quote('1000', old) },
    capital: '100',
    policy: { ignoreAssets: ['NFT', 'LOCKED'] },
    expect: { totalValue: '100', perVenue: { a: '100' }, stalePrices: [], unpriced: [], lossPct: '0' },
  },
  'an asset without any price counts as zero and is listed as unpriced; zero balances are skipped': {
    holdings: { a: holdings({ balances: { USDT: '100', DOGE: '5', XRP: '0', SHIB: '0.000' } }), b: holdings({ balances: { PEPE: '1000' } }) },
    venues: ['a', 'b'],
    capital: '200',
    expect: {
      unpriced: [{ venue: 'a', asset: 'DOGE', amount: '5' }, { venue: 'b', asset: 'PEPE', amount: '1000' }],
      complete: true,
      totalValue: '100',
      perVenue: { a: '100', b: '0' },
      lossPct: '50',
    },
  },
  'sums exactly: 0.1 + 0.2 is 0.3 and 3 × 1.1 is 3.3': {
    holdings: { a: holdings({ balances: { USDT: '0.1' } }), b: holdings({ balances: { USDT: '0.2', ETH: '3' } }) },
    venues: ['a', 'b'],
    prices: { ETH: quote('1.1') },
    capital: '3.6',
    expect: { totalValue: '3.6', perVenue: { a: '0.1', b: '3.5' }, pnl: '0', lossPct: '0' },
  },
  'keeps 40 significant digits': {
    holdings: { a: holdings({ balances: { USDT: '1234567890123456789012345678901.234567891' } }), b: holdings({ balances: { USDT: '0.000000001' } }) },
    venues: ['a', 'b'],
    capital: '1',
    expect: { totalValue: '1234567890123456789012345678901.234567892', lossPct: '-123456789012345678901234567890023.4567892' },
  },
  'keeps full precision on amounts far beyond a double': {
    holdings: { a: holdings({ balances: { USDT: '12345678901234567890.123456789', SHIB: '1000' } }) },
    venues: ['a'],
    prices: { SHIB: quote('0.00001') },
    capital: '1',
    expect: { totalValue: '12345678901234567890.133456789' },
  },
  'a loss percentage is rounded at the 40th significant digit': {
    holdings: { a: holdings({ balances: { USDT: '2' } }) },
    venues: ['a'],
    capital: '3',
    expect: { lossPct: '33.33333333333333333333333333333333333333', pnl: '-1' },
  },
  'a tiny loss is written in plain notation, never with an exponent': {
    holdings: { a: holdings({ balances: { USDT: '99999999999999999999' } }) },
    venues: ['a'],
    capital: '100000000000000000000',
    expect: { lossPct: '0.000000000000000001', pnl: '-1' },
  },
  'the loss is negative when the account is up': {
    holdings: { a: holdings({ balances: { USDT: '11000' } }) },
    venues: ['a'],
    capital: '10000.00',
    expect: { lossPct: '-10', pnl: '1000', realizedPnl: '1000', capital: '10000' },
  },
};

describe('valuePortfolio', () => {
  it.each(Object.entries(cases))('%s', (_name, c) => {
    const v = value(c);
    const expected = { ...seesEverything, ...c.expect };
    for (const [field, want] of Object.entries(expected)) expect({ [field]: v[field as keyof Valuation] }).toEqual({ [field]: want });
  });

  it('the table asserts every field of a valuation, and every kind of blind spot at least once', () => {
    const everyField = {
      at: true, totalValue: true, capital: true, pnl: true, unrealizedPnl: true, realizedPnl: true, lossPct: true, perVenue: true,
      missingVenues: true, staleVenues: true, stalePrices: true, unpriced: true, complete: true,
    } satisfies Record<keyof Valuation, true>;
    const asserted = new Set(Object.values(cases).flatMap((c) => Object.keys(c.expect)));
    expect([...asserted].sort()).toEqual(Object.keys(everyField).sort());
    // Each list is seen non-empty somewhere, and incompleteness too: the defaults alone prove nothing.
    for (const list of ['missingVenues', 'staleVenues', 'stalePrices', 'unpriced'] as const) {
      expect(Object.values(cases).some((c) => (c.expect[list]?.length ?? 0) > 0)).toBe(true);
    }
    expect(Object.values(cases).some((c) => c.expect.complete === false)).toBe(true);
  });

  it('every amount it returns is a canonical decimal string', () => {
    for (const c of Object.values(cases)) {
      const v = value(c);
      const amounts = [v.totalValue, v.capital, v.pnl, v.unrealizedPnl, v.realizedPnl, v.lossPct, ...Object.values(v.perVenue), ...v.stalePrices.map((p) => p.value)];
      for (const amount of amounts) expect(amount).toMatch(/^-?(0|[1-9]\d*)(\.\d+)?$/);
    }
  });

  it.each([
    ['39000', '2'],
    ['38250', '3.5'],
    ['37900', '4.2'],
    ['37250', '5.5'],
  ])('matches the seed demo figures exactly: BTC at %s is a loss of %s %%', (price, loss) => {
    const pnl = new Decimal(price).minus(40000).times('0.1').toFixed();
    const v = valuePortfolio(
      {
        spot: holdings({ balances: { USDT: '4000', BTC: '0.1' } }),
        perp: holdings({ balances: { USDT: '2000' }, positions: [position(pnl)] }),
      },
      ['spot', 'perp'],
      { BTC: quote(price) },
      '10000.00',
      'USDT',
      at,
      policy,
    );
    expect(v.lossPct).toBe(loss);
    expect(v.unrealizedPnl).toBe(pnl);
  });
});

describe('describeBlindSpots', () => {
  const blind = valuePortfolio(
    {
      a: holdings({ balances: { USDT: '100', BTC: '0.001', DOGE: '5', SHIB: '10' } }),
      c: holdings({ balances: { USDT: '50' }, receivedAt: old }),
    },
    ['a', 'b', 'c'],
    { BTC: quote('38250', old), SHIB: quote('0.00001', old) },
    '200',
    'USDT',
    at,
    policy,
  );

  it('the valuation behind these lines has one blind spot of each kind, an unpriced asset and stale dust', () => {
    expect(blind).toMatchObject({
      missingVenues: ['b'],
      staleVenues: [{ venue: 'c', receivedAt: old }],
      stalePrices: [{ venue: 'a', asset: 'BTC', value: '38.25' }],
      unpriced: [{ venue: 'a', asset: 'DOGE', amount: '5' }],
      complete: false,
    });
  });

  it.each([
    ['nothing when the valuation sees everything', value(cases['values balances × prices and positions across venues']!), at, []],
    [
      'missing venues, then stale venues, then stale prices; neither unpriced assets nor dust',
      blind,
      at,
      ['b: never valued', 'c: holdings 600 s old', 'a: BTC (worth 38.25) priced 600 s ago'],
    ],
    ['ages measured from the time given, not the valuation’s', blind, '2026-01-01T00:11:00.000Z', ['b: never valued', 'c: holdings 660 s old', 'a: BTC (worth 38.25) priced 660 s ago']],
    ['ages rounded to the nearest second', blind, '2026-01-01T00:10:00.500Z', ['b: never valued', 'c: holdings 601 s old', 'a: BTC (worth 38.25) priced 601 s ago']],
    ['never a negative age', blind, '2025-12-31T23:59:00.000Z', ['b: never valued', 'c: holdings 0 s old', 'a: BTC (worth 38.25) priced 0 s ago']],
  ] as [string, Valuation, string, string[]][])('%s', (_name, valuation, when, lines) => {
    expect(describeBlindSpots(valuation, when)).toEqual(lines);
  });

  it('one line per blind spot', () => {
    const many = valuePortfolio({}, ['x', 'y', 'z'], {}, '1', 'USDT', at, policy);
    expect(describeBlindSpots(many, at)).toEqual(['x: never valued', 'y: never valued', 'z: never valued']);
  });
});
