/**
 * Encrypted history: a payload codec that encrypts every payload a worker, client or CLI sends to Temporal with
 * AES-256-GCM (node:crypto), and the loading of its keys from the deployment's environment.
 *
 * Format of an encrypted payload:
 * - metadata `encoding` = `binary/encrypted`, `encryption-key-id` = the id of the key that encrypted it (UTF-8);
 * - data = IV (12 random bytes, new for every payload) ‖ ciphertext ‖ GCM tag (16 bytes);
 * - the plaintext is the whole original Payload, protobuf-encoded (`temporal.api.common.v1.Payload`), so that its
 *   metadata (encoding, message type) is hidden and restored too;
 * - the additional authenticated data is the key id, so that a payload relabelled with another id does not verify.
 *
 * Keys rotate by id: the first key of {@link CODEC_KEYS_ENV} encrypts, every key listed decrypts. History written
 * under an old key stays readable for as long as that key stays in the list.
 *
 * A codec runs outside the workflow sandbox, before the payload converter. Inside a worker its decode must never
 * throw: a throw while decoding a workflow activation fails that workflow task, and every retry of it, for ever. So a
 * payload it will not decrypt (not encrypted at all, an unknown key id, a tag that does not verify) becomes a
 * `binary/refused` payload that says why, which the guard's converter (src/api/payload-converter.ts) turns into an
 * UndecodablePayload: a signal is recorded as rejected, an update refused. A client may choose to throw instead
 * (see {@link RefusalPolicy}).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { METADATA_ENCODING_KEY } from '@temporalio/common';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { REFUSED_ENCODING, REFUSED_REASON_METADATA_KEY } from '../api/payload-converter';

/** The variable holding the keys: comma-separated `<keyId>:<base64 of 32 bytes>`, the first one encrypts. */
export const CODEC_KEYS_ENV = 'BREAKER_CODEC_KEYS';
/** The variable naming a file that holds the same content as {@link CODEC_KEYS_ENV} (commas or new lines). */
export const CODEC_KEYS_FILE_ENV = 'BREAKER_CODEC_KEYS_FILE';

/** Encoding of an encrypted payload. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** Metadata key naming the key that encrypted a payload. */
export const KEY_ID_METADATA_KEY = 'encryption-key-id';

const CIPHER = 'aes-256-gcm';
const KEY_BYTES = 32;
/** 96 bits: the IV length GCM is defined for (other lengths are hashed into one, with weaker bounds). */
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Key ids appear in metadata and in refusal reasons: short, printable, no separators of the key list. */
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Strict base64 (the standard alphabet, padded): Buffer.from silently skips characters it does not know. */
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** How much of a hostile key id or encoding a refusal reason echoes. */
const MAX_ECHOED_CHARS = 40;

const utf8 = new TextEncoder();
const utf8Lenient = new TextDecoder('utf-8', { fatal: false });

/** A keyring: the key that encrypts, and every key (that one included) that decrypts, by id. */
export interface CodecKeys {
  /** Id of the key new payloads are encrypted with. */
  readonly primaryKeyId: string;
  /** Every key by id; the primary key is one of them. */
  readonly keys: ReadonlyMap<string, Buffer>;
}

/** A key list that cannot be used; the message names the variable and the entry, never a key. */
export class CodecKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecKeyError';
  }
}

/**
 * Parses a key list: `<keyId>:<base64 key>` entries separated by commas or new lines (blank entries ignored). The
 * first entry is the key that encrypts.
 * @param text the list
 * @param source where it came from, for error messages (e.g. `BREAKER_CODEC_KEYS`)
 * @returns the keyring
 * @throws CodecKeyError for an empty list, a malformed entry or id, a key that is not strict base64 of 32 bytes, or
 *   a duplicate id. Messages name `source` and the entry's position and id, never key material.
 */
export function parseCodecKeys(text: string, source: string): CodecKeys {
  const entries = text
    .split(/[,\n\r]/)
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) throw new CodecKeyError(`${source} holds no key (expected <keyId>:<base64 of ${KEY_BYTES} bytes>, comma-separated)`);
  const keys = new Map<string, Buffer>();
  entries.forEach((entry, i) => {
    const at = `${source}: entry ${i + 1}`;
    const colon = entry.indexOf(':');
    if (colon < 0) throw new CodecKeyError(`${at} is not <keyId>:<base64 key> (no colon)`);
    const id = entry.slice(0, colon).trim();
    const encoded = entry.slice(colon + 1).trim();
    if (!KEY_ID_PATTERN.test(id)) throw new CodecKeyError(`${at} has an invalid key id (1 to 64 characters of A-Z a-z 0-9 . _ -)`);
    if (keys.has(id)) throw new CodecKeyError(`${at}: key id "${id}" appears twice`);
    if (!BASE64_PATTERN.test(encoded) || encoded === '') throw new CodecKeyError(`${at} (key id "${id}"): the key is not valid base64`);
    const key = Buffer.from(encoded, 'base64');
    if (key.length !== KEY_BYTES) {
      throw new CodecKeyError(`${at} (key id "${id}"): the key is ${key.length} bytes, AES-256 needs ${KEY_BYTES} (make one with: openssl rand -base64 32)`);
    }
    keys.set(id, key);
  });
  return { primaryKeyId: entries[0]!.slice(0, entries[0]!.indexOf(':')).trim(), keys };
}

/**
 * The keyring of this process's environment: {@link CODEC_KEYS_ENV}, or the file named by
 * {@link CODEC_KEYS_FILE_ENV}; undefined when neither is set (or both are empty).
 * @param env the environment @default process.env
 * @throws CodecKeyError when both are set, the file cannot be read, or the list is malformed
 */
export function codecKeysFromEnv(env: NodeJS.ProcessEnv = process.env): CodecKeys | undefined {
  const inline = env[CODEC_KEYS_ENV]?.trim() ?? '';
  const file = env[CODEC_KEYS_FILE_ENV]?.trim() ?? '';
  if (inline !== '' && file !== '') throw new CodecKeyError(`set ${CODEC_KEYS_ENV} or ${CODEC_KEYS_FILE_ENV}, not both`);
  if (inline !== '') return parseCodecKeys(inline, CODEC_KEYS_ENV);
  if (file === '') return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new CodecKeyError(`${CODEC_KEYS_FILE_ENV}: cannot read ${file} (${code})`);
  }
  return parseCodecKeys(text, `${CODEC_KEYS_FILE_ENV} (${file})`);
}

/**
 * What {@link EncryptionCodec.decode} does with a payload it will not decrypt:
 * - `replace` (the default; workers): returns a `binary/refused` payload carrying the reason, which the guard's
 *   payload converter turns into an UndecodablePayload. Never throws.
 * - `throw` (operators' clients and CLI): throws a {@link PayloadRefusedError}; the call fails with that message
 *   instead of the default converter's "Unknown encoding: binary/refused".
 */
export type RefusalPolicy = 'replace' | 'throw';

/** A payload a client's codec will not decrypt (policy `throw`). */
export class PayloadRefusedError extends Error {
  constructor(readonly reason: string) {
    super(`payload refused by the encryption codec: ${reason}`);
    this.name = 'PayloadRefusedError';
  }
}

/** The outcome of decrypting one payload. */
export type DecryptResult = { ok: true; payload: Payload } | { ok: false; reason: string };

/** Text fit for a refusal reason: at most a few dozen characters, nothing unprintable. */
function echo(bytes: Uint8Array): string {
  const text = utf8Lenient.decode(bytes.subarray(0, 4 * MAX_ECHOED_CHARS));
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > MAX_ECHOED_CHARS ? `${printable.slice(0, MAX_ECHOED_CHARS)}…` : printable;
}

/** A refused payload: no data, the reason in metadata (see src/api/payload-converter.ts). */
export function refusedPayload(reason: string): Payload {
  return { metadata: { [METADATA_ENCODING_KEY]: utf8.encode(REFUSED_ENCODING), [REFUSED_REASON_METADATA_KEY]: utf8.encode(reason) }, data: new Uint8Array(0) };
}

/**
 * AES-256-GCM payload codec with key ids for rotation. Encodes every payload; decodes only payloads encrypted under
 * one of its keys, and refuses everything else (see {@link RefusalPolicy}).
 */
export class EncryptionCodec implements PayloadCodec {
  /**
   * @param keys the keyring (the primary key encrypts)
   * @param options.onRefused what decode does with a payload it will not decrypt @default 'replace'
   */
  constructor(
    private readonly keys: CodecKeys,
    private readonly options: { onRefused?: RefusalPolicy } = {},
  ) {
    if (!keys.keys.has(keys.primaryKeyId)) throw new CodecKeyError(`the primary key id "${keys.primaryKeyId}" is not in the keyring`);
  }

  /** Id of the key new payloads are encrypted with. */
  get primaryKeyId(): string {
    return this.keys.primaryKeyId;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encrypt(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const result = this.decrypt(p);
      if (result.ok) return result.payload;
      if (this.options.onRefused === 'throw') throw new PayloadRefusedError(result.reason);
      return refusedPayload(result.reason);
    });
  }

  /** Encrypts one payload under the primary key, with a fresh random IV. */
  encrypt(payload: Payload): Payload {
    const keyId = this.keys.primaryKeyId;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(CIPHER, this.keys.keys.get(keyId)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(utf8.encode(keyId));
    const plaintext = temporal.api.common.v1.Payload.encode(payload).finish();
    const data = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { metadata: { [METADATA_ENCODING_KEY]: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA_KEY]: utf8.encode(keyId) }, data };
  }

  /**
   * Decrypts one payload, or says why not. Never throws, whatever the input.
   * @returns the original payload, or the reason it is refused (short; echoes at most a few dozen characters of the
   *   payload's metadata, never its data)
   */
  decrypt(payload: Payload): DecryptResult {
    const metadata = payload.metadata ?? {};
    const encoding = metadata[METADATA_ENCODING_KEY];
    if (!encoding || utf8Lenient.decode(encoding) !== ENCRYPTED_ENCODING) {
      const shown = encoding ? `encoding "${echo(encoding)}"` : 'no encoding';
      return { ok: false, reason: `not encrypted with this deployment's key (${shown})` };
    }
    const keyIdBytes = metadata[KEY_ID_METADATA_KEY];
    if (!keyIdBytes || keyIdBytes.length === 0) return { ok: false, reason: `encrypted payload without ${KEY_ID_METADATA_KEY}` };
    const keyId = utf8Lenient.decode(keyIdBytes);
    const key = this.keys.keys.get(keyId);
    if (key === undefined) return { ok: false, reason: `unknown key id ${echo(keyIdBytes)}` };
    const data = payload.data ?? new Uint8Array(0);
    if (data.length < IV_BYTES + TAG_BYTES) return { ok: false, reason: `encrypted payload too short (${data.length} bytes) for key id ${keyId}` };
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv(CIPHER, key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(keyIdBytes);
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      plaintext = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      return { ok: false, reason: `does not verify under key id ${keyId} (tampered, or another key under that id)` };
    }
    try {
      const inner = temporal.api.common.v1.Payload.decode(plaintext);
      return { ok: true, payload: { metadata: inner.metadata, data: inner.data } };
    } catch {
      // Authentic but not a Payload: written by a holder of the key with another format.
      return { ok: false, reason: `decrypted under key id ${keyId} but is not a Temporal payload` };
    }
  }
}

/**
 * The payload codecs this process's environment asks for: an {@link EncryptionCodec} when {@link CODEC_KEYS_ENV} or
 * {@link CODEC_KEYS_FILE_ENV} is set, none otherwise. For `dataConverter: { payloadCodecs }` of the worker
 * (GuardWorkerOptions.payloadCodecs), of clients and of the CLI.
 * @param env the environment @default process.env
 * @param options.onRefused what decode does with a payload it will not decrypt @default 'replace' (workers must
 *   keep it; operators' tools may pass 'throw' for a clearer error)
 * @returns `[codec]` or `[]`
 * @throws CodecKeyError when the keys are malformed (at start-up, not at the first payload)
 */
export function payloadCodecsFromEnv(env: NodeJS.ProcessEnv = process.env, options: { onRefused?: RefusalPolicy } = {}): PayloadCodec[] {
  const keys = codecKeysFromEnv(env);
  return keys === undefined ? [] : [new EncryptionCodec(keys, options)];
}
