/**
 * A trust anchor for the demo, the tests, the chaos run and the benchmark, where accounts are made up as they go:
 * every account is listed, with the operators (and optionally approval rule and bots) given here. Never for a real
 * deployment: the worker (src/worker.ts) only reads BREAKER_TRUST_FILE, which lists accounts one by one.
 */
import { newEd25519KeyPair } from '../src/domain/signing';
import type { OperatorActionName, TrustView } from '../src/domain/trust';
import { OPERATOR_ACTIONS } from '../src/domain/trust';
import type { TrustAnchor } from '../src/trust/anchor';

/** An operator (or bot) key pair, as a key file holds it. */
export interface RehearsalKey {
  id: string;
  secretKey: string;
  publicKey: string;
}

/** A new key pair for `id`. */
export function rehearsalKey(id: string): RehearsalKey {
  return { id, ...newEd25519KeyPair() };
}

export interface RehearsalTrustOptions {
  operators: { key: RehearsalKey; actions?: OperatorActionName[] }[];
  /** Per account (by id), when some accounts need a second approver or signed reports. */
  approval?: (accountId: string) => TrustView['approval'];
  bots?: (accountId: string) => TrustView['bots'];
}

/** Every account listed, with these operators (all actions unless given), no approvals and unsigned reports unless given. */
export function rehearsalTrustAnchor(options: RehearsalTrustOptions): TrustAnchor {
  const source = 'rehearsal anchor (tooling/rehearsal-trust.ts): every account, generated keys';
  const operators = options.operators.map(({ key, actions }) => ({ id: key.id, publicKey: key.publicKey, actions: actions ?? [...OPERATOR_ACTIONS] }));
  return {
    source,
    accounts: () => [],
    viewOf: (accountId) => ({
      accountId,
      listed: true,
      venues: [],
      operators,
      approval: options.approval?.(accountId) ?? null,
      bots: options.bots?.(accountId) ?? null,
      source,
    }),
  };
}
