/**
 * Fault injection for the paper exchange, driven through the control API: per endpoint, a fault kind, and how
 * often (the next `count` matching requests, or each with `probability` from a seeded generator). A `hold` keeps a
 * matching request waiting until a test releases it, so a crash can land at an exact moment.
 */

/** What a fault does to a matching request. */
export const FAULT_KINDS = [
  'http429', // 429 with Binance -1003 (too many requests)
  'http418', // 418 with Binance -1003 (IP banned)
  'timestamp', // 400 with Binance -1021 (timestamp outside recvWindow)
  'http5xx', // 503 with an HTML body, like a load balancer
  'delay', // answer normally after delayMs (beyond the client timeout if you like)
  'drop', // destroy the connection without an answer
  'malformed', // 200 with a body that is valid JSON but not the documented shape
  'unknownOrder', // 400 with Binance -2011 (e.g. on cancel)
  'auth', // 401 with Binance -2015 (invalid key / permissions)
  'hold', // keep the request waiting until released, then answer normally
  // 403 with an HTML page: blocked by the venue's WAF ("HTTP 403 return code is used when a WAF (Web Application
  // Firewall) rule has been violated": https://developers.binance.com/docs/binance-spot-api-docs/rest-api/http-return-codes)
  'http403',
  // 451 with Binance's restricted-location body ({"code":0,"msg":"Service unavailable from a restricted location ..."}):
  // what Binance answers to a request from a location its terms exclude (ccxt maps 451 to ExchangeNotAvailable)
  'http451',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultRuleInput {
  /** "METHOD /path" (e.g. "DELETE /api/v3/openOrders"), a path prefix ("/fapi"), or "*". */
  endpoint: string;
  kind: FaultKind;
  /** Apply to this many matching requests, then stop. */
  count?: number;
  /** Apply to each matching request with this probability (0..1); with `count`, until `count` hits. */
  probability?: number;
  /** Let this many matching requests pass before the rule starts applying. */
  skip?: number;
  /** For `delay`: how long. */
  delayMs?: number;
}

export interface FaultRule extends FaultRuleInput {
  id: number;
  hits: number;
  seen: number;
}

export interface HeldRequest {
  id: number;
  ruleId: number;
  method: string;
  path: string;
  since: number;
  release: () => void;
}

/** A small seeded PRNG (mulberry32), so that chaos runs are repeatable. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  private rules: FaultRule[] = [];
  private nextId = 1;
  private random: () => number;
  readonly held = new Map<number, HeldRequest>();
  private nextHoldId = 1;
  /** Every fault applied, for reports. */
  readonly applied: { ruleId: number; kind: FaultKind; method: string; path: string }[] = [];

  constructor(seed = 1) {
    this.random = seededRandom(seed);
  }

  reseed(seed: number): void {
    this.random = seededRandom(seed);
  }

  add(input: FaultRuleInput): FaultRule {
    if (!FAULT_KINDS.includes(input.kind)) throw new Error(`unknown fault kind "${String(input.kind)}"; one of ${FAULT_KINDS.join(', ')}`);
    if (typeof input.endpoint !== 'string' || input.endpoint.length === 0) throw new Error('endpoint is required');
    if (input.probability !== undefined && !(input.probability >= 0 && input.probability <= 1)) throw new Error('probability must be within 0..1');
    const rule: FaultRule = { ...input, id: this.nextId++, hits: 0, seen: 0 };
    this.rules.push(rule);
    return rule;
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  clear(): void {
    this.rules = [];
    this.releaseAll();
  }

  releaseAll(): void {
    for (const h of [...this.held.values()]) h.release();
  }

  release(id: number): boolean {
    const h = this.held.get(id);
    if (!h) return false;
    h.release();
    return true;
  }

  /** Picks the fault for a request, if any, and counts it. */
  match(method: string, path: string): FaultRule | undefined {
    for (const rule of this.rules) {
      if (!matches(rule.endpoint, method, path)) continue;
      if (rule.count !== undefined && rule.hits >= rule.count) continue;
      rule.seen += 1;
      if (rule.skip !== undefined && rule.seen <= rule.skip) continue;
      if (rule.probability !== undefined && this.random() >= rule.probability) continue;
      rule.hits += 1;
      this.applied.push({ ruleId: rule.id, kind: rule.kind, method, path });
      return rule;
    }
    return undefined;
  }

  /** Parks a request until released; resolves when released. */
  hold(rule: FaultRule, method: string, path: string): Promise<void> {
    return new Promise((resolve) => {
      const id = this.nextHoldId++;
      this.held.set(id, {
        id,
        ruleId: rule.id,
        method,
        path,
        since: Date.now(),
        release: () => {
          this.held.delete(id);
          resolve();
        },
      });
    });
  }
}

function matches(endpoint: string, method: string, path: string): boolean {
  if (endpoint === '*') return true;
  const space = endpoint.indexOf(' ');
  if (space > 0) return endpoint.slice(0, space).toUpperCase() === method && endpoint.slice(space + 1) === path;
  return path.startsWith(endpoint);
}
