/**
 * The guard worker's payload converter: Temporal's default converter, except that a payload it cannot decode becomes
 * an {@link UndecodablePayload} instead of an exception.
 *
 * Why: any Temporal client can send a guard anything. With the default converter, a signal whose payload cannot be
 * decoded (`--input-meta encoding=json/protobuf`, a Python bot's `float("nan")` written as `NaN`, which `JSON.parse`
 * refuses) throws inside the workflow sandbox: that workflow task fails, and so does every later one, for ever. As
 * an update argument it is refused, but as a retryable ValueError/SyntaxError. With this converter the handler
 * receives a value it can record as rejected, and a validator can refuse with a clear, non-retryable failure.
 *
 * Encoding to payloads is the default converter's, unchanged; so is decoding of everything the default can decode.
 * It is loaded by the worker (`Worker.create({ dataConverter: { payloadConverterPath } })`) and bundled into the
 * workflow code (`bundleWorkflowCode({ payloadConverterPath })`); src/worker-factory.ts does both. It runs inside the
 * workflow sandbox: no Node built-ins, no I/O. Clients keep the default converter: they must be able to send
 * whatever a bot sends.
 */
import { METADATA_ENCODING_KEY, PayloadConverter, PayloadConverterError, defaultPayloadConverter, encodingTypes } from '@temporalio/common';
import type { ConverterHint, Payload, SerializationContext } from '@temporalio/common';
import { CONTROL_CHARACTERS, clip } from '../domain/limits';
import { UndecodablePayload } from './undecodable';

/** Longest reason an {@link UndecodablePayload} carries (it ends up in events and error messages). */
export const MAX_UNDECODABLE_REASON_CHARS = 200;
/** Longest piece of the payload itself (an encoding name, a parser's quote of the input) a reason may echo. */
const MAX_ECHOED_CHARS = 64;

/**
 * The encoding of a payload the worker's payload codec refused to decrypt (src/codec/encryption.ts): not encrypted
 * while this deployment requires encryption, an unknown key id, a tag that does not verify. The codec cannot throw
 * (a throw while decoding an activation fails the workflow task for ever), so it hands the converter this payload,
 * with its reason in {@link REFUSED_REASON_METADATA_KEY}, and the converter turns it into an UndecodablePayload.
 * Defined here, not in the codec module, because this module runs in the workflow sandbox and the codec's does not.
 */
export const REFUSED_ENCODING = 'binary/refused';
/** Metadata key of a refused payload's reason (UTF-8, short, never any of the payload's content). */
export const REFUSED_REASON_METADATA_KEY = 'refused-reason';

const JSON_ENCODING = encodingTypes.METADATA_ENCODING_JSON;
/** The encodings the default converter decodes (DefaultPayloadConverter: undefined, binary, JSON). */
const KNOWN_ENCODINGS: ReadonlySet<string> = new Set([encodingTypes.METADATA_ENCODING_NULL, encodingTypes.METADATA_ENCODING_RAW, JSON_ENCODING]);

const CONTROL_CHARACTERS_ALL = new RegExp(CONTROL_CHARACTERS.source, 'g');

/**
 * A reason fit for history and an operator's screen: control characters replaced, at most
 * {@link MAX_UNDECODABLE_REASON_CHARS} characters in all (`clip` appends the original length when it cuts).
 */
function reasonOf(text: string): string {
  const clean = text.replace(CONTROL_CHARACTERS_ALL, '?');
  if (clean.length <= MAX_UNDECODABLE_REASON_CHARS) return clean;
  const suffix = `…(${clean.length} characters)`.length;
  return clip(clean, MAX_UNDECODABLE_REASON_CHARS - suffix);
}

/**
 * Index of the first byte that breaks UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence), or -1 when all of it is valid. The SDK's decoder silently replaces such bytes
 * with U+FFFD, which would let mangled text through as if it were what the sender meant.
 */
export function firstInvalidUtf8Byte(bytes: ArrayLike<number>): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b0 = bytes[i]!;
    if (b0 < 0x80) {
      i += 1;
      continue;
    }
    // Continuation bytes needed, and the allowed range of the first one (which excludes overlongs, surrogates and
    // code points above U+10FFFF); later continuation bytes are always 0x80..0xBF.
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) need = 1;
    else if (b0 === 0xe0) [need, lo] = [2, 0xa0];
    else if (b0 === 0xed) [need, hi] = [2, 0x9f];
    else if (b0 >= 0xe1 && b0 <= 0xef) need = 2;
    else if (b0 === 0xf0) [need, lo] = [3, 0x90];
    else if (b0 === 0xf4) [need, hi] = [3, 0x8f];
    else if (b0 >= 0xf1 && b0 <= 0xf3) need = 3;
    else return i;
    if (i + need >= n) return i;
    const b1 = bytes[i + 1]!;
    if (b1 < lo || b1 > hi) return i;
    for (let k = 2; k <= need; k++) {
      const b = bytes[i + k]!;
      if (b < 0x80 || b > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/**
 * The text of valid UTF-8 bytes, at most the first `maxBytes` of them (cut at a character boundary), without the
 * SDK's decoder. Only for metadata values, which are short unless someone is being odd.
 */
function utf8Prefix(bytes: ArrayLike<number>, maxBytes: number): string {
  let end = Math.min(bytes.length, maxBytes);
  // A continuation byte (10xxxxxx) at the cut belongs to the character before it: cut before that character.
  while (end < bytes.length && end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  let escaped = '';
  for (let i = 0; i < end; i++) escaped += `%${bytes[i]!.toString(16).padStart(2, '0')}`;
  // Valid UTF-8, percent-escaped, is exactly what decodeURIComponent decodes (and it is available in the sandbox).
  return decodeURIComponent(escaped);
}

/** Why the default converter could not decode this payload, found before asking it; undefined when it can try. */
function problemOf(payload: Payload): string | undefined {
  if (payload.metadata === undefined || payload.metadata === null) return 'payload has no metadata';
  const encodingBytes = payload.metadata[METADATA_ENCODING_KEY];
  if (encodingBytes === undefined || encodingBytes === null) return 'payload metadata has no encoding';
  if (firstInvalidUtf8Byte(encodingBytes) >= 0) return 'payload encoding is not valid UTF-8';
  const encoding = utf8Prefix(encodingBytes, 4 * MAX_ECHOED_CHARS);
  if (encoding === REFUSED_ENCODING) {
    const reasonBytes = payload.metadata[REFUSED_REASON_METADATA_KEY];
    const reason = reasonBytes && firstInvalidUtf8Byte(reasonBytes) < 0 ? utf8Prefix(reasonBytes, 4 * MAX_UNDECODABLE_REASON_CHARS) : 'no reason given';
    return `refused by the payload codec: ${reason}`;
  }
  if (!KNOWN_ENCODINGS.has(encoding)) {
    const shown = encodingBytes.length <= MAX_ECHOED_CHARS ? encoding : `${encoding.slice(0, MAX_ECHOED_CHARS)}…(${encodingBytes.length} bytes)`;
    return `unknown encoding "${shown}" (this worker decodes ${[...KNOWN_ENCODINGS].join(', ')})`;
  }
  if (encoding === JSON_ENCODING) {
    if (payload.data === undefined || payload.data === null) return `${JSON_ENCODING} payload has no data`;
    const at = firstInvalidUtf8Byte(payload.data);
    if (at >= 0) return `${JSON_ENCODING} payload is not valid UTF-8 (byte ${at} of ${payload.data.length})`;
  }
  return undefined;
}

/**
 * The default payload converter, except that {@link PayloadConverter.fromPayload} returns an
 * {@link UndecodablePayload} for a payload it cannot decode (missing metadata or encoding, unknown encoding, JSON data
 * that is missing, not UTF-8 or not JSON) instead of throwing.
 */
export class GuardPayloadConverter implements PayloadConverter {
  toPayload<T>(value: T, context?: SerializationContext, hint?: ConverterHint<T>): Payload {
    return defaultPayloadConverter.toPayload(value, context, hint);
  }

  fromPayload<T>(payload: Payload, context?: SerializationContext, hint?: ConverterHint<T>): T {
    const problem = problemOf(payload);
    if (problem !== undefined) return new UndecodablePayload(reasonOf(problem)) as T;
    try {
      return defaultPayloadConverter.fromPayload<T>(payload, context, hint);
    } catch (err) {
      // A converter hint this converter does not support is a mistake in our code, not in the payload.
      if (err instanceof PayloadConverterError) throw err;
      // What is left is the parser refusing the text (NaN, Infinity, truncated JSON, ...). V8 quotes at most a few
      // dozen characters of the input in its message; the clip bounds that whatever the engine does.
      const message = err instanceof Error ? err.message : String(err);
      return new UndecodablePayload(reasonOf(`${JSON_ENCODING} payload is not valid JSON: ${clip(message, MAX_ECHOED_CHARS + 40)}`)) as T;
    }
  }
}

/** The export `payloadConverterPath` modules must have (see DataConverter.payloadConverterPath). */
export const payloadConverter: PayloadConverter = new GuardPayloadConverter();
