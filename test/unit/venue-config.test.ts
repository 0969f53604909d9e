/**
 * Venue modes and ownership in the worker's venue configuration: live and demo venues name their one account and
 * never route elsewhere; a paper venue routes only to loopback or an allow-listed host.
 */
import { createVenueClient } from '../../src/exchanges/ccxt-factory';
import { isLoopbackHost, loadVenueSpecs, modeOf, venueSpecProblems, VenueSpec } from '../../src/exchanges/venues';

const base: VenueSpec = { id: 'binance-spot', exchange: 'binance', timeoutMs: 10_000 };
const creds = { apiKey: 'k'.repeat(16), secret: 's'.repeat(32) };

describe('venue modes', () => {
  it.each([
    ['live with its account', { account: 'acct-1' }, []],
    ['demo with its account', { mode: 'demo', account: 'acct-1' }, []],
    ['paper on loopback, any account', { mode: 'paper', routeTo: 'http://127.0.0.1:9999' }, []],
    ['paper implied by routeTo on localhost', { routeTo: 'http://localhost:1234' }, []],
    ['paper on [::1]', { routeTo: 'http://[::1]:1234', account: 'acct-1' }, []],
    ['live without an account', {}, [/a live venue must name the one account/]],
    ['demo without an account', { mode: 'demo' }, [/a demo venue must name the one account/]],
    ['live routed somewhere', { mode: 'live', account: 'a', routeTo: 'http://127.0.0.1:1' }, [/routeTo is only for mode "paper"/]],
    ['paper to a remote host', { routeTo: 'https://evil.example.com' }, [/"evil\.example\.com" is not loopback; list it in BREAKER_PAPER_HOSTS/]],
    ['paper without routeTo', { mode: 'paper' }, [/mode "paper" needs routeTo/]],
    ['paper declaring its weight limit', { routeTo: 'http://127.0.0.1:1', weightPerMinute: 1_000_000 }, []],
    ['live declaring a weight limit', { account: 'a', weightPerMinute: 1_000_000 }, [/venue "binance-spot": weightPerMinute is only for mode "paper" \(mode is "live"\)/]],
    ['demo declaring a weight limit', { mode: 'demo', account: 'a', weightPerMinute: 1_000_000 }, [/weightPerMinute is only for mode "paper" \(mode is "demo"\)/]],
  ] as const)('%s', (_label, extra, expected) => {
    const problems = venueSpecProblems({ ...base, ...extra } as VenueSpec);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((re, i) => expect(problems[i]).toMatch(re));
  });

  it('an allow-listed paper host is accepted', () => {
    expect(venueSpecProblems({ ...base, routeTo: 'http://paper.internal:8080' }, ['paper.internal'])).toEqual([]);
  });

  it.each([
    ['127.0.0.1', true],
    ['127.10.0.3', true],
    ['localhost', true],
    ['[::1]', true],
    ['128.0.0.1', false],
    ['127.0.0.1.evil.com', false],
    ['localhost.evil.com', false],
  ])('loopback: %s is %s', (host, expected) => expect(isLoopbackHost(host)).toBe(expected));

  it('modes default from routeTo', () => {
    expect(modeOf({})).toBe('live');
    expect(modeOf({ routeTo: 'http://127.0.0.1:1' })).toBe('paper');
  });

  it('the worker refuses a configuration that breaks the rules, naming the venue', () => {
    const env = { BREAKER_VENUES: JSON.stringify([{ id: 'binance-spot', exchange: 'binance' }]) };
    expect(() => loadVenueSpecs(env)).toThrow(/venue "binance-spot": a live venue must name the one account/);
    const remote = { BREAKER_VENUES: JSON.stringify([{ id: 'p', exchange: 'binance', routeTo: 'http://10.0.0.5:1' }]), BREAKER_PAPER_HOSTS: '10.0.0.5' };
    expect(loadVenueSpecs(remote)[0]!.id).toBe('p');
  });

  it("a paper venue's declared weightPerMinute is its budget's starting limit; the worker refuses it on a live venue", () => {
    const paper = createVenueClient({ ...base, routeTo: 'http://127.0.0.1:65001', weightPerMinute: 123_456 }, creds);
    expect(paper.budget.snapshot(Date.now()).weightPerMinute).toBe(123_456);
    const live = { BREAKER_VENUES: JSON.stringify([{ id: 'binance-spot', exchange: 'binance', account: 'a', weightPerMinute: 1_000_000 }]) };
    expect(() => loadVenueSpecs(live)).toThrow(/venue "binance-spot": weightPerMinute is only for mode "paper"/);
  });

  it('a demo client uses Binance demo trading URLs; a client is never built from a bad spec', () => {
    const demo = createVenueClient({ ...base, mode: 'demo', account: 'acct-1' }, creds);
    expect(demo.mode).toBe('demo');
    expect(JSON.stringify(demo.exchange.urls.api)).toContain('demo-api.binance.com');
    expect(() => createVenueClient({ ...base, routeTo: 'https://evil.example.com' }, creds)).toThrow(/not loopback/);
  });
});
