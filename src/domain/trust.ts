/**
 * Who may change an account's guard: the guard's view of the worker's trust anchor (src/trust/anchor.ts), and the
 * checks of a signed operator action and of a signed bot report against it. Pure: the guard decides, with the keys a
 * worker's deployment configuration lists, never with keys a Temporal client brought.
 */
import { z } from 'zod';
import { MAX_ERROR_CHARS, clip } from './limits';
import { Parsed } from './money';
import { botReportMessage, keyIdOf, operatorActionMessage, verifyEd25519 } from './signing';
import { got, isPlainObject, rule, strictObject, validate } from './validation';

/** Every operator action the guard knows; each is also the permission an operator needs for it. */
export const OPERATOR_ACTIONS = ['reset', 'disable', 'enable', 'halt', 'resyncSeq'] as const;
export type OperatorActionName = (typeof OPERATOR_ACTIONS)[number];
/**
 * What an operator may be allowed in the anchor: every action, and `configure`: start (or restart) a guard with
 * thresholds or capital other than the account's last recorded ones.
 */
export const PERMISSIONS = [...OPERATOR_ACTIONS, 'configure'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** A signed request is refused after its `expiresAt`, and refused when that lies further ahead than this. */
export const MAX_SIGNED_VALIDITY_SECONDS = 600;
/** Nonces: 16 to 64 characters of [A-Za-z0-9_-]. */
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
/** At most this many unexpired nonces are remembered; beyond it, signed requests are refused until some expire. */
export const MAX_REMEMBERED_NONCES = 1_000;

export interface TrustedOperator {
  id: string;
  /** Base64 Ed25519 public key (32 bytes). */
  publicKey: string;
  /** The actions this operator may take (and approve). */
  actions: Permission[];
}

export interface TrustedBot {
  id: string;
  publicKey: string;
  /** The venues whose reports this bot may sign. */
  venues: string[];
}

/** The guard's view of its account in the worker's trust anchor: public keys and roles only, never a secret. */
export interface TrustView {
  accountId: string;
  /** False when the anchor does not list the account: then no operator may loosen its guard. */
  listed: boolean;
  /** The venues the anchor binds to the account. */
  venues: string[];
  operators: TrustedOperator[];
  /** Actions that need a second operator's approval, and how long a request waits for it. */
  approval: { actions: OperatorActionName[]; windowSeconds: number } | null;
  /** When set, every report must be signed by one of these bots, bound to the report's venue. */
  bots: TrustedBot[] | null;
  /** Where the anchor came from and its digest (for state and audit; e.g. `file /etc/breaker/trust.json sha256:ab12…`). */
  source: string;
}

/** The signature part of an operator request. */
export interface OperatorAuth {
  nonce: string;
  /** ISO 8601 instant. */
  expiresAt: string;
  /** Base64 Ed25519 signature of {@link operatorActionMessage}. */
  signature: string;
}

/** The signature part of a bot report. */
export interface BotAuth {
  /** The bot's id in the trust anchor. */
  bot: string;
  /** Base64 Ed25519 signature of {@link botReportMessage}. */
  signature: string;
}

/** Schema of `auth` in an operator request: shape only (the guard checks the signature itself). */
export const operatorAuthSchema = strictObject(
  {
    nonce: rule<string>((v) => (typeof v === 'string' && NONCE.test(v) ? undefined : `must be 16-64 characters of A-Z a-z 0-9 _ -, got ${got(v)}`)),
    expiresAt: rule<string>((v) => (typeof v === 'string' && v.length <= 40 && !Number.isNaN(Date.parse(v)) ? undefined : `must be an ISO 8601 instant, got ${got(v)}`)),
    signature: rule<string>((v) => (typeof v === 'string' && v.length <= 200 ? undefined : `must be a base64 Ed25519 signature, got ${got(v)}`)),
  },
  '{"nonce": "...", "expiresAt": "2026-01-01T00:00:00Z", "signature": "<base64>"}',
);

/** Schema of `auth` in a bot report: shape only. */
export const botAuthSchema = strictObject(
  {
    bot: rule<string>((v) => (typeof v === 'string' && v.length >= 1 && v.length <= 64 ? undefined : `must be the bot's id in the trust anchor, got ${got(v)}`)),
    signature: rule<string>((v) => (typeof v === 'string' && v.length <= 200 ? undefined : `must be a base64 Ed25519 signature, got ${got(v)}`)),
  },
  '{"bot": "mm-bot", "signature": "<base64>"}',
);

/** Validates a report's `auth` field (shape only). */
export function parseBotAuth(raw: unknown): Parsed<BotAuth> {
  return validate(botAuthSchema, raw, 'report.auth');
}

/** Nonce → the instant it expires; pruned as they expire. */
export type UsedNonces = Record<string, string>;

export type Authenticated = { ok: true; operator: TrustedOperator; keyId: string } | { ok: false; error: string };

/**
 * Checks a signed operator action against the guard's trust view, in the order an operator fixes them: trust loaded,
 * account listed, operator listed, action allowed, expiry, nonce unseen, signature.
 * @param at the guard's clock (workflow time)
 */
export function authenticateOperator(input: {
  trust: TrustView | undefined;
  accountId: string;
  action: OperatorActionName | 'approve' | 'configure';
  /** The action whose permission is needed (for approve: the approved request's action). */
  permission: Permission;
  args: Record<string, unknown>;
  operator: string;
  reason: string;
  auth: OperatorAuth | undefined;
  usedNonces: UsedNonces;
  at: string;
}): Authenticated {
  const { trust, accountId, action, permission, operator, auth, at } = input;
  const fail = (error: string): Authenticated => ({ ok: false, error: clip(`${action}: ${error}`, MAX_ERROR_CHARS) });
  if (!trust) return fail("the guard has not loaded its worker's trust anchor yet; try again in a few seconds");
  if (!trust.listed) return fail(`account ${accountId} is not listed in the worker's trust anchor (${trust.source}): no operator may ${action} its guard`);
  if (!auth) return fail(`unsigned: every ${action} must carry "auth" {nonce, expiresAt, signature} signed by an operator key listed in the trust anchor (breaker sign)`);
  const listed = trust.operators.find((o) => o.id === operator);
  if (!listed) return fail(`operator ${JSON.stringify(clip(operator))} is not listed for account ${accountId} in the trust anchor`);
  if (!listed.actions.includes(permission)) {
    return fail(`operator ${JSON.stringify(operator)} may not ${permission} (allowed: ${listed.actions.join(', ') || 'nothing'})`);
  }
  const expires = Date.parse(auth.expiresAt);
  const now = Date.parse(at);
  // NaN passes both comparisons below, and pruneNonces drops a NaN-dated nonce at once: a signed request whose
  // expiresAt does not parse would be valid, and replayable, forever. Callers validate the shape first; this fails closed.
  if (Number.isNaN(expires)) return fail(`expiresAt ${JSON.stringify(clip(String(auth.expiresAt)))} is not an instant (ISO 8601); sign it again`);
  if (Number.isNaN(now)) return fail(`the guard's clock ${JSON.stringify(clip(String(at)))} is not an instant`);
  if (expires <= now) return fail(`the request expired at ${auth.expiresAt} (${Math.round((now - expires) / 1000)} s ago); sign it again`);
  if (expires - now > MAX_SIGNED_VALIDITY_SECONDS * 1000) {
    return fail(`expiresAt ${auth.expiresAt} is more than ${MAX_SIGNED_VALIDITY_SECONDS} s ahead of the guard's clock (${at}); sign with a shorter validity`);
  }
  // Own keys only: a nonce such as "__defineGetter__" (16 allowed characters) is an inherited member of every object.
  if (Object.prototype.hasOwnProperty.call(input.usedNonces, auth.nonce)) return fail(`nonce ${auth.nonce} was already used: a replayed request`);
  if (Object.keys(input.usedNonces).length >= MAX_REMEMBERED_NONCES) return fail(`too many signed requests in ${MAX_SIGNED_VALIDITY_SECONDS} s; try again later`);
  const message = operatorActionMessage({ accountId, action, args: input.args, operator, reason: input.reason, nonce: auth.nonce, expiresAt: auth.expiresAt });
  if (!verifyEd25519(listed.publicKey, auth.signature, message)) {
    return fail(`the signature does not match operator ${JSON.stringify(operator)}'s key ${keyIdOf(listed.publicKey)} for this account, action, arguments, reason, nonce and expiry`);
  }
  return { ok: true, operator: listed, keyId: keyIdOf(listed.publicKey) };
}

/** Nonces still unexpired at `at`. */
export function pruneNonces(used: UsedNonces, at: string): UsedNonces {
  const now = Date.parse(at);
  return Object.fromEntries(Object.entries(used).filter(([, expiresAt]) => Date.parse(expiresAt) > now));
}

/**
 * Checks a bot report's signature when the account lists bot keys. `report` is the report as received, `auth`
 * included; the signature covers everything else.
 * @returns the bot's id, null when the account's reports need no signature, or the reason it is refused
 */
export function authenticateReport(trust: TrustView | undefined, accountId: string, report: Record<string, unknown>, venue: string): { ok: true; bot: string | null } | { ok: false; error: string } {
  // Before the anchor is loaded nobody knows whether the account wants signed reports: refused (the bot sends it
  // again), since accepting would let a forged report in during the first seconds of every run.
  if (trust === undefined) return { ok: false, error: "report: the guard has not loaded its worker's trust anchor yet; send the report again in a few seconds" };
  if (trust.bots === null) return { ok: true, bot: null };
  const { auth, ...rest } = report;
  if (auth === undefined) return { ok: false, error: `report.auth: is required: account ${accountId} accepts only reports signed by its bots' keys (the trust anchor lists them)` };
  const parsed = parseBotAuth(auth);
  if (!parsed.ok) return { ok: false, error: parsed.error };
  const bot = trust.bots.find((b) => b.id === parsed.value.bot);
  if (!bot) return { ok: false, error: `report.auth.bot: ${JSON.stringify(clip(parsed.value.bot))} is not a bot of account ${accountId} in the trust anchor` };
  if (!bot.venues.includes(venue)) return { ok: false, error: `report.auth.bot: bot ${JSON.stringify(bot.id)} may not report for venue ${JSON.stringify(clip(venue))} (its venues: ${bot.venues.join(', ')})` };
  if (!verifyEd25519(bot.publicKey, parsed.value.signature, botReportMessage(accountId, rest))) {
    return { ok: false, error: `report.auth.signature: does not match bot ${JSON.stringify(bot.id)}'s key ${keyIdOf(bot.publicKey)} for this report` };
  }
  return { ok: true, bot: bot.id };
}

/** Shape check of a trust view coming back from the worker's activity (any worker on the task queue could answer). */
const trustViewSchema = z.object({
  accountId: z.string().max(64),
  listed: z.boolean(),
  venues: z.array(z.string().max(64)).max(64),
  operators: z.array(z.object({ id: z.string().min(1).max(64), publicKey: z.string().max(100), actions: z.array(z.enum(PERMISSIONS)).max(10) })).max(100),
  approval: z.object({ actions: z.array(z.enum(OPERATOR_ACTIONS)).max(10), windowSeconds: z.number().int().min(10).max(86_400) }).nullable(),
  bots: z.array(z.object({ id: z.string().min(1).max(64), publicKey: z.string().max(100), venues: z.array(z.string().max(64)).max(64) })).max(100).nullable(),
  source: z.string().max(300),
});

/** Validates a trust view (from the loadTrust activity). */
export function parseTrustView(raw: unknown): Parsed<TrustView> {
  if (!isPlainObject(raw)) return { ok: false, error: `trust view: must be an object, got ${got(raw)}` };
  const parsed = trustViewSchema.safeParse(raw);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, error: clip(`trust view: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, MAX_ERROR_CHARS) };
}
