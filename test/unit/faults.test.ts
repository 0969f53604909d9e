import { FaultInjector, seededRandom } from '../../tooling/paper/faults';

describe('fault injection rules', () => {
  it('applies to the next count matching requests only, after skip', () => {
    const f = new FaultInjector();
    f.add({ endpoint: 'DELETE /api/v3/openOrders', kind: 'http429', skip: 1, count: 2 });
    const hits = [1, 2, 3, 4].map(() => f.match('DELETE', '/api/v3/openOrders')?.kind ?? null);
    expect(hits).toEqual([null, 'http429', 'http429', null]);
    expect(f.match('GET', '/api/v3/openOrders')).toBeUndefined();
  });

  it('matches by method and path, by path prefix, or everything', () => {
    const f = new FaultInjector();
    f.add({ endpoint: '/fapi', kind: 'http5xx' });
    expect(f.match('GET', '/fapi/v1/openOrders')?.kind).toBe('http5xx');
    expect(f.match('GET', '/api/v3/openOrders')).toBeUndefined();
    f.add({ endpoint: '*', kind: 'drop' });
    expect(f.match('GET', '/api/v3/account')?.kind).toBe('drop');
  });

  it('is repeatable for the same seed and differs for another', () => {
    const run = (seed: number) => {
      const f = new FaultInjector(seed);
      f.add({ endpoint: '*', kind: 'http418', probability: 0.5 });
      return Array.from({ length: 40 }, () => (f.match('GET', '/x') ? 1 : 0)).join('');
    };
    expect(run(7)).toBe(run(7));
    expect(run(7)).not.toBe(run(8));
    expect(run(7)).toMatch(/1/);
    expect(run(7)).toMatch(/0/);
  });

  it('holds a request until released', async () => {
    const f = new FaultInjector();
    const rule = f.add({ endpoint: '*', kind: 'hold', count: 1 });
    let released = false;
    const held = f.hold(rule, 'DELETE', '/x').then(() => (released = true));
    await Promise.resolve();
    expect(released).toBe(false);
    expect(f.held.size).toBe(1);
    expect(f.release([...f.held.keys()][0]!)).toBe(true);
    await held;
    expect(released).toBe(true);
    expect(f.held.size).toBe(0);
  });

  it('refuses unknown kinds and bad probabilities', () => {
    const f = new FaultInjector();
    expect(() => f.add({ endpoint: '*', kind: 'meteor' as never })).toThrow('unknown fault kind "meteor"');
    expect(() => f.add({ endpoint: '*', kind: 'drop', probability: 2 })).toThrow('probability must be within 0..1');
  });

  it('draws uniformly enough from the seeded generator', () => {
    const r = seededRandom(1);
    const xs = Array.from({ length: 10_000 }, r);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });
});
