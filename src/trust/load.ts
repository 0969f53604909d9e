/**
 * What a guard loads at start and every minute (the `loadTrust` activity): its account's view of the trust anchor,
 * and what the audit log remembers of it: an unreset trip, and the nonces of recent operator actions.
 */
import { latchOf, readIfAny } from '../audit/log';
import type { TrustView } from '../domain/trust';
import type { TrustAnchor } from './anchor';

export interface TrustLoad {
  view: TrustView;
  latch: { tripped: boolean; at?: string; reason?: string };
  /** The account's config as last accepted (canonical JSON), from the audit log; absent for a new account. */
  config?: string;
  recentNonces: string[];
}

/** Reads the anchor's view of `accountId` and the account's audit log (refused when the log is not intact). */
export async function loadTrustFor(anchor: TrustAnchor, auditDir: string, accountId: string, now = new Date()): Promise<TrustLoad> {
  const view = anchor.viewOf(accountId);
  const { tripped, at, reason, recentNonces, config } = latchOf(await readIfAny(auditDir, accountId), now.toISOString());
  return { view, latch: { tripped, ...(at ? { at } : {}), ...(reason ? { reason } : {}) }, recentNonces, ...(config !== undefined ? { config } : {}) };
}
