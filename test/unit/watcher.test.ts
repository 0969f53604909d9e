/**
 * The watcher's pure parts: when it speaks (`reasonToSpeak`), how the guard refuses a hostile observation
 * (`parseWatcherObservation`: the signal is open to any Temporal client), and the plan the guard hands it.
 */
import { parseAccountConfig } from '../../src/domain/config';
import { OBSERVATION_REASONS, ObservationReason, Seen, Spoken, WatcherObservation, parseWatcherObservation, reasonToSpeak, watcherPlan } from '../../src/domain/watcher';

const VENUES = ['spot', 'perp'];
const SNAPSHOT = 60;

const seen = (extra: Partial<Seen> = {}): Seen => ({ nowMs: 1_000, startedMs: 0, level: 'ok', modes: { spot: 'streaming', perp: 'streaming' }, ordersOpened: 0, ...extra });
const spoken = (extra: Partial<Spoken> = {}): Spoken => ({ atMs: 0, level: 'ok', modes: { spot: 'streaming', perp: 'streaming' }, ...extra });

describe('reasonToSpeak', () => {
  type Row = [label: string, last: Spoken | null, now: Seen, expected: ObservationReason | null];
  const rows: Row[] = [
    // Before the first observation
    ['first complete valuation', null, seen({ level: 'ok' }), 'start'],
    ['first complete valuation, already a breach', null, seen({ level: 'breach' }), 'start'],
    ['no complete valuation yet, interval not passed', null, seen({ level: null, nowMs: 59_999 }), null],
    ['no complete valuation yet, interval just passed', null, seen({ level: null, nowMs: 60_000 }), 'snapshot'],
    ['no complete valuation yet, interval measured from the start', null, seen({ level: null, startedMs: 10_000, nowMs: 69_999 }), null],
    ['orders before the first valuation', null, seen({ level: null, ordersOpened: 1 }), 'orders'],
    // A change of level
    ['ok → warning', spoken({ level: 'ok' }), seen({ level: 'warning' }), 'level'],
    ['warning → ok', spoken({ level: 'warning' }), seen({ level: 'ok' }), 'level'],
    ['ok → breach', spoken({ level: 'ok' }), seen({ level: 'breach' }), 'breach'],
    ['warning → breach', spoken({ level: 'warning' }), seen({ level: 'breach' }), 'breach'],
    ['breach → warning', spoken({ level: 'breach' }), seen({ level: 'warning' }), 'level'],
    ['null → ok (first complete valuation after a snapshot)', spoken({ level: null }), seen({ level: 'ok' }), 'level'],
    ['ok → null (a venue unread again) is no change of level', spoken({ level: 'ok' }), seen({ level: null }), null],
    // A change of feed
    ['a venue falls back to polling', spoken(), seen({ modes: { spot: 'polling', perp: 'streaming' } }), 'feed'],
    ['a venue streams again', spoken({ modes: { spot: 'polling', perp: 'streaming' } }), seen(), 'feed'],
    ['a venue not in the last observation', spoken({ modes: { spot: 'streaming' } }), seen(), 'feed'],
    ['a level change wins over a feed change', spoken(), seen({ level: 'warning', modes: { spot: 'polling', perp: 'streaming' } }), 'level'],
    // Orders, the highest priority
    ['orders opened', spoken(), seen({ ordersOpened: 1 }), 'orders'],
    ['orders win over a breach', spoken(), seen({ level: 'breach', ordersOpened: 3 }), 'orders'],
    ['orders win over a feed change', spoken(), seen({ modes: { spot: 'polling', perp: 'streaming' }, ordersOpened: 1 }), 'orders'],
    ['orders win over the snapshot', spoken(), seen({ nowMs: 600_000, ordersOpened: 1 }), 'orders'],
    // The snapshot interval
    ['interval not passed', spoken({ atMs: 1_000 }), seen({ nowMs: 60_999 }), null],
    ['interval just passed', spoken({ atMs: 1_000 }), seen({ nowMs: 61_000 }), 'snapshot'],
    ['interval passed while breached: breach again', spoken({ atMs: 1_000, level: 'breach' }), seen({ nowMs: 61_000, level: 'breach' }), 'breach'],
    ['breached, interval not passed', spoken({ atMs: 1_000, level: 'breach' }), seen({ nowMs: 60_999, level: 'breach' }), null],
    ['interval passed, no complete valuation', spoken({ atMs: 1_000, level: 'ok' }), seen({ nowMs: 61_000, level: null }), 'snapshot'],
    // Flapping: below a breach, at most one word per second
    ['a level change within a second of the last word waits', spoken({ atMs: 500 }), seen({ nowMs: 1_000, level: 'warning' }), null],
    ['a feed change within a second of the last word waits', spoken({ atMs: 500 }), seen({ nowMs: 1_000, modes: { spot: 'polling', perp: 'streaming' } }), null],
    ['a breach within a second of the last word is said at once', spoken({ atMs: 900 }), seen({ nowMs: 1_000, level: 'breach' }), 'breach'],
    ['orders within a second of the last word are said at once', spoken({ atMs: 900 }), seen({ nowMs: 1_000, ordersOpened: 1 }), 'orders'],
    ['a level change a second after the last word is said', spoken({ atMs: 0 }), seen({ nowMs: 1_000, level: 'warning' }), 'level'],
    // Nothing to say
    ['nothing changed', spoken(), seen(), null],
    ['nothing changed, warning', spoken({ level: 'warning' }), seen({ level: 'warning' }), null],
  ];

  it.each(rows)('%s', (_label, last, now, expected) => {
    expect(reasonToSpeak(last, now, SNAPSHOT)).toBe(expected);
  });

  it('the table reaches every reason and silence', () => {
    const reached = new Set(rows.map(([, last, now]) => reasonToSpeak(last, now, SNAPSHOT)));
    // Every reason but 'latched', which the watcher gives itself when the audit log holds a trip its guard forgot.
    expect([...reached].sort()).toEqual([...OBSERVATION_REASONS.filter((r) => r !== 'latched'), null].sort());
  });

  it('the interval is the one passed in (seconds, not milliseconds)', () => {
    expect(reasonToSpeak(spoken({ atMs: 0 }), seen({ nowMs: 5_000 }), 5)).toBe('snapshot');
    expect(reasonToSpeak(spoken({ atMs: 0 }), seen({ nowMs: 4_999 }), 5)).toBeNull();
  });
});

describe('parseWatcherObservation', () => {
  const feed = { mode: 'streaming', dataAgeSeconds: 0.5, fallbacks: 0, lastError: null };
  const venue = { feed, reading: { balances: { USDT: '5000' }, prices: { BTC: '50000' }, positions: [] }, ordersOpened: 0 };
  const valid = { generation: 1, reason: 'snapshot', level: 'ok', venues: { spot: venue } };
  /** The valid observation with one venue field replaced. */
  const withVenue = (patch: Record<string, unknown>) => ({ ...valid, venues: { spot: { ...venue, ...patch } } });
  const withFeed = (patch: Record<string, unknown>) => withVenue({ feed: { ...feed, ...patch } });
  const withBalances = (balances: unknown) => withVenue({ reading: { ...venue.reading, balances } });

  it('a valid observation passes as it is', () => {
    const parsed = parseWatcherObservation(valid, VENUES);
    expect(parsed).toEqual({ ok: true, value: valid as WatcherObservation });
  });

  it('a venue with no reading yet, a polling feed with an error and no data age passes', () => {
    const raw = { generation: 7, reason: 'feed', level: null, venues: { perp: { feed: { mode: 'polling', dataAgeSeconds: null, fallbacks: 2, lastError: 'stream closed' }, ordersOpened: 0 } } };
    expect(parseWatcherObservation(raw, VENUES)).toEqual({ ok: true, value: raw });
  });

  type Row = [label: string, raw: unknown, error: RegExp];
  const rows: Row[] = [
    ['an unknown venue', { ...valid, venues: { kraken: venue } }, /^observation\.venues: unknown venue "kraken"; this account has "spot", "perp"/],
    ['dataAgeSeconds NaN', withFeed({ dataAgeSeconds: NaN }), /^observation\.venues\.spot\.feed\.dataAgeSeconds: .*NaN/],
    ['dataAgeSeconds negative', withFeed({ dataAgeSeconds: -1 }), /^observation\.venues\.spot\.feed\.dataAgeSeconds: .*-1/],
    ['dataAgeSeconds Infinity', withFeed({ dataAgeSeconds: Infinity }), /^observation\.venues\.spot\.feed\.dataAgeSeconds: /],
    ['dataAgeSeconds as a string', withFeed({ dataAgeSeconds: '1' }), /^observation\.venues\.spot\.feed\.dataAgeSeconds: /],
    ['an unknown feed mode', withFeed({ mode: 'carrier-pigeon' }), /^observation\.venues\.spot\.feed\.mode: .*"carrier-pigeon"/],
    ['generation 0', { ...valid, generation: 0 }, /^observation\.generation: must be a whole number from 1 .*got 0/],
    ['generation as a string', { ...valid, generation: '1' }, /^observation\.generation: must be a whole number .*got "1"/],
    ['generation 1.5', { ...valid, generation: 1.5 }, /^observation\.generation: must be a whole number/],
    ['an unknown reason', { ...valid, reason: 'boredom' }, /^observation\.reason: must be one of "start", "level", "breach", "feed", "orders", "snapshot", "latched", got "boredom"/],
    ['an unknown level', { ...valid, level: 'panic' }, /^observation\.level: /],
    ['negative ordersOpened', withVenue({ ordersOpened: -1 }), /^observation\.venues\.spot\.ordersOpened: must be a whole number from 0 .*got -1/],
    ['a balance in exponent form', withBalances({ USDT: '1e3' }), /^observation\.venues\.spot\.reading\.balances\.USDT: must be a decimal string/],
    ['a balance that is no number', withBalances({ USDT: 'lots' }), /^observation\.venues\.spot\.reading\.balances\.USDT: must be a decimal string/],
    ['a 1 MB balance', withBalances({ USDT: '1'.repeat(1 << 20) }), /^observation\.venues\.spot\.reading\.balances\.USDT: must be a decimal string of at most \d+ characters/],
    ['a negative balance', withBalances({ USDT: '-5' }), /^observation\.venues\.spot\.reading\.balances\.USDT: /],
    ['a zero price', withVenue({ reading: { ...venue.reading, prices: { BTC: '0' } } }), /^observation\.venues\.spot\.reading\.prices\.BTC: /],
    ['an unknown field on the observation', { ...valid, extra: 1 }, /^observation: unknown field "extra"; allowed fields: generation, reason, level, venues/],
    ['an unknown field on a venue', withVenue({ apiSecret: 'x' }), /^observation\.venues\.spot: unknown field "apiSecret"; allowed fields: feed, reading, ordersOpened/],
    ['an unknown field on a feed', withFeed({ extra: true }), /^observation\.venues\.spot\.feed: unknown field "extra"/],
    ['no venues', { generation: 1, reason: 'snapshot', level: 'ok' }, /^observation\.venues: /],
    ['null', null, /^observation: must be an object .*got null/],
    ['an array', [], /^observation: must be an object .*got an array/],
    ['a string', 'observation', /^observation: must be an object/],
  ];

  it.each(rows)('refuses %s, naming the field', (_label, raw, error) => {
    const parsed = parseWatcherObservation(raw, VENUES);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.error).toMatch(error);
    // A hostile value is never echoed whole.
    expect(parsed.error.length).toBeLessThan(2_000);
  });

  it('a long error text is kept, clipped', () => {
    const parsed = parseWatcherObservation(withFeed({ lastError: 'x'.repeat(100_000) }), VENUES);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const lastError = parsed.value.venues.spot?.feed.lastError ?? '';
    expect(lastError.length).toBeGreaterThan(0);
    expect(lastError.length).toBeLessThan(10_000);
  });
});

describe('watcherPlan', () => {
  const parsed = parseAccountConfig({
    accountId: 'acct-1',
    initialCapital: '10000',
    venues: ['spot', 'perp'],
    referenceCurrency: 'USDC',
    warningPct: '2',
    thresholdPct: '4',
    blindPolicy: { ignoreAssets: ['DUST'] },
    watch: { snapshotIntervalSeconds: 30, pollIntervalSeconds: 3, streamSilenceSeconds: 7 },
  });
  if (!parsed.ok) throw new Error(parsed.error);
  const config = parsed.value;

  it('copies the config fields the watcher needs, with the generation and the breaker it was started for', () => {
    expect(watcherPlan(config, 3, true)).toEqual({
      accountId: 'acct-1',
      generation: 3,
      triggered: true,
      venues: ['spot', 'perp'],
      referenceCurrency: 'USDC',
      initialCapital: '10000',
      warningPct: '2',
      thresholdPct: '4',
      ignoreAssets: ['DUST'],
      snapshotIntervalSeconds: 30,
      pollIntervalSeconds: 3,
      streamSilenceSeconds: 7,
    });
    expect(watcherPlan(config, 1, false)).toMatchObject({ generation: 1, triggered: false });
  });

  it('carries no secrets, and shares no array with the config', () => {
    const plan = watcherPlan(config, 1, false);
    expect(JSON.stringify(plan)).not.toMatch(/secret|apiKey|password|token|credential/i);
    plan.venues.push('evil');
    plan.ignoreAssets.push('BTC');
    expect(config.venues).toEqual(['spot', 'perp']);
    expect(config.blindPolicy.ignoreAssets).toEqual(['DUST']);
  });
});
