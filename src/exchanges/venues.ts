/**
 * Worker-side venue configuration: which ccxt class serves a venue id, where its credentials come from, and
 * (for rehearsals) which host to route its requests to. Credentials are read here, in the worker process, and
 * never travel through Temporal.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * How a venue is reached: `live` (the venue's real API: real money), `demo` (Binance demo trading through ccxt's
 * `enableDemoTrading`: the real venue's behaviour with play money, for a rehearsal before going live), or `paper`
 * (requests routed to a paper exchange, on loopback or a host listed in BREAKER_PAPER_HOSTS).
 */
export const VENUE_MODES = ['live', 'demo', 'paper'] as const;
export type VenueMode = (typeof VENUE_MODES)[number];

/** Hosts a paper venue may route to without an allow-list: loopback only, so that a config edit cannot send signed
 * requests and the API key header to an arbitrary host. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The ccxt classes the guard knows how to drive, and which market kind each trades. */
export const SUPPORTED_EXCHANGES = { binance: 'spot', binanceusdm: 'perp' } as const;
export type SupportedExchange = keyof typeof SUPPORTED_EXCHANGES;

/**
 * What a guard flattens on each kind of venue, and what it leaves open: printed by the worker at start and stated in
 * the README, so that "every open order" never promises more than the endpoints the guard calls.
 */
export const SCOPE: Record<SupportedExchange, { covers: string; leavesOpen: string }> = {
  binance: {
    covers: 'spot open orders of every symbol (limit, stop-limit, OCO/OTO legs) via GET/DELETE /api/v3/openOrders',
    leavesOpen: 'cross and isolated margin orders and loans, Simple Earn, convert, sub-accounts, Portfolio Margin (papi)',
  },
  binanceusdm: {
    covers: 'USDⓈ-M open orders (normal and conditional/algo) and, with autoClosePositions, positions in one-way and Hedge Mode',
    leavesOpen: 'COIN-M futures, options, Portfolio Margin (papi) orders, copy-trading and grid-bot orders held by Binance',
  },
};
export type VenueKind = (typeof SUPPORTED_EXCHANGES)[SupportedExchange];

const venueSpecSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/),
    exchange: z.enum(Object.keys(SUPPORTED_EXCHANGES) as [SupportedExchange, ...SupportedExchange[]]),
    /** Names of the environment variables holding the key and secret (never the values themselves). */
    apiKeyEnv: z.string().min(1).optional(),
    secretEnv: z.string().min(1).optional(),
    /** live (default without routeTo), demo, or paper (default with routeTo). */
    mode: z.enum(VENUE_MODES).optional(),
    /**
     * The one account (`accountId`) allowed to act on this venue: a guard of any other account that names it is
     * refused. Required for live and demo venues; a paper venue without it serves any account (rehearsals, tests).
     */
    account: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be the accountId of the guard allowed to act on this venue').optional(),
    /** Paper mode only: route requests to this origin (scheme+host+port) instead of the venue's. */
    routeTo: z.url().optional(),
    /**
     * ccxt's client-side rate limiter: milliseconds per unit of request weight. Defaults to ccxt's value for the
     * venue (conservative for Binance: an unfiltered open-orders sweep of USDⓈ-M weighs 40 units, 2 s). Lower it only
     * where the venue allows more, e.g. against the paper exchange.
     */
    rateLimitMs: z.number().min(0).max(10_000).optional(),
    /**
     * Paper mode only: the REQUEST_WEIGHT per minute the request budget starts from, instead of Binance's (spot
     * 6,000, USDⓈ-M 2,400), for a paper exchange whose limits were configured otherwise (its `exchangeInfo` states
     * them too, but only once the first client has loaded its markets: until then every client of the host paces by
     * Binance's figure). Refused for live and demo venues: the real venue's limit is Binance's, whatever we write.
     */
    weightPerMinute: z.int().min(1).max(1_000_000_000).optional(),
    /** ccxt request timeout in ms. */
    timeoutMs: z.int().min(100).max(120_000).default(10_000),
  })
  .strict();
export type VenueSpec = z.infer<typeof venueSpecSchema>;

/** A venue's mode as configured, or as implied by `routeTo` when not given. */
export function modeOf(spec: Pick<VenueSpec, 'mode' | 'routeTo'>): VenueMode {
  return spec.mode ?? (spec.routeTo ? 'paper' : 'live');
}

/**
 * The rules between mode, routeTo and account, checked at worker start and whenever a client is built.
 * @param paperHosts hosts besides loopback a paper venue may route to (BREAKER_PAPER_HOSTS)
 * @returns the problems, each naming the field
 */
export function venueSpecProblems(spec: VenueSpec, paperHosts: readonly string[] = []): string[] {
  const mode = modeOf(spec);
  const problems: string[] = [];
  if (mode === 'paper') {
    if (!spec.routeTo) problems.push(`venue "${spec.id}": mode "paper" needs routeTo (the paper exchange's URL)`);
    else {
      const host = new URL(spec.routeTo).hostname;
      if (!isLoopbackHost(host) && !paperHosts.includes(host.toLowerCase())) {
        problems.push(`venue "${spec.id}": routeTo host "${host}" is not loopback; list it in BREAKER_PAPER_HOSTS to allow it`);
      }
    }
  } else {
    if (spec.routeTo) problems.push(`venue "${spec.id}": routeTo is only for mode "paper" (mode is "${mode}")`);
    if (!spec.account) problems.push(`venue "${spec.id}": a ${mode} venue must name the one account allowed to act on it ("account": "<accountId>")`);
    if (spec.weightPerMinute !== undefined) problems.push(`venue "${spec.id}": weightPerMinute is only for mode "paper" (mode is "${mode}"); a real venue's request-weight limit is its own`);
  }
  return problems;
}

/** BREAKER_PAPER_HOSTS: a comma-separated allow-list of non-loopback paper exchange hosts. */
export function paperHostsFrom(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.BREAKER_PAPER_HOSTS ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean);
}

export interface Credentials {
  apiKey: string;
  secret: string;
}

/**
 * Reads venue specs from `BREAKER_VENUES` (JSON array) or the file named by `BREAKER_VENUES_FILE`.
 * @throws Error naming the offending field when the configuration is invalid
 */
export function loadVenueSpecs(env: NodeJS.ProcessEnv = process.env): VenueSpec[] {
  const source = env.BREAKER_VENUES_FILE ? readFileSync(env.BREAKER_VENUES_FILE, 'utf8') : env.BREAKER_VENUES;
  if (!source) throw new Error('No venues configured: set BREAKER_VENUES (a JSON array) or BREAKER_VENUES_FILE.');
  let raw: unknown;
  try {
    raw = JSON.parse(source);
  } catch (err) {
    throw new Error(`Venue configuration is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = z.array(venueSpecSchema).min(1).safeParse(raw);
  if (!parsed.success) {
    throw new Error(`Invalid venue configuration: ${parsed.error.issues.map((i) => `venues.${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const ids = parsed.data.map((v) => v.id);
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate) throw new Error(`Invalid venue configuration: venue id "${duplicate}" appears twice`);
  const problems = parsed.data.flatMap((spec) => venueSpecProblems(spec, paperHostsFrom(env)));
  if (problems.length > 0) throw new Error(`Invalid venue configuration: ${problems.join('; ')}`);
  return parsed.data;
}

/** Resolves a venue's credentials from the environment variables its spec names. */
export function credentialsFor(spec: VenueSpec, env: NodeJS.ProcessEnv = process.env): Credentials {
  const keyEnv = spec.apiKeyEnv ?? `${spec.id.toUpperCase().replace(/-/g, '_')}_API_KEY`;
  const secretEnv = spec.secretEnv ?? `${spec.id.toUpperCase().replace(/-/g, '_')}_SECRET`;
  const apiKey = env[keyEnv];
  const secret = env[secretEnv];
  const missing = [!apiKey && keyEnv, !secret && secretEnv].filter(Boolean);
  if (missing.length > 0) throw new Error(`Venue "${spec.id}": environment variable(s) ${missing.join(', ')} not set`);
  return { apiKey: apiKey!, secret: secret! };
}
