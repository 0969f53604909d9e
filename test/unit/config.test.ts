import { parseAccountConfig } from '../../src/domain/config';

const valid = { accountId: 'acct-1', initialCapital: '10000.00', venues: ['binance-spot', 'binance-usdm'] };

describe('account config', () => {
  it('fills in the defaults', () => {
    expect(parseAccountConfig(valid)).toEqual({
      ok: true,
      value: {
        ...valid,
        referenceCurrency: 'USDT',
        warningPct: '3',
        thresholdPct: '5',
        autoClosePositions: false,
        valuationIntervalSeconds: 60,
        sweepIntervalSeconds: 30,
        maxSeqJump: 1_000_000,
        blindPolicy: { action: 'failClosed', dustValue: '10', staleAfterSeconds: 300, warnAfterSeconds: 120, tripAfterSeconds: 600, ignoreAssets: [] },
      },
    });
  });

  it.each([
    [{ initialCapital: '0' }, 'config.initialCapital: must be greater than 0, got "0"'],
    [{ initialCapital: '-5' }, 'config.initialCapital: must be greater than 0'],
    [{ initialCapital: 10000 }, 'config.initialCapital: must be a decimal string such as "10000", got the number 10000'],
    [{ warningPct: '5', thresholdPct: '5' }, 'config.warningPct: must be below thresholdPct ("5"), got "5"'],
    [{ warningPct: '6' }, 'config.warningPct: must be below thresholdPct'],
    [{ warningPct: '0' }, 'config.warningPct: must be greater than 0'],
    [{ thresholdPct: '101', warningPct: '50' }, 'config.thresholdPct: must be at most 100'],
    [{ referenceCurrency: 'EUR' }, 'config.referenceCurrency'],
    [{ venues: [] }, 'config.venues: must list at least one venue'],
    [{ venues: ['a', 'a'] }, 'config.venues: must not list a venue twice'],
    [{ venues: ['Binance Spot'] }, 'config.venues.0: must be lower-case'],
    [{ accountId: '' }, 'config.accountId'],
    [{ accountId: 'a/b' }, 'config.accountId'],
    [{ valuationIntervalSeconds: 0 }, 'config.valuationIntervalSeconds'],
    [{ sweepIntervalSeconds: 0.5 }, 'config.sweepIntervalSeconds'],
    [{ surprise: true }, 'surprise'],
  ])('rejects %p', (override, message) => {
    const parsed = parseAccountConfig({ ...valid, ...override });
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toContain(message);
  });

  it('accepts a threshold of exactly 100', () => {
    expect(parseAccountConfig({ ...valid, thresholdPct: '100', warningPct: '99.99' }).ok).toBe(true);
  });
});
