import { Decimal } from '../../src/domain/money';
import { LotFilter, roundDownToStep, splitIntoLots } from '../../src/domain/lots';

const filter = (minQty: string, maxQty: string, stepSize: string): LotFilter => ({
  minQty: new Decimal(minQty),
  maxQty: new Decimal(maxQty),
  stepSize: new Decimal(stepSize),
});
/** BTCUSDT's MARKET_LOT_SIZE on Binance USDⓈ-M. */
const BTC = filter('0.001', '120', '0.001');

const split = (size: string, f: LotFilter, maxLots?: number) => {
  const r = splitIntoLots(new Decimal(size), f, maxLots);
  return { lots: r.lots.map((l) => l.toFixed()), dust: r.dust.toFixed(), deferred: r.deferred.toFixed() };
};

describe('roundDownToStep', () => {
  it.each([
    ['0.0019', '0.001', '0.001'],
    ['120.0005', '0.001', '120'],
    ['7', '0.5', '7'],
    ['7.49', '0.5', '7'],
    ['0.0009', '0.001', '0'],
  ])('%s on a step of %s is %s', (q, step, expected) => {
    expect(roundDownToStep(new Decimal(q), new Decimal(step)).toFixed()).toBe(expected);
  });

  it('refuses a step that is not positive', () => {
    expect(() => roundDownToStep(new Decimal(1), new Decimal(0))).toThrow(RangeError);
  });
});

describe('splitIntoLots', () => {
  // [case, size, filter, lots, dust]
  const cases: [string, string, LotFilter, string[], string][] = [
    ['below maxQty: one order', '0.1', BTC, ['0.1'], '0'],
    ['exactly maxQty', '120', BTC, ['120'], '0'],
    ['3 × maxQty + a bit: four orders, the last the bit', '360.0505', BTC, ['120', '120', '120', '0.05'], '0.0005'],
    ['off-step digits are dust (rounded down, never up)', '0.1239', BTC, ['0.123'], '0.0009'],
    ['below one step: all dust', '0.0004', BTC, [], '0.0004'],
    ['rounded size below minQty: all dust', '0.009', filter('0.01', '5', '0.001'), [], '0.009'],
    ['a rest below minQty borrows from the last full lot', '10.004', filter('0.01', '5', '0.001'), ['5', '4.994', '0.01'], '0'],
    ['maxQty off-step is rounded down to the step', '1', filter('0.1', '0.45', '0.1'), ['0.4', '0.4', '0.2'], '0'],
    ['borrowing works even with maxQty < 2 × minQty when it fits', '1.1', filter('0.1', '0.15', '0.05'), ['0.15', '0.15', '0.15', '0.15', '0.15', '0.15', '0.1', '0.1'], '0'],
    ['a rest that cannot borrow is dust', '0.16', filter('0.1', '0.15', '0.01'), ['0.15'], '0.01'],
    ['zero', '0', BTC, [], '0'],
    ['integer steps', '2500', filter('1', '1000', '1'), ['1000', '1000', '500'], '0'],
  ];

  it.each(cases)('%s', (_name, size, f, lots, dust) => {
    expect(split(size, f)).toEqual({ lots, dust, deferred: '0' });
  });

  it('keeps its invariants over a sweep of sizes and filters', () => {
    const filters = [BTC, filter('0.01', '5', '0.001'), filter('0.1', '0.45', '0.1'), filter('1', '1000', '1'), filter('0.001', '0.003', '0.001')];
    const broken: string[] = [];
    let checked = 0;
    for (const f of filters) {
      for (let i = 0; i < 300; i += 1) {
        // Sizes from tiny to many lots, with digits past the step.
        const size = new Decimal(i).times(i).times('0.0137').plus(new Decimal(i).times('0.00011'));
        const r = splitIntoLots(size, f);
        const sum = r.lots.reduce((s, l) => s.plus(l), new Decimal(0));
        const ok =
          sum.plus(r.dust).plus(r.deferred).equals(size) &&
          sum.lte(size) &&
          r.lots.every((lot) => lot.mod(f.stepSize).isZero() && lot.gte(f.minQty) && lot.lte(f.maxQty)) &&
          // Dust is never something an order could close.
          r.dust.lt(Decimal.max(f.minQty, f.stepSize).times(2));
        if (!ok) broken.push(`${size.toFixed()} on ${f.minQty.toFixed()}/${f.maxQty.toFixed()}/${f.stepSize.toFixed()}`);
        checked += 1;
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBe(1500);
  });

  it('sends at most maxLots orders and defers the rest to the next pass', () => {
    expect(split('500.5', BTC, 2)).toEqual({ lots: ['120', '120'], dust: '0', deferred: '260.5' });
    // The next pass, on what is left, goes on where this one stopped.
    expect(split('260.5', BTC, 2)).toEqual({ lots: ['120', '120'], dust: '0', deferred: '20.5' });
    expect(split('20.5', BTC, 2)).toEqual({ lots: ['20.5'], dust: '0', deferred: '0' });
  });

  it.each([
    ['a negative size', '-1', BTC],
    ['a zero step', '1', filter('0', '1', '0')],
    ['maxQty below minQty', '1', filter('2', '1', '1')],
  ])('refuses %s', (_name, size, f) => {
    expect(() => splitIntoLots(new Decimal(size), f)).toThrow(RangeError);
  });
});
