import { Decimal, formatUsd, isCanonicalDecimalString, parseDecimal, parseNonNegativeDecimal, toDecimalString } from '../../src/domain/money';

describe('money', () => {
  it('parses decimal strings exactly', () => {
    const parsed = parseDecimal('0.1', 'x');
    expect(parsed.ok && parsed.value.plus('0.2').equals('0.3')).toBe(true);
  });

  it.each([
    [0.5, 'must be a decimal string such as "0.5", got the number 0.5'],
    [NaN, 'got the number NaN'],
    ['NaN', 'got "NaN"'],
    ['1e5', 'got "1e5"'],
    ['', 'got ""'],
    [' 1', 'got " 1"'],
    ['Infinity', 'got "Infinity"'],
    [null, 'got null'],
    [{}, 'got an object'],
  ])('refuses %p with a precise message', (value, message) => {
    const parsed = parseDecimal(value, 'balances.BTC');
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toContain('balances.BTC');
    expect(!parsed.ok && parsed.error).toContain(message);
  });

  it('refuses negatives where asked', () => {
    expect(parseNonNegativeDecimal('-1', 'a')).toEqual({ ok: false, error: 'a must not be negative, got "-1"' });
    expect(parseNonNegativeDecimal('0', 'a').ok).toBe(true);
  });

  it('never prints exponents and never prints -0', () => {
    expect(toDecimalString(new Decimal('1e-12'))).toBe('0.000000000001');
    expect(toDecimalString(new Decimal('1e30'))).toBe('1000000000000000000000000000000');
    expect(toDecimalString(new Decimal('-0'), 2)).toBe('0.00');
    expect(toDecimalString(new Decimal('-0.001'), 2)).toBe('0.00');
    expect(toDecimalString(new Decimal('5.5'), 2)).toBe('5.50');
    expect(isCanonicalDecimalString(toDecimalString(new Decimal('-123.4500')))).toBe(true);
  });

  it('formats dollars for people', () => {
    expect(formatUsd(new Decimal('9650'))).toBe('$9,650.00');
    expect(formatUsd(new Decimal('-550'))).toBe('-$550.00');
    expect(formatUsd(new Decimal('1234567.891'))).toBe('$1,234,567.89');
    expect(formatUsd(new Decimal('0'))).toBe('$0.00');
  });
});
