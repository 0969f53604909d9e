/**
 * The state a guard carries across continue-as-new: checked and migrated at the start of every continued run.
 * A run started by a client never gets here with a state (the workflow refuses it): the carried state is trusted
 * only because our own continue-as-new wrote it, and it is still checked so that a bug or an older version's shape
 * fails the run clearly instead of wedging it.
 */
import { AccountConfig } from './config';
import { BreakerState } from './breaker';
import { GUARD_STATE_VERSION, GuardState, VenueShutdownProgress, createGuardState } from './guard';
import { Parsed, toDecimalString, Decimal } from './money';
import { PriceBook, VenueHoldings } from './valuation';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Version 1 (before the guard became one decider): holdings carried their own prices, Triggered had no cause, and the
 * shutdown lived in `pendingShutdown` + `shutdown`.
 */
function migrateFromV1(old: Json, config: AccountConfig): GuardState {
  const fresh = createGuardState(config);
  const breaker = old.breaker as Json;
  let next: BreakerState = fresh.breaker;
  if (breaker.name === 'Triggered') {
    const lossPct = typeof breaker.lossPct === 'string' ? breaker.lossPct : null;
    next = {
      name: 'Triggered',
      at: String(breaker.at),
      cause: 'loss',
      reason: lossPct ? `loss ${toDecimalString(new Decimal(lossPct), 2)} % of capital` : 'loss',
      lossPct,
      totalValue: typeof breaker.totalValue === 'string' ? breaker.totalValue : null,
      shutdown: breaker.shutdown === 'flat' ? 'flat' : 'inProgress',
      ...(typeof breaker.flatAt === 'string' ? { flatAt: breaker.flatAt } : {}),
    };
  } else if (breaker.name === 'Warning') {
    next = { name: 'Warning', since: String(breaker.since), cause: 'loss' };
  } else if (breaker.name === 'Disabled') {
    next = { name: 'Disabled', at: String(breaker.at), operator: String(breaker.operator), reason: String(breaker.reason) };
  }
  const prices: PriceBook = {};
  const venues = { ...fresh.venues };
  for (const [venue, value] of Object.entries(isObject(old.venues) ? old.venues : {})) {
    if (!(venue in venues) || !isObject(value)) continue;
    const h = value.holdings as Json | undefined;
    let holdings: VenueHoldings | undefined;
    if (isObject(h)) {
      const asOf = String(h.asOf);
      holdings = { balances: h.balances as Record<string, string>, positions: (h.positions ?? []) as VenueHoldings['positions'], asOf, receivedAt: asOf, source: h.source === 'bot' ? 'bot' : 'guard' };
      for (const [asset, price] of Object.entries((h.prices ?? {}) as Record<string, string>)) {
        if (!prices[asset] || prices[asset].at < asOf) prices[asset] = { price, at: asOf, venue };
      }
    }
    venues[venue] = { ...venues[venue]!, lastSeq: typeof value.lastSeq === 'number' ? value.lastSeq : null, ...(holdings ? { holdings } : {}) };
  }
  const counters = { ...fresh.counters, ...(isObject(old.counters) ? (old.counters as Partial<GuardState['counters']>) : {}) };
  const state: GuardState = { ...fresh, breaker: next, venues, prices, counters, events: Array.isArray(old.events) ? (old.events as GuardState['events']) : [] };
  if (next.name === 'Triggered') {
    const pending = old.pendingShutdown as Json | undefined;
    const progress = isObject(old.shutdown) ? (old.shutdown as Record<string, Json>) : {};
    const flattenVenues: Record<string, VenueShutdownProgress> = {};
    for (const venue of config.venues) {
      const p = progress[venue] ?? {};
      flattenVenues[venue] = {
        status: p.status === 'flat' ? 'flat' : 'cancelling',
        pass: null,
        cancelled: typeof p.cancelled === 'number' ? p.cancelled : 0,
        openOrders: typeof p.openOrders === 'number' ? p.openOrders : null,
        positionsClosed: typeof p.positionsClosed === 'number' ? p.positionsClosed : 0,
        openPositions: typeof p.openPositions === 'number' ? p.openPositions : null,
        attempts: typeof p.attempts === 'number' ? p.attempts : 0,
        updatedAt: typeof p.updatedAt === 'string' ? p.updatedAt : next.at,
      };
    }
    state.flattenRounds = 1;
    state.flatten = {
      round: 1,
      orderedAt: next.at,
      closePositions: isObject(pending) ? pending.closePositions === true : config.autoClosePositions,
      confirmed: !isObject(pending),
      venues: flattenVenues,
    };
    // The new run sweeps at once (onStarted arms the sweep timer when none is carried).
  }
  return state;
}

const BREAKER_NAMES = ['Active', 'Warning', 'Triggered', 'Disabled'];

/**
 * Checks a carried state and brings it to the current version. The run's (re-validated) config replaces the
 * carried one, so that fields added since get their defaults.
 */
export function parseCarriedState(raw: unknown, config: AccountConfig): Parsed<GuardState> {
  if (!isObject(raw)) return { ok: false, error: 'input.state: must be the object a previous run carried, got ' + (raw === null ? 'null' : typeof raw) };
  if (!isObject(raw.breaker) || !BREAKER_NAMES.includes(String(raw.breaker.name))) {
    return { ok: false, error: `input.state.breaker.name: must be one of ${BREAKER_NAMES.join(', ')}` };
  }
  if (raw.version === 1) return { ok: true, value: migrateFromV1(raw, config) };
  if (raw.version !== GUARD_STATE_VERSION) {
    return { ok: false, error: `input.state.version: this worker knows versions 1 and ${GUARD_STATE_VERSION}, got ${JSON.stringify(raw.version)?.slice(0, 20)}` };
  }
  for (const field of ['venues', 'prices', 'counters', 'alerts', 'timers', 'unpriced'] as const) {
    if (!isObject(raw[field])) return { ok: false, error: `input.state.${field}: missing or not an object` };
  }
  if (!Array.isArray(raw.events)) return { ok: false, error: 'input.state.events: missing or not an array' };
  const state = raw as unknown as GuardState;
  // Venues added to or removed from the config since: keep what is known of the ones still configured.
  const fresh = createGuardState(config);
  const venues = Object.fromEntries(config.venues.map((v) => [v, state.venues[v] ?? fresh.venues[v]!]));
  // Counters added since the state was carried start at zero.
  const counters = { ...fresh.counters, ...(isObject(raw.counters) ? (raw.counters as Partial<GuardState['counters']>) : {}) };
  return { ok: true, value: { ...state, config, venues, counters } };
}
