import { PricingMarket, UnpricedReason, bridgeCurrencies, planPrices, priceAssets } from '../../src/domain/pricing';

const m = (base: string, quote: string, symbol = `${base}/${quote}`): PricingMarket => ({ symbol, base, quote });

/** A spot venue: the usual majors, a few coins with one odd pair each, LDO (a real coin), and BTC/USDC. */
const markets: PricingMarket[] = [
  m('BTC', 'USDT'), m('ETH', 'USDT'), m('BNB', 'USDT'), m('USDC', 'USDT'), m('FDUSD', 'USDT'), m('LDO', 'USDT'),
  m('BTC', 'USDC'), m('ETH', 'BTC'),
  m('XYZ', 'BTC'), // a coin with only a BTC pair
  m('TWO', 'ETH'), m('TWO', 'BTC'), // two bridges: BTC comes first
  m('ONLYETH', 'ETH'), m('ONLYBNB', 'BNB'), m('ONLYFD', 'FDUSD'), m('ONLYUSDC', 'USDC'), m('ONLYUSDT', 'USDT'),
  m('LDX', 'ZZZ'), // an LD-prefixed asset with a market of its own (but no route): the LD rule does not apply
  m('ZERO', 'USDT'), m('EXP', 'USDT'), m('WORD', 'USDT'), m('NUM', 'USDT'), m('NEG', 'USDT'), m('GONE', 'USDT'), m('BLANK', 'USDT'),
  m('BADLEG', 'BTC'), m('BADVIA', 'NOPE'), m('NOPE', 'USDT'),
];

const lastPrices: Record<string, unknown> = {
  'BTC/USDT': '40000', 'ETH/USDT': '2000', 'BNB/USDT': '300', 'USDC/USDT': '0.9998', 'FDUSD/USDT': '1.0001',
  'LDO/USDT': '1.5', 'BTC/USDC': '40010', 'ETH/BTC': '0.05', 'XYZ/BTC': '0.0005', 'TWO/ETH': '0.5', 'TWO/BTC': '0.00002',
  'ONLYETH/ETH': '0.01', 'ONLYBNB/BNB': '0.1', 'ONLYFD/FDUSD': '2', 'ONLYUSDC/USDC': '5', 'ONLYUSDT/USDT': '5',
  // malformed or useless last prices
  'ZERO/USDT': '0', 'EXP/USDT': '4e-7', 'WORD/USDT': 'abc', 'NUM/USDT': 5, 'NEG/USDT': '-1', 'BLANK/USDT': '',
  'BADLEG/BTC': '0.00000000', 'BADVIA/NOPE': '3', 'NOPE/USDT': 'NaN',
  // GONE/USDT has no last price at all
};

type Kind = 'reference' | 'direct' | 'bridge' | 'earn' | UnpricedReason;
type Row = [label: string, asset: string, reference: 'USDT' | 'USDC', kind: Kind, price: string | null, route: string | null];

const table: Row[] = [
  ['the reference currency itself', 'USDT', 'USDT', 'reference', '1', 'USDT (reference)'],
  ['the reference currency itself (USDC)', 'USDC', 'USDC', 'reference', '1', 'USDC (reference)'],
  ['a direct market', 'BTC', 'USDT', 'direct', '40000', 'BTC/USDT'],
  ['LDO is a real coin with its own market', 'LDO', 'USDT', 'direct', '1.5', 'LDO/USDT'],
  ['a direct market read upside down (USDT in USDC)', 'USDT', 'USDC', 'direct', '1.0002000400080016003', '1 ÷ USDC/USDT'],
  ['the other stablecoin, direct', 'USDC', 'USDT', 'direct', '0.9998', 'USDC/USDT'],
  ['a BTC-only coin: XYZ/BTC × BTC/USDT', 'XYZ', 'USDT', 'bridge', '20', 'XYZ/BTC × BTC/USDT'],
  ['a BTC-only coin in USDC: XYZ/BTC × BTC/USDC', 'XYZ', 'USDC', 'bridge', '20.005', 'XYZ/BTC × BTC/USDC'],
  ['BTC is tried before ETH', 'TWO', 'USDT', 'bridge', '0.8', 'TWO/BTC × BTC/USDT'],
  ['an ETH bridge', 'ONLYETH', 'USDT', 'bridge', '20', 'ONLYETH/ETH × ETH/USDT'],
  ['a BNB bridge', 'ONLYBNB', 'USDT', 'bridge', '30', 'ONLYBNB/BNB × BNB/USDT'],
  ['an FDUSD bridge', 'ONLYFD', 'USDT', 'bridge', '2.0002', 'ONLYFD/FDUSD × FDUSD/USDT'],
  ['the stablecoin bridge (USDC to USDT)', 'ONLYUSDC', 'USDT', 'bridge', '4.999', 'ONLYUSDC/USDC × USDC/USDT'],
  ['the stablecoin bridge (USDT to USDC, inverted)', 'ONLYUSDT', 'USDC', 'bridge', '5.0010002000400080016', 'ONLYUSDT/USDT ÷ USDC/USDT'],
  ['ETH in USDC: no ETH/USDC, bridged through BTC (ETH/BTC × BTC/USDC)', 'ETH', 'USDC', 'bridge', '2000.5', 'ETH/BTC × BTC/USDC'],
  ['a Simple Earn token priced as its coin', 'LDBTC', 'USDT', 'earn', '40000', 'LDBTC as BTC: BTC/USDT'],
  ['a Simple Earn token of the reference', 'LDUSDT', 'USDT', 'earn', '1', 'LDUSDT as USDT: USDT (reference)'],
  ['a Simple Earn token of a BTC-only coin', 'LDXYZ', 'USDT', 'earn', '20', 'LDXYZ as XYZ: XYZ/BTC × BTC/USDT'],
  ['dust of a delisted coin: no market at all', 'DUST', 'USDT', 'noRoute', null, null],
  ['a Simple Earn token of a coin without markets', 'LDDUST', 'USDT', 'noRoute', null, null],
  ['an LD asset with a market of its own is not an Earn token', 'LDX', 'USDT', 'noRoute', null, null],
  ['"LD" alone is not an Earn token', 'LD', 'USDT', 'noRoute', null, null],
  ['a USDT-only coin in USDC: the stablecoin bridge, inverted', 'LDO', 'USDC', 'bridge', '1.5003000600120024005', 'LDO/USDT ÷ USDC/USDT'],
  ['a last price of "0"', 'ZERO', 'USDT', 'noPrice', null, null],
  ['a last price with an exponent', 'EXP', 'USDT', 'noPrice', null, null],
  ['a last price that is a word', 'WORD', 'USDT', 'noPrice', null, null],
  ['a last price that is a JavaScript number', 'NUM', 'USDT', 'noPrice', null, null],
  ['a negative last price', 'NEG', 'USDT', 'noPrice', null, null],
  ['an empty last price', 'BLANK', 'USDT', 'noPrice', null, null],
  ['no last price', 'GONE', 'USDT', 'noPrice', null, null],
  ['a bridge whose first leg is "0.00000000"', 'BADLEG', 'USDT', 'noPrice', null, null],
  ['a bridge is not taken through currencies outside the list', 'BADVIA', 'USDT', 'noRoute', null, null],
];

describe('priceAssets: one held asset at a time', () => {
  it.each(table)('%s: %s in %s', (_label, asset, reference, kind, price, route) => {
    const result = priceAssets([asset], reference, markets, lastPrices);
    if (price === null) {
      expect(result.prices).toEqual({});
      expect(result.routes).toEqual({});
      expect(result.unpriced).toEqual([{ asset, reason: kind, detail: expect.any(String) }]);
    } else {
      expect(result.prices).toEqual({ [asset]: price });
      expect(result.routes).toEqual({ [asset]: route });
      expect(result.unpriced).toEqual([]);
      const planned = planPrices([asset], reference, markets).routes[asset]!;
      expect(kind === 'earn' ? planned.pricedAs !== asset : planned.route.kind === kind && planned.pricedAs === asset).toBe(true);
    }
  });

  it('covers every kind of route and every reason, and every bridge currency of both references', () => {
    expect(new Set(table.map((r) => r[3]))).toEqual(new Set(['reference', 'direct', 'bridge', 'earn', ...Object.values(UnpricedReason)]));
    for (const reference of ['USDT', 'USDC'] as const) {
      const vias = table.filter((r) => r[2] === reference && r[3] === 'bridge').map((r) => r[5]!.split(' ')[0]!.split('/')[1]);
      const needed = reference === 'USDT' ? bridgeCurrencies(reference) : ['BTC', 'USDT'];
      for (const via of needed) expect(vias).toContain(via);
    }
  });
});

describe('bridgeCurrencies', () => {
  it.each([
    ['USDT', ['BTC', 'ETH', 'BNB', 'FDUSD', 'USDC']],
    ['USDC', ['BTC', 'ETH', 'BNB', 'FDUSD', 'USDT']],
  ])('for %s: %j', (reference, expected) => {
    expect(bridgeCurrencies(reference)).toEqual(expected);
  });
});

describe('planPrices', () => {
  it('lists each needed market once, sorted, and nothing for the reference or unpriceable assets', () => {
    const plan = planPrices(['USDT', 'BTC', 'XYZ', 'LDBTC', 'DUST', 'BTC', 'LDUSDT'], 'USDT', markets);
    expect(plan.symbolsToFetch).toEqual(['BTC/USDT', 'XYZ/BTC']);
    expect(Object.keys(plan.routes).sort()).toEqual(['BTC', 'LDBTC', 'LDUSDT', 'USDT', 'XYZ']);
    expect(plan.routes.LDBTC).toMatchObject({ pricedAs: 'BTC', route: { kind: 'direct', legs: [{ symbol: 'BTC/USDT', inverse: false }] } });
    expect(plan.unpriced).toEqual([{ asset: 'DUST', reason: 'noRoute', detail: expect.stringContaining('DUST') }]);
  });

  it('treats symbols as opaque: perpetual contracts (ccxt "BTC/USDT:USDT") price their base', () => {
    const perps = [m('BTC', 'USDT', 'BTC/USDT:USDT'), m('ETH', 'USDT', 'ETH/USDT:USDT')];
    const plan = planPrices(['USDT', 'BTC', 'XYZ'], 'USDT', perps);
    expect(plan.symbolsToFetch).toEqual(['BTC/USDT:USDT']);
    expect(priceAssets(['USDT', 'BTC', 'XYZ'], 'USDT', perps, { 'BTC/USDT:USDT': '39000.5' })).toEqual({
      prices: { USDT: '1', BTC: '39000.5' },
      routes: { USDT: 'USDT (reference)', BTC: 'BTC/USDT:USDT' },
      unpriced: [{ asset: 'XYZ', reason: 'noRoute', detail: expect.any(String) }],
    });
  });

  it('a coin listed later is priced once its market is in the list', () => {
    expect(planPrices(['NEW'], 'USDT', markets).unpriced).toEqual([expect.objectContaining({ asset: 'NEW', reason: 'noRoute' })]);
    expect(priceAssets(['NEW'], 'USDT', [...markets, m('NEW', 'USDT')], { 'NEW/USDT': '2.5' }).prices).toEqual({ NEW: '2.5' });
  });

  it('the first market listed for a pair wins', () => {
    const plan = planPrices(['BTC'], 'USDT', [m('BTC', 'USDT', 'first'), m('BTC', 'USDT', 'second')]);
    expect(plan.symbolsToFetch).toEqual(['first']);
  });
});

describe('priceAssets: a whole account', () => {
  it('prices what it can and names the rest, never at zero', () => {
    const result = priceAssets(['USDT', 'BTC', 'LDO', 'LDBTC', 'XYZ', 'DUST', 'ZERO'], 'USDT', markets, lastPrices);
    expect(result.prices).toEqual({ USDT: '1', BTC: '40000', LDO: '1.5', LDBTC: '40000', XYZ: '20' });
    expect(result.unpriced.map((u) => [u.asset, u.reason])).toEqual([['DUST', 'noRoute'], ['ZERO', 'noPrice']]);
    expect(result.unpriced[1]!.detail).toBe('last price of "ZERO/USDT" is "0", not positive');
    expect(Object.values(result.prices).every((p) => /^(0|[1-9]\d*)(\.\d+)?$/.test(p) && p !== '0')).toBe(true);
  });

  it('multiplies exactly: no binary floating point on the way', () => {
    const result = priceAssets(['A'], 'USDT', [m('A', 'BTC'), m('BTC', 'USDT')], { 'A/BTC': '0.00000001', 'BTC/USDT': '12345.67890123' });
    expect(result.prices).toEqual({ A: '0.0001234567890123' });
  });

  it('a bad price on a shared bridge leg leaves every asset that needs it unpriced', () => {
    const result = priceAssets(['BTC', 'XYZ', 'ETH'], 'USDT', markets, { ...lastPrices, 'BTC/USDT': 'oops' });
    expect(result.prices).toEqual({ ETH: '2000' });
    expect(result.unpriced.map((u) => u.asset)).toEqual(['BTC', 'XYZ']);
  });
});
