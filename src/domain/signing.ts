/**
 * What an operator or a bot signs, and the check of a signature: pure code, safe inside the workflow sandbox (no Node
 * built-ins), so that the guard itself decides whether a request is authentic, against the keys the worker's trust
 * anchor gave it (src/trust/anchor.ts), never against keys a client brought.
 *
 * Ed25519 through @noble/curves (audited, pure JavaScript, deterministic): node:crypto is not available in the
 * workflow sandbox, and hand-written curve arithmetic has no place in a risk guard. A check costs about 2.5 ms of
 * worker CPU (bench: "signature checks"); operator actions are rare, and signed bot reports pay it once per report.
 *
 * A signed message is a domain-separation line followed by canonical JSON (object keys sorted, no spaces), so that
 * an operator action can never be replayed as a bot report or the other way round, and any client in any language
 * can build the same bytes: see {@link operatorActionMessage} and {@link botReportMessage}.
 */
import { ed25519 } from '@noble/curves/ed25519.js';

/** The first line of every signed operator action. */
export const OPERATOR_ACTION_DOMAIN = 'portfolio-breaker/operator-action/v1';
/** The first line of every signed bot report. */
export const BOT_REPORT_DOMAIN = 'portfolio-breaker/bot-report/v1';

/**
 * JSON with object keys sorted (by UTF-16 code units, as `Array.prototype.sort` does) and no whitespace; undefined
 * fields left out. Numbers are written as JSON writes them, so signed fields should be strings or whole numbers.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** What an operator signs for one action on one account. */
export interface OperatorActionToSign {
  accountId: string;
  /** reset, disable, enable, halt, resyncSeq, approve, configure. */
  action: string;
  /** The action's own arguments (e.g. `{ venue, seq }` for resyncSeq, `{ requestId }` for approve; `{}` when none). */
  args: Record<string, unknown>;
  /** The operator id, as listed in the trust anchor. */
  operator: string;
  reason: string;
  /** Unique per request: a request seen once is refused the second time. */
  nonce: string;
  /** ISO 8601 instant after which the request is refused. */
  expiresAt: string;
}

/** The exact bytes an operator signs: `portfolio-breaker/operator-action/v1\n` + canonical JSON of the fields. */
export function operatorActionMessage(fields: OperatorActionToSign): Uint8Array {
  const { accountId, action, args, operator, reason, nonce, expiresAt } = fields;
  return utf8(`${OPERATOR_ACTION_DOMAIN}\n${canonicalJson({ accountId, action, args, operator, reason, nonce, expiresAt })}`);
}

/**
 * The exact bytes a bot signs for a report: `portfolio-breaker/bot-report/v1\n` + canonical JSON of
 * `{ accountId, report }`, where `report` is the report as sent without its `auth` field. The report's `seq` makes a
 * replayed report a duplicate or stale, so no nonce is needed.
 */
export function botReportMessage(accountId: string, reportWithoutAuth: Record<string, unknown>): Uint8Array {
  return utf8(`${BOT_REPORT_DOMAIN}\n${canonicalJson({ accountId, report: reportWithoutAuth })}`);
}

/**
 * True when `signature` (base64, 64 bytes) is `publicKey`'s (base64, 32 raw bytes) Ed25519 signature of `message`.
 * Never throws: malformed keys or signatures are simply not valid.
 */
export function verifyEd25519(publicKey: string, signature: string, message: Uint8Array): boolean {
  const key = fromBase64(publicKey);
  const sig = fromBase64(signature);
  if (!key || key.length !== 32 || !sig || sig.length !== 64) return false;
  try {
    // zip215: false is RFC 8032's strict verification (no malleable encodings), the same rule as Node's crypto.verify.
    return ed25519.verify(sig, message, key, { zip215: false });
  } catch {
    return false;
  }
}

/** Signs `message` with a 32-byte Ed25519 secret key (base64); for the CLI, clients and tests. */
export function signEd25519(secretKey: string, message: Uint8Array): string {
  const key = fromBase64(secretKey);
  if (!key || key.length !== 32) throw new Error('an Ed25519 secret key is 32 bytes, base64-encoded');
  return toBase64(ed25519.sign(message, key));
}

/** A new Ed25519 key pair, both base64 (the secret is 32 raw bytes, the public key 32 raw bytes). */
export function newEd25519KeyPair(): { secretKey: string; publicKey: string } {
  const secret = ed25519.utils.randomSecretKey();
  return { secretKey: toBase64(secret), publicKey: toBase64(ed25519.getPublicKey(secret)) };
}

/** The public key (base64) of a secret key (base64). */
export function publicKeyOf(secretKey: string): string {
  const key = fromBase64(secretKey);
  if (!key || key.length !== 32) throw new Error('an Ed25519 secret key is 32 bytes, base64-encoded');
  return toBase64(ed25519.getPublicKey(key));
}

/** True for a base64 Ed25519 public key (32 bytes). */
export function isEd25519PublicKey(value: string): boolean {
  const key = fromBase64(value);
  return key !== undefined && key.length === 32;
}

/** A short fingerprint of a public key, for events, audit records and `breaker keys`: its first 12 base64 characters. */
export function keyIdOf(publicKey: string): string {
  return publicKey.replace(/[^A-Za-z0-9]/g, '').slice(0, 12);
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Standard base64 (with padding) to bytes; undefined for anything else, or longer than 1 KiB. (No Buffer or atob in the
 * workflow sandbox.) Canonical only: the bits after the last byte must be zero, so that each key and signature has
 * exactly one spelling (otherwise `QR==` and `QQ==` are the same byte, and the anchor's "one key, one operator" check,
 * which compares strings, could be passed with one key written twice).
 */
export function fromBase64(text: unknown): Uint8Array | undefined {
  if (typeof text !== 'string' || text.length > 1400 || !CANONICAL_BASE64.test(text)) return undefined;
  // The last data character before padding: with "==" its low 4 bits are unused, with "=" its low 2 bits.
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  if (padding > 0 && (ALPHABET.indexOf(text[text.length - padding - 1]!) & (padding === 2 ? 0b1111 : 0b11)) !== 0) return undefined;
  const clean = text.replace(/=+$/, '');
  const bytes = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let out = 0;
  for (const ch of clean) {
    acc = (acc << 6) | ALPHABET.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[out++] = (acc >> bits) & 0xff;
    }
  }
  return bytes;
}

export function toBase64(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    text += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!;
    text += i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63]! : '=';
    text += i + 2 < bytes.length ? ALPHABET[n & 63]! : '=';
  }
  return text;
}
