/**
 * Worker-side venue configuration: which ccxt class serves a venue id, where its credentials come from, and
 * (for rehearsals) which host to route its requests to. Credentials are read here, in the worker process, and
 * never travel through Temporal.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** The ccxt classes the guard knows how to drive, and which market kind each trades. */
export const SUPPORTED_EXCHANGES = { binance: 'spot', binanceusdm: 'perp' } as const;
export type SupportedExchange = keyof typeof SUPPORTED_EXCHANGES;
export type VenueKind = (typeof SUPPORTED_EXCHANGES)[SupportedExchange];

const venueSpecSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/),
    exchange: z.enum(Object.keys(SUPPORTED_EXCHANGES) as [SupportedExchange, ...SupportedExchange[]]),
    /** Names of the environment variables holding the key and secret (never the values themselves). */
    apiKeyEnv: z.string().min(1).optional(),
    secretEnv: z.string().min(1).optional(),
    /** Route requests to this origin (scheme+host+port) instead of the venue's: the paper exchange. */
    routeTo: z.url().optional(),
    /**
     * ccxt's client-side rate limiter: milliseconds per unit of request weight. Defaults to ccxt's value for the
     * venue (conservative for Binance: an unfiltered open-orders sweep of USDⓈ-M weighs 40 units, 2 s). Lower it only
     * where the venue allows more, e.g. against the paper exchange.
     */
    rateLimitMs: z.number().min(0).max(10_000).optional(),
    /** ccxt request timeout in ms. */
    timeoutMs: z.int().min(100).max(120_000).default(10_000),
  })
  .strict();
export type VenueSpec = z.infer<typeof venueSpecSchema>;

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
