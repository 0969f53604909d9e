/**
 * A trust anchor for the demo, the tests, the chaos run and the benchmark, where accounts are made up as they go:
 * every account is listed, with the operators (and optionally approval rule and bots) given here. Never for a real
 * deployment: the worker (src/worker.ts) only reads BREAKER_TRUST_FILE, which lists accounts one by one.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newEd25519KeyPair } from '../src/domain/signing';
import type { Permission, TrustView } from '../src/domain/trust';
import { PERMISSIONS } from '../src/domain/trust';
import { ANY_ACCOUNT, TrustAnchor, trustAnchorFrom } from '../src/trust/anchor';

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
  /** Public keys only: a worker process needs no secret. */
  operators: { key: Pick<RehearsalKey, 'id' | 'publicKey'>; actions?: Permission[] }[];
  /** Per account (by id), when some accounts need a second approver or signed reports. */
  approval?: (accountId: string) => TrustView['approval'];
  bots?: (accountId: string) => TrustView['bots'];
}

/** Every account listed, with these operators (all actions unless given), no approvals and unsigned reports unless given. */
export function rehearsalTrustAnchor(options: RehearsalTrustOptions): TrustAnchor {
  const source = 'rehearsal anchor (tooling/rehearsal-trust.ts): every account, generated keys';
  const operators = options.operators.map(({ key, actions }) => ({ id: key.id, publicKey: key.publicKey, actions: actions ?? [...PERMISSIONS] }));
  return {
    source,
    hasAnyAccount: true,
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

/** What a rehearsal (demo, tests, chaos, bench) runs with: operator keys, the anchor listing them, an audit directory. */
export interface Rehearsal {
  operatorKeys: RehearsalKey[];
  anchor: TrustAnchor;
  /** The same anchor as a file (BREAKER_TRUST_FILE), for worker processes. */
  trustFile: string;
  auditDir: string;
}

/**
 * Operators alice and bob (every action each), an anchor whose `"*"` entry lists them for every account (paper venues
 * only, as the worker checks), written to a file in a fresh temporary directory, and an audit directory beside it.
 */
export function rehearsal(): Rehearsal {
  const dir = mkdtempSync(join(tmpdir(), 'breaker-rehearsal-'));
  const operatorKeys = [rehearsalKey('alice'), rehearsalKey('bob')];
  const content = { accounts: { [ANY_ACCOUNT]: { venues: [], operators: operatorKeys.map(({ id, publicKey }) => ({ id, publicKey, actions: [...PERMISSIONS] })) } } };
  const trustFile = join(dir, 'trust.json');
  writeFileSync(trustFile, JSON.stringify(content, null, 2), { mode: 0o600 });
  const auditDir = join(dir, 'audit');
  mkdirSync(auditDir);
  return { operatorKeys, anchor: trustAnchorFrom(content, `rehearsal ${trustFile}`), trustFile, auditDir };
}

/** The environment a worker process of this rehearsal needs: its trust anchor file and audit directory. */
export function rehearsalEnv(r: Rehearsal): Record<string, string> {
  return { BREAKER_TRUST_FILE: r.trustFile, BREAKER_AUDIT_DIR: r.auditDir };
}
