/**
 * LiveValuation against the reference it must equal: `valuePortfolio` for the figures and `lossLevel` for the level,
 * after every step of hundreds of random accounts, plus hand rows for the boundaries.
 */
import { BreakerLimits, RiskLevel, lossLevel } from '../../src/domain/breaker';
import { parseAccountConfig } from '../../src/domain/config';
import { LiveHoldings, LiveValuation } from '../../src/domain/live-valuation';
import { Decimal, toDecimalString } from '../../src/domain/money';
import { PositionReport } from '../../src/domain/report';
import { PriceBook, VenueHoldings, valuePortfolio } from '../../src/domain/valuation';
import { seededRandom } from '../../tooling/paper/faults';

const at = '2026-01-01T00:00:00.000Z';
const REF = 'USDT';

/** The project's seeded generator (mulberry32), so that every run replays the same sequence. */
const rng = seededRandom;

/** The account as the reference sees it: what has been set so far. */
interface Model {
  venues: string[];
  capital: string;
  ignore: string[];
  limits: BreakerLimits;
  holdings: Record<string, LiveHoldings>;
  prices: Record<string, string>;
}

function expected(m: Model) {
  const holdings: Record<string, VenueHoldings> = {};
  for (const [venue, h] of Object.entries(m.holdings)) {
    holdings[venue] = { balances: h.balances, positions: [...h.positions], asOf: at, receivedAt: at, source: 'bot' };
  }
  const book: PriceBook = {};
  for (const [asset, price] of Object.entries(m.prices)) book[asset] = { price, at, venue: 'x' };
  const v = valuePortfolio(holdings, m.venues, book, m.capital, REF, at, { dustValue: '10', staleAfterSeconds: 300, ignoreAssets: m.ignore });
  const level: RiskLevel = v.complete ? lossLevel(v.lossPct, m.limits) : 'ok';
  return { v, level };
}

/** Compares after a step; returns a description of the first difference, or null. */
function compare(lv: LiveValuation, m: Model): string | null {
  const { v, level } = expected(m);
  const c = lv.check();
  const f = lv.figures();
  const want = {
    complete: v.complete,
    level,
    totalValue: v.complete ? v.totalValue : null,
    lossPct: v.complete ? v.lossPct : null,
    missingVenues: v.missingVenues,
    unpriced: v.unpriced,
  };
  const got = { complete: c.complete, level: c.level, totalValue: f.totalValue, lossPct: f.lossPct, missingVenues: f.missingVenues, unpriced: f.unpriced };
  if (f.complete !== c.complete) return `figures().complete ${f.complete} ≠ check().complete ${c.complete}`;
  return JSON.stringify(got) === JSON.stringify(want) ? null : `got ${JSON.stringify(got)}\nwant ${JSON.stringify(want)}`;
}

/** Decimal strings of every kind the venues send: tiny, huge, up to 18 decimals, trailing and leading zeros. */
function decimal(r: () => number, o: { negative?: boolean; zero?: boolean } = {}): string {
  const int = (n: number) => Array.from({ length: n }, () => Math.floor(r() * 10)).join('');
  const kind = r();
  let text: string;
  if (o.zero && kind < 0.05) text = r() < 0.5 ? '0' : '0.000';
  else if (kind < 0.15) text = `0.${'0'.repeat(Math.floor(r() * 17))}${1 + Math.floor(r() * 9)}`; // tiny, down to 1e-18
  else if (kind < 0.25) text = `${1 + Math.floor(r() * 9)}${int(10 + Math.floor(r() * 16))}.${int(Math.floor(r() * 19))}`; // huge
  else if (kind < 0.3) text = `00${int(1 + Math.floor(r() * 3))}.${int(1 + Math.floor(r() * 4))}00`; // leading/trailing zeros
  else text = `${int(1 + Math.floor(r() * 6))}${r() < 0.8 ? `.${int(1 + Math.floor(r() * 18))}` : ''}`;
  if (text.endsWith('.')) text = text.slice(0, -1);
  return o.negative && r() < 0.6 ? `-${text}` : text;
}

function randomHoldings(r: () => number, pool: string[]): LiveHoldings {
  const balances: Record<string, string> = {};
  const n = Math.floor(r() * 26); // 0–25 assets
  for (let i = 0; i < n; i++) balances[pool[Math.floor(r() * pool.length)]!] = decimal(r, { zero: true });
  const positions: PositionReport[] = Array.from({ length: Math.floor(r() * 4) }, (_, i) => ({
    symbol: `P${i}/USDT:USDT`,
    side: r() < 0.5 ? 'long' : 'short',
    contracts: '1',
    unrealizedPnl: decimal(r, { negative: true }),
  }));
  return { balances, positions };
}

const wide = Decimal.clone({ precision: 1000 });
const limits = (warningPct: string, thresholdPct: string): BreakerLimits => ({ warningPct, thresholdPct, autoClosePositions: false });

describe('LiveValuation equals valuePortfolio + lossLevel after every step (seeded property test)', () => {
  const ACCOUNTS = 400;
  const STEPS = 40;
  const totals = { restored: 0, steps: 0, rounded: 0, setPriceUnchanged: 0, boundaryAccounts: 0 };
  const paths = { fastLevel: 0, exactLevel: 0, exactFigures: 0, referenceFigures: 0 };

  test.each(Array.from({ length: ACCOUNTS }, (_, i) => i + 1))('account seed %i', (seed) => {
    const r = rng(seed);
    const venues = ['spot', 'perp', 'margin'].slice(0, 1 + Math.floor(r() * 3));
    const pool = [REF, 'LOCKED', ...Array.from({ length: 28 }, (_, i) => `A${i}`)];
    const ignore = r() < 0.5 ? ['LOCKED', 'A0'] : r() < 0.5 ? [REF] : [];
    const odd = decimal(r); // tiny, huge or oddly written; the config refuses zero capital
    const capital = r() < 0.1 && !new Decimal(odd).isZero() ? odd : `${1 + Math.floor(r() * 100000)}`;
    const m: Model = { venues, capital, ignore, limits: limits('3', '5'), holdings: {}, prices: {} };
    // Set up the first state, then (for a quarter of the accounts) put the limits exactly on its loss, so that the
    // equality boundary, where only the exact path may answer, is crossed by the random steps that follow.
    const setup: (() => void)[] = [];
    const boundary = r() < 0.25;
    for (const venue of venues) if (r() < 0.85 || boundary) m.holdings[venue] = randomHoldings(r, pool);
    // A boundary account prices every asset, so that a later step can restore its first state exactly.
    for (const asset of pool) if (r() < 0.7 || boundary) m.prices[asset] = decimal(r, { zero: true });
    const first = expected(m);
    const initial = { holdings: { ...m.holdings }, prices: { ...m.prices } };
    if (boundary) {
      m.limits = r() < 0.5 ? limits(first.v.lossPct, first.v.lossPct) : limits(first.v.lossPct, decimal(r));
      totals.boundaryAccounts++;
    } else if (r() < 0.3) {
      m.limits = limits(decimal(r), decimal(r));
    }
    const lv = new LiveValuation({ venues, initialCapital: m.capital, reference: REF, limits: m.limits, ignoreAssets: ignore });
    for (const [venue, h] of Object.entries(m.holdings)) setup.push(() => lv.setHoldings(venue, h));
    for (const [asset, price] of Object.entries(m.prices)) setup.push(() => lv.setPrice(asset, price));
    for (const step of setup) step();
    expect(compare(lv, m)).toBeNull();

    const held = () => Object.values(m.holdings).flatMap((h) => Object.keys(h.balances));
    for (let step = 0; step < STEPS; step++) {
      const kind = r();
      if (boundary && kind < 0.15) {
        // Back onto the boundary: the first state again, then compared as after any step.
        for (const [venue, h] of Object.entries(initial.holdings)) {
          lv.setHoldings(venue, h);
          m.holdings[venue] = h;
        }
        for (const [asset, price] of Object.entries(initial.prices)) {
          lv.setPrice(asset, price);
          m.prices[asset] = price;
        }
        totals.restored++;
      } else if (kind < 0.75) {
        // A tick: mostly a held asset, sometimes one nobody holds, sometimes the same value written differently.
        const heldAssets = held();
        const asset = heldAssets.length > 0 && r() < 0.9 ? heldAssets[Math.floor(r() * heldAssets.length)]! : pool[Math.floor(r() * pool.length)]!;
        const previous = m.prices[asset];
        const price = previous !== undefined && r() < 0.1 ? `${previous.includes('.') ? previous : `${previous}.`}00` : decimal(r, { zero: true });
        const changed = previous === undefined || !new Decimal(previous).eq(price);
        expect(lv.setPrice(asset, price)).toBe(changed);
        if (!changed) totals.setPriceUnchanged++;
        if (changed) m.prices[asset] = price;
      } else if (kind < 0.95) {
        const venue = venues[Math.floor(r() * venues.length)]!;
        const h = randomHoldings(r, pool);
        expect(lv.setHoldings(venue, h)).toBe(true);
        m.holdings[venue] = h;
      } else {
        expect(lv.setHoldings('stray', randomHoldings(r, pool))).toBe(false); // an unconfigured venue counts for nothing
      }
      const difference = compare(lv, m);
      if (difference !== null) throw new Error(`seed ${seed}, step ${step}: ${difference}`);
      totals.steps++;
      // Would an exact (unrounded) sum have differed from valuePortfolio here? Counted to prove that the generator
      // reaches the 40-digit rounding regime, where a LiveValuation that merely summed exactly would fail.
      const { v } = expected(m);
      if (v.complete) {
        let exact = new wide(0);
        for (const venue of venues) {
          for (const [asset, amount] of Object.entries(m.holdings[venue]!.balances)) {
            if (ignore.includes(asset)) continue;
            if (asset === REF) exact = exact.plus(amount);
            else if (m.prices[asset] !== undefined) exact = exact.plus(new wide(amount).times(m.prices[asset]!));
          }
          for (const p of m.holdings[venue]!.positions) exact = exact.plus(p.unrealizedPnl);
        }
        if (!exact.eq(v.totalValue)) totals.rounded++;
      }
    }
    for (const k of Object.keys(paths) as (keyof typeof paths)[]) paths[k] += lv.paths[k];
  });

  test('the random accounts reached every path and regime (so that the property test cannot pass vacuously)', () => {
    expect(totals.steps).toBe(ACCOUNTS * STEPS);
    expect(totals.rounded).toBeGreaterThan(100); // valuePortfolio rounded: the exact-sum shortcut would be wrong there
    expect(totals.setPriceUnchanged).toBeGreaterThan(50);
    expect(totals.boundaryAccounts).toBeGreaterThan(50);
    expect(paths.fastLevel).toBeGreaterThan(5000);
    expect(totals.restored).toBeGreaterThan(200);
    expect(paths.exactLevel).toBeGreaterThan(300);
    expect(paths.exactFigures).toBeGreaterThan(1000);
    expect(paths.referenceFigures).toBeGreaterThan(100);
  });
});

describe('LiveValuation hand rows', () => {
  const make = (o: Partial<{ venues: string[]; capital: string; warning: string; threshold: string; ignore: string[] }> = {}) =>
    new LiveValuation({
      venues: o.venues ?? ['spot'],
      initialCapital: o.capital ?? '10000',
      reference: REF,
      limits: limits(o.warning ?? '3', o.threshold ?? '5'),
      ignoreAssets: o.ignore ?? [],
    });
  const usdt = (amount: string): LiveHoldings => ({ balances: { USDT: amount }, positions: [] });

  test.each([
    ['a loss of exactly the threshold trips', '9500', '5', 'breach'],
    ['a loss of exactly the threshold, written 5.000…, trips', '9500.000000000000000000', '5', 'breach'],
    ['a loss one 10^-24 short of the threshold only warns', '9500.000000000000000000000001', '4.99999999999999999999999999', 'warning'],
    ['a loss of exactly the warning level warns', '9700', '3', 'warning'],
    ['a loss just short of the warning level is ok', '9700.000000000000000001', '2.99999999999999999999', 'ok'],
    // 45 significant digits: valuePortfolio rounds the balance to 9500, so lossLevel sees exactly 5 and trips,
    // although the exact loss is below 5. The level follows the breaker, not the exact arithmetic.
    ['a loss that valuePortfolio rounds onto the threshold trips, as lossLevel says', '9500.00000000000000000000000000000000000000001', '5', 'breach'],
    ['a gain is ok', '10500', '-5', 'ok'],
  ])('%s', (_name, total, lossPct, level) => {
    const lv = make();
    lv.setHoldings('spot', usdt(total));
    expect(lv.figures().lossPct).toBe(lossPct);
    expect(lv.check()).toEqual({ complete: true, level });
    expect(lossLevel(lossPct, limits('3', '5'))).toBe(level);
  });

  test('the boundary is decided by the exact path, everywhere else by the fast one', () => {
    const lv = make();
    lv.setHoldings('spot', usdt('9500'));
    lv.check();
    expect(lv.paths).toMatchObject({ fastLevel: 0, exactLevel: 1 });
    lv.setHoldings('spot', usdt('9400'));
    expect(lv.check().level).toBe('breach');
    expect(lv.paths).toMatchObject({ fastLevel: 1, exactLevel: 1 });
  });

  test('zero or negative capital is refused, as the account config refuses it', () => {
    for (const capital of ['0', '0.000', '-1']) {
      expect(() => make({ capital })).toThrow(RangeError);
      expect(parseAccountConfig({ accountId: 'a', initialCapital: capital, venues: ['spot'] })).toMatchObject({ ok: false, error: expect.stringContaining('initialCapital') });
    }
    expect(() => make({ capital: '0.000000000000000001' })).not.toThrow();
  });

  test('a venue never set makes the account incomplete: no figures, level ok, whatever the other venues say', () => {
    const lv = make({ venues: ['spot', 'perp'] });
    expect(lv.check()).toEqual({ complete: false, level: 'ok' });
    lv.setHoldings('spot', usdt('1')); // a 99.99 % loss on the venue that is known
    expect(lv.check()).toEqual({ complete: false, level: 'ok' });
    expect(lv.figures()).toEqual({ complete: false, totalValue: null, lossPct: null, missingVenues: ['perp'], unpriced: [] });
    lv.setHoldings('perp', { balances: {}, positions: [] });
    expect(lv.check()).toEqual({ complete: true, level: 'breach' });
    expect(lv.figures()).toMatchObject({ complete: true, totalValue: '1', lossPct: '99.99', missingVenues: [] });
  });

  test('an unconfigured venue is not counted', () => {
    const lv = make();
    expect(lv.setHoldings('stray', usdt('1000000'))).toBe(false);
    expect(lv.figures().missingVenues).toEqual(['spot']);
  });

  test('a venue listed twice is refused (valuePortfolio would count it twice)', () => {
    expect(() => make({ venues: ['spot', 'spot'] })).toThrow(RangeError);
  });

  test('an unpriced asset counts zero and is listed until priced; a price tick revalues only what it touches', () => {
    const lv = make();
    lv.setHoldings('spot', { balances: { USDT: '5000', BTC: '0.1', ETH: '0' }, positions: [{ symbol: 'BTC/USDT:USDT', side: 'long', contracts: '1', unrealizedPnl: '-175.5' }] });
    expect(lv.figures()).toMatchObject({ totalValue: '4824.5', unpriced: [{ venue: 'spot', asset: 'BTC', amount: '0.1' }] });
    expect(lv.check().level).toBe('breach');
    expect(lv.setPrice('BTC', '50000')).toBe(true);
    expect(lv.figures()).toMatchObject({ totalValue: '9824.5', lossPct: '1.755', unpriced: [] });
    expect(lv.check().level).toBe('ok');
    expect(lv.setPrice('ETH', '3000')).toBe(true); // a zero balance: nothing changes
    expect(lv.figures().totalValue).toBe('9824.5');
  });

  test('setPrice is false for the same value, however written', () => {
    const lv = make();
    expect(lv.setPrice('BTC', '1.5')).toBe(true);
    expect(lv.setPrice('BTC', '1.5')).toBe(false);
    expect(lv.setPrice('BTC', '1.50')).toBe(false);
    expect(lv.setPrice('BTC', '01.5')).toBe(false);
    expect(lv.setPrice('BTC', '1.51')).toBe(true);
  });

  test('the reference currency is worth 1 whatever its price; ignored assets are left out, priced or not', () => {
    const lv = make({ ignore: ['LOCKED'] });
    lv.setHoldings('spot', { balances: { USDT: '9000', LOCKED: '1000000' }, positions: [] });
    lv.setPrice('USDT', '0.5');
    lv.setPrice('LOCKED', '1');
    expect(lv.figures()).toMatchObject({ totalValue: '9000', lossPct: '10', unpriced: [] });
    const ignoringUsdt = make({ ignore: ['USDT'] });
    ignoringUsdt.setHoldings('spot', usdt('9000'));
    expect(ignoringUsdt.figures().totalValue).toBe('0');
  });

  test('an amount that is not a decimal string is refused and leaves the valuation as it was', () => {
    const lv = make();
    lv.setHoldings('spot', usdt('9000'));
    expect(() => lv.setHoldings('spot', usdt('12,5'))).toThrow(RangeError);
    expect(() => lv.setPrice('BTC', 'Infinity')).toThrow(RangeError);
    expect(() => lv.setPrice('BTC', 'NaN')).toThrow(RangeError);
    expect(lv.figures().totalValue).toBe('9000');
  });

  test('more decimals than the initial scale (18 + 18) rescale exactly', () => {
    const lv = make({ capital: '1' });
    lv.setHoldings('spot', { balances: { BTC: '0.000000000000000001' }, positions: [] });
    lv.setPrice('BTC', '0.0000000000000000000000000001'); // 28 decimals: the product has 46
    const want = expected({ venues: ['spot'], capital: '1', ignore: [], limits: limits('3', '5'), holdings: { spot: { balances: { BTC: '0.000000000000000001' }, positions: [] } }, prices: { BTC: '0.0000000000000000000000000001' } });
    expect(lv.figures()).toMatchObject({ totalValue: want.v.totalValue, lossPct: want.v.lossPct });
    expect(want.v.totalValue).toBe('0.0000000000000000000000000000000000000000000001');
    expect(lv.check().level).toBe('breach');
  });

  test('exponent notation, which decimal.js accepts, is read exactly', () => {
    const lv = make();
    lv.setHoldings('spot', { balances: { BTC: '1e-1' }, positions: [] });
    lv.setPrice('BTC', '9.65e4');
    expect(lv.figures()).toMatchObject({ totalValue: '9650', lossPct: '3.5' });
    expect(toDecimalString(new Decimal('1e-1').times('9.65e4'))).toBe('9650');
  });
});
