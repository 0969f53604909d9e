import { Decimal } from '../../src/domain/money';
import { MalformedResponseError, PositionRef, marketLotFilter, planClose } from '../../src/exchanges/binance-books';

const lot = { minQty: new Decimal('0.001'), maxQty: new Decimal('0.5'), stepSize: new Decimal('0.001') };
const position = (positionSide: PositionRef['positionSide'], amount: string): PositionRef => ({
  symbol: 'BTCUSDT', positionSide, amount: new Decimal(amount), unrealizedPnl: new Decimal(0), entryPrice: new Decimal('40000'), markPrice: new Decimal('40000'),
});

describe('planClose', () => {
  it('One-way Mode: reduce-only orders against the sign, no positionSide', () => {
    expect(planClose(position('BOTH', '1.2'), 'oneWay', lot).orders).toEqual([
      { symbol: 'BTCUSDT', type: 'MARKET', quantity: '0.5', side: 'SELL', reduceOnly: 'true' },
      { symbol: 'BTCUSDT', type: 'MARKET', quantity: '0.5', side: 'SELL', reduceOnly: 'true' },
      { symbol: 'BTCUSDT', type: 'MARKET', quantity: '0.2', side: 'SELL', reduceOnly: 'true' },
    ]);
    expect(planClose(position('BOTH', '-0.3'), 'oneWay', lot).orders).toEqual([{ symbol: 'BTCUSDT', type: 'MARKET', quantity: '0.3', side: 'BUY', reduceOnly: 'true' }]);
  });

  it('Hedge Mode: LONG closes with SELL positionSide=LONG, SHORT with BUY positionSide=SHORT, never reduceOnly', () => {
    expect(planClose(position('LONG', '0.7'), 'hedge', lot).orders).toEqual([
      { symbol: 'BTCUSDT', type: 'MARKET', quantity: '0.5', side: 'SELL', positionSide: 'LONG' },
      { symbol: 'BTCUSDT', type: 'MARKET', quantity: '0.2', side: 'SELL', positionSide: 'LONG' },
    ]);
    expect(planClose(position('SHORT', '-0.25'), 'hedge', lot).orders).toEqual([{ symbol: 'BTCUSDT', type: 'MARKET', quantity: '0.25', side: 'BUY', positionSide: 'SHORT' }]);
  });

  it('reports dust and sends nothing for it', () => {
    const plan = planClose(position('BOTH', '0.0004'), 'oneWay', lot);
    expect(plan.orders).toEqual([]);
    expect(plan.dust.toFixed()).toBe('0.0004');
  });

  it.each([
    ['a BOTH position in Hedge Mode', position('BOTH', '1'), 'hedge'],
    ['a LONG position in One-way Mode', position('LONG', '1'), 'oneWay'],
    ['a LONG position with a negative amount', position('LONG', '-1'), 'hedge'],
    ['a SHORT position with a positive amount', position('SHORT', '1'), 'hedge'],
  ] as const)('refuses %s as a malformed answer rather than guess a side', (_name, p, mode) => {
    expect(() => planClose(p, mode, lot)).toThrow(MalformedResponseError);
  });
});

describe('marketLotFilter', () => {
  const filters = [
    { filterType: 'PRICE_FILTER', minPrice: '261.10', maxPrice: '809484', tickSize: '0.10' },
    { filterType: 'LOT_SIZE', minQty: '0.001', maxQty: '1000', stepSize: '0.001' },
    { filterType: 'MARKET_LOT_SIZE', minQty: '0.001', maxQty: '120', stepSize: '0.001' },
  ];

  it('reads MARKET_LOT_SIZE (not LOT_SIZE) from the exchangeInfo entry', () => {
    const f = marketLotFilter({ symbol: 'BTCUSDT', filters }, 'BTCUSDT');
    expect([f.minQty.toFixed(), f.maxQty.toFixed(), f.stepSize.toFixed()]).toEqual(['0.001', '120', '0.001']);
  });

  it.each([
    ['no filters', { symbol: 'BTCUSDT' }],
    ['no MARKET_LOT_SIZE', { filters: filters.slice(0, 2) }],
    ['a number-less maxQty', { filters: [{ filterType: 'MARKET_LOT_SIZE', minQty: '0.001', stepSize: '0.001' }] }],
    ['a zero step', { filters: [{ filterType: 'MARKET_LOT_SIZE', minQty: '0', maxQty: '120', stepSize: '0' }] }],
    ['maxQty below minQty', { filters: [{ filterType: 'MARKET_LOT_SIZE', minQty: '1', maxQty: '0.5', stepSize: '0.001' }] }],
    ['an exponent', { filters: [{ filterType: 'MARKET_LOT_SIZE', minQty: '1e-3', maxQty: '120', stepSize: '0.001' }] }],
  ])('refuses %s', (_name, info) => {
    expect(() => marketLotFilter(info, 'BTCUSDT')).toThrow(MalformedResponseError);
  });
});
