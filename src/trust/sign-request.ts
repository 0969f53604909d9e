/**
 * Signing on the operator's (or bot's) side: a signed operator request ready to send as an update's argument, a
 * signed report, and reading a local key file. The bytes signed are defined once, in src/domain/signing.ts; the
 * guard checks them with the same functions.
 */
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { botReportMessage, operatorActionMessage, publicKeyOf, signEd25519 } from '../domain/signing';

/** PKCS#8 DER prefix of an Ed25519 private key (RFC 8410): the 32 raw bytes follow it. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * Signs with Node's crypto (OpenSSL), about 50 times faster than the pure-JS signer the workflow sandbox needs for
 * checking; the signature is the same (Ed25519 is deterministic), which test/unit/signing.test.ts checks both ways.
 */
function signFast(secretKey: string, message: Uint8Array): string {
  const raw = Buffer.from(secretKey, 'base64');
  if (raw.length !== 32 || raw.toString('base64') !== secretKey) return signEd25519(secretKey, message);
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  return sign(null, message, key).toString('base64');
}
import { MAX_SIGNED_VALIDITY_SECONDS } from '../domain/trust';

/** A key file's content: `breaker keygen` writes it (mode 0600). */
export interface KeyFile {
  kind: 'portfolio-breaker-ed25519';
  /** The operator's (or bot's) id in the trust anchor. */
  id: string;
  secretKey: string;
  publicKey: string;
}

/** Signed requests are valid this long unless told otherwise. */
export const DEFAULT_SIGNED_TTL_SECONDS = 300;

export interface SignOperatorRequestInput {
  accountId: string;
  action: string;
  operator: string;
  reason: string;
  /** The action's own fields (resyncSeq: `{ venue, seq }`; approve: `{ requestId }`). */
  args?: Record<string, unknown>;
  secretKey: string;
  /** @default DEFAULT_SIGNED_TTL_SECONDS; at most MAX_SIGNED_VALIDITY_SECONDS */
  ttlSeconds?: number;
  now?: Date;
}

/**
 * The request to send for an operator action, signed: `{ operator, reason, ...args, auth: { nonce, expiresAt,
 * signature } }`. Operator and reason are trimmed first, as the guard trims them before checking.
 * @throws Error for a ttl outside 1..MAX_SIGNED_VALIDITY_SECONDS, or args naming operator, reason or auth
 */
export function signOperatorRequest(input: SignOperatorRequestInput): Record<string, unknown> {
  const ttl = input.ttlSeconds ?? DEFAULT_SIGNED_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_SIGNED_VALIDITY_SECONDS) {
    throw new Error(`ttl: must be a whole number of seconds from 1 to ${MAX_SIGNED_VALIDITY_SECONDS}, got ${ttl}`);
  }
  const operator = input.operator.trim();
  const reason = input.reason.trim();
  const args = input.args ?? {};
  // The guard takes the action's arguments to be every field but these three: an argument of the same name would
  // replace the signed operator or reason in the request and make it one the guard refuses.
  const reserved = ['operator', 'reason', 'auth'].filter((k) => Object.prototype.hasOwnProperty.call(args, k));
  if (reserved.length > 0) throw new Error(`args: ${reserved.join(', ')} belong to the request itself, not to the action's arguments`);
  const nonce = randomBytes(16).toString('base64url');
  const expiresAt = new Date((input.now ?? new Date()).getTime() + ttl * 1000).toISOString();
  const signature = signFast(input.secretKey, operatorActionMessage({ accountId: input.accountId, action: input.action, args, operator, reason, nonce, expiresAt }));
  return { operator, reason, ...args, auth: { nonce, expiresAt, signature } };
}

/** A report signed by a bot: the report plus `auth: { bot, signature }`. */
export function signBotReport<R extends object>(accountId: string, report: R, bot: string, secretKey: string): R & { auth: { bot: string; signature: string } } {
  const rest: Record<string, unknown> = { ...(report as Record<string, unknown>) };
  delete rest.auth;
  const signature = signFast(secretKey, botReportMessage(accountId, rest));
  return { ...(rest as R), auth: { bot, signature } };
}

/**
 * Reads a key file, refusing one that others can read (as ssh does: a secret key readable by the group is no
 * longer the operator's alone).
 * @throws Error naming the file and what is wrong
 */
export function readKeyFile(path: string): KeyFile {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    throw new Error(`key file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if ((mode & 0o077) !== 0) {
    throw new Error(`key file ${path}: permissions ${mode.toString(8).padStart(4, '0')} are too open; it holds a secret key: chmod 600 ${path}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`key file ${path}: not valid JSON (${(err as Error).message})`);
  }
  const k = raw as Partial<KeyFile>;
  if (k.kind !== 'portfolio-breaker-ed25519' || typeof k.id !== 'string' || typeof k.secretKey !== 'string' || typeof k.publicKey !== 'string') {
    throw new Error(`key file ${path}: not a portfolio-breaker key file (kind, id, secretKey, publicKey expected; breaker keygen writes one)`);
  }
  let derived: string;
  try {
    derived = publicKeyOf(k.secretKey);
  } catch {
    throw new Error(`key file ${path}: secretKey is not a base64 Ed25519 secret key (32 bytes)`);
  }
  if (derived !== k.publicKey) throw new Error(`key file ${path}: its publicKey is not the secretKey's`);
  return k as KeyFile;
}
