/**
 * The audit trail: an append-only, hash-chained log of every risk event and operator action, one JSON-lines file per
 * account, kept outside Temporal so that it outlives history retention.
 *
 * Layout of the audit directory (passed in explicitly; this module reads no environment):
 * ```
 * <accountId>.jsonl   one record per line, canonical JSON, chained by `prevHash` -> `hash`
 * <accountId>.head    the last record's `{ seq, hash }`, rewritten atomically after each append
 * <accountId>.lock    present while one process appends to the account (exclusive, with stale takeover)
 * ```
 *
 * What the chain proves, honestly:
 * - An edited record no longer matches its own `hash`; a removed middle record leaves a `seq` gap or a `prevHash`
 *   that does not match its predecessor. {@link verify} reports the first such break.
 * - A chain alone cannot show that records were cut off the END: the shorter file is itself a valid chain. The
 *   head file is what catches that: it names the last record written, and a log that ends before it, or differs
 *   from it, is reported as broken.
 * - Anyone who can write the directory can also rewrite the whole chain and its head (the hashes carry no secret).
 *   For tamper-evidence against such a person, an operator must copy the heads somewhere they cannot write
 *   (periodically, or after every append: a head is 64 hex digits and a number) and compare later. The chain turns
 *   that small copy into a check of the whole log.
 *
 * Runs in activities and the CLI (Node I/O); the workflow never imports it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DecimalString, parseDecimal } from '../domain/money';
import { canonicalJson } from '../domain/signing';

/** The version of the record format; every record carries it as `v`. */
export const AUDIT_RECORD_VERSION = 1;
/** The `prevHash` of an account's first record. */
export const GENESIS_HASH = '0'.repeat(64);
/** The largest record line, in UTF-8 bytes including the newline. */
export const MAX_RECORD_BYTES = 16 * 1024;
/** `what` is clipped to this many characters (code points). */
export const MAX_WHAT_CHARS = 200;
/** `why` is clipped to this many characters (code points). */
export const MAX_WHY_CHARS = 2000;
/** `data` larger than this (canonical JSON, UTF-8 bytes) is replaced by a marker saying how large it was. */
export const MAX_DATA_BYTES = 8 * 1024;
/** How far back {@link latchOf} collects operator nonces. */
export const NONCE_WINDOW_MS = 15 * 60_000;

const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const EVENT_ID = /^[\x21-\x7e]{1,128}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const HEX64 = /^[0-9a-f]{64}$/;
const VALUATION_KEY = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
const MAX_ACTOR_CHARS = 128;
const MAX_VALUATION_KEYS = 16;
const MAX_VALUATION_CHARS = 64;
const MAX_DATA_DEPTH = 16;
/** Valuation fields that are money or percentages, hence decimal strings. */
const DECIMAL_VALUATION_KEYS = ['totalValue', 'lossPct', 'initialCapital', 'pnl', 'peakValue', 'drawdownPct', 'thresholdPct', 'warningPct'];

/**
 * What a record is about. A closed set: the caller (the audit activity) maps each guard event to one of these, and a
 * record of any other kind is refused on append and reported as invalid on read.
 * - `CircuitBreakerTriggered`, `TripRecalled` (a trip found again on restart): the breaker is tripped.
 * - `CircuitBreakerReset`: an operator reset it. {@link latchOf} looks only at these three.
 * - `BreakerDisabled`, `BreakerEnabled`, `Warning`, `SystemShutdown`: the other risk events.
 * - `OperatorAction`: an authenticated operator action that was carried out (its nonce in `data.nonce`).
 * - `OperatorActionRefused`, `ReportRefused`: what was refused, and why.
 */
export const AuditKind = {
  CircuitBreakerTriggered: 'CircuitBreakerTriggered',
  CircuitBreakerReset: 'CircuitBreakerReset',
  BreakerDisabled: 'BreakerDisabled',
  BreakerEnabled: 'BreakerEnabled',
  Warning: 'Warning',
  SystemShutdown: 'SystemShutdown',
  OperatorAction: 'OperatorAction',
  OperatorActionRefused: 'OperatorActionRefused',
  ReportRefused: 'ReportRefused',
  TripRecalled: 'TripRecalled',
  /** A guard started with this config (`data.config`, canonical JSON): the account's limits as last accepted. */
  GuardConfigured: 'GuardConfigured',
} as const;
export type AuditKind = (typeof AuditKind)[keyof typeof AuditKind];
const KINDS: ReadonlySet<string> = new Set(Object.values(AuditKind));

/** Plain JSON, as stored in `data`. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * Who acted: an operator (the key that signed, and the second operator who approved, if any), or a bot. Each field
 * is clipped to 128 characters; other fields are not kept.
 */
export interface AuditActor {
  operator?: string;
  keyId?: string;
  approvedBy?: string;
  bot?: string;
}

/**
 * The valuation behind an event. Values are strings (money and percentages as decimal strings such as "9650.00";
 * `totalValue`, `lossPct`, `initialCapital`, `pnl`, `peakValue`, `drawdownPct`, `thresholdPct` and `warningPct` must
 * parse as decimals) or null; at most 16 keys of at most 64 characters each.
 */
export interface AuditValuation {
  totalValue?: DecimalString;
  lossPct?: DecimalString;
  [key: string]: string | null | undefined;
}

/** One event to record, as the caller gives it. `accountId`, `seq` and the hashes are the store's. */
export interface AuditEntry {
  /** Unique per account and stable across retries: an entry whose id is already in the log is skipped. */
  eventId: string;
  /** When it happened (the workflow's time), ISO 8601; stored as `Date#toISOString()`. */
  at: string;
  kind: AuditKind;
  actor: AuditActor | null;
  /** A short text, clipped to {@link MAX_WHAT_CHARS}. */
  what: string;
  /** Clipped to {@link MAX_WHY_CHARS}. */
  why: string | null;
  valuation: AuditValuation | null;
  /**
   * A small JSON object (e.g. `{ nonce }` of an operator action; money in it as decimal strings, as everywhere);
   * {@link MAX_DATA_BYTES} at most, else replaced by `{ clipped: true, bytes }`.
   */
  data?: JsonObject;
}

/**
 * One line of an account's log. `hash` is the SHA-256 (hex) of the canonical JSON (keys sorted at every depth, no
 * spaces) of the record without `hash`; `prevHash` is the previous record's `hash`, {@link GENESIS_HASH} for
 * `seq` 1. The line itself is the canonical JSON of the whole record.
 */
export interface AuditRecord {
  v: typeof AUDIT_RECORD_VERSION;
  seq: number;
  eventId: string;
  accountId: string;
  at: string;
  kind: AuditKind;
  actor: AuditActor | null;
  what: string;
  why: string | null;
  valuation: AuditValuation | null;
  data: JsonObject;
  prevHash: string;
  hash: string;
}

/** The end of a chain: the last record's seq and hash (`{ seq: 0, hash: GENESIS_HASH }` for an empty log). */
export interface AuditHead {
  seq: number;
  hash: string;
}

export interface AuditAppendResult {
  accountId: string;
  /** The records this call wrote, in order. */
  written: AuditRecord[];
  /** Event ids that were already in the log (or repeated in this batch), hence not written again. */
  skipped: string[];
  /** The chain head after this call. */
  head: AuditHead;
}

export interface AuditAppendOptions {
  /** A lock file older than this (by mtime) belongs to a dead process and is taken over. @default 30000 */
  lockStaleMs?: number;
  /** How long to wait for another process's lock before failing. @default 60000 */
  lockTimeoutMs?: number;
}

/** Why a log is not intact. */
export type AuditProblemKind =
  | 'invalid-json' // a line is not JSON
  | 'invalid-record' // JSON, but not a record of this account in this format
  | 'edited' // a record does not match its own hash
  | 'removed' // a seq gap: records are missing
  | 'out-of-order' // a seq repeats or goes back
  | 'unlinked' // prevHash does not match the previous record
  | 'truncated' // the log ends before the record its head file names
  | 'head-mismatch' // the record the head names has another hash
  | 'head-invalid' // the head file is unreadable
  | 'missing'; // no log at all

export interface AuditProblem {
  kind: AuditProblemKind;
  /** The first broken record (for a line that cannot be read: its line number), or null when it is not one record. */
  seq: number | null;
  /** One line for people, e.g. "record 7 was edited (hash mismatch)". */
  message: string;
}

export interface AuditVerifyResult {
  accountId: string;
  ok: boolean;
  /** Records read before the first problem (all of them when ok). */
  records: number;
  /** The head of the chain as read from the log (up to the first problem). */
  head: AuditHead;
  problem: AuditProblem | null;
  /** Conditions that do not break the chain but that an operator should know, e.g. a missing head file. */
  warnings: string[];
}

/** What a guard needs from its account's audit trail when it starts. */
export interface AuditLatch {
  /** The last trip/reset record is a trip (`CircuitBreakerTriggered` or `TripRecalled`). */
  tripped: boolean;
  /** That trip's time, reason (`why`, else `what`) and event id, when tripped. */
  at?: string;
  reason?: string;
  eventId?: string;
  /** `data.nonce` of the `OperatorAction` records of the last {@link NONCE_WINDOW_MS}, oldest first, unique. */
  recentNonces: string[];
  /** `data.config` of the last `GuardConfigured` record: the account's config as last accepted, canonical JSON. */
  config?: string;
}

/** An entry that can never be written (bad id, kind, time, or a value that is not JSON). Retrying cannot help. */
export class AuditEntryError extends Error {
  override readonly name = 'AuditEntryError';
}

/** An account's log is not intact or not readable; `problem` says where. Appending to it is refused. */
export class AuditLogError extends Error {
  override readonly name = 'AuditLogError';
  constructor(
    message: string,
    readonly accountId: string,
    readonly problem: AuditProblem | null = null,
  ) {
    super(message);
  }
}

/** Another process held the account's lock for longer than the timeout. Retrying later may help. */
export class AuditLockTimeoutError extends Error {
  override readonly name = 'AuditLockTimeoutError';
}

/** Throws unless `accountId` is safe as a file name: a letter or digit, then up to 63 of `A-Za-z0-9_.-`. */
export function assertAccountId(accountId: unknown): asserts accountId is string {
  if (typeof accountId !== 'string' || !ACCOUNT_ID.test(accountId)) {
    throw new AuditEntryError(`invalid account id ${JSON.stringify(String(accountId)).slice(0, 80)}: expected a letter or digit, then up to 63 of A-Z a-z 0-9 _ . -`);
  }
}

/** Keys sorted at every depth, no spaces: the one canonical JSON of the project (what operators and bots sign too). */
export { canonicalJson };

/** The hash a record must carry: SHA-256 (hex) of the canonical JSON of the record without `hash`. */
export function recordHash(record: Omit<AuditRecord, 'hash'> | AuditRecord): string {
  const rest: Partial<AuditRecord> = { ...record };
  delete rest.hash;
  return createHash('sha256').update(canonicalJson(rest), 'utf8').digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// Entries: untrusted input made into plain, bounded JSON.

type PreparedEntry = Omit<AuditRecord, 'v' | 'seq' | 'accountId' | 'prevHash' | 'hash'>;

function clip(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A deep copy of `value` as plain JSON, or an AuditEntryError naming the first value JSON cannot carry. */
function toJson(value: unknown, where: string, depth: number, seen: Set<object>): JsonValue {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new AuditEntryError(`${where} is ${String(value)}, which JSON cannot carry`);
    return value;
  }
  if (typeof value !== 'object') throw new AuditEntryError(`${where} is a ${typeof value}, which JSON cannot carry`);
  if (depth > MAX_DATA_DEPTH) throw new AuditEntryError(`${where} is nested more than ${MAX_DATA_DEPTH} deep`);
  if (seen.has(value)) throw new AuditEntryError(`${where} refers to itself`);
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value.map((item, i) => {
        if (item === undefined) throw new AuditEntryError(`${where}[${i}] is undefined, which JSON cannot carry`);
        return toJson(item, `${where}[${i}]`, depth + 1, seen);
      });
    }
    if (!isPlainObject(value)) throw new AuditEntryError(`${where} is not a plain object (${Object.prototype.toString.call(value)})`);
    const out: JsonObject = {};
    for (const key of Object.keys(value)) {
      if (key === '__proto__') throw new AuditEntryError(`${where} has a key "__proto__"`);
      const item = value[key];
      if (item === undefined) continue; // as JSON.stringify does
      out[key] = toJson(item, `${where}.${key}`, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function prepareActor(actor: unknown, where: string): AuditActor | null {
  if (actor === null || actor === undefined) return null;
  if (!isPlainObject(actor)) throw new AuditEntryError(`${where}.actor must be an object or null`);
  const out: AuditActor = {};
  for (const key of ['operator', 'keyId', 'approvedBy', 'bot'] as const) {
    const value = actor[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string') throw new AuditEntryError(`${where}.actor.${key} must be a string`);
    out[key] = clip(value, MAX_ACTOR_CHARS);
  }
  return Object.keys(out).length === 0 ? null : out;
}

function prepareValuation(valuation: unknown, where: string): AuditValuation | null {
  if (valuation === null || valuation === undefined) return null;
  if (!isPlainObject(valuation)) throw new AuditEntryError(`${where}.valuation must be an object or null`);
  const keys = Object.keys(valuation).filter((k) => valuation[k] !== undefined);
  if (keys.length > MAX_VALUATION_KEYS) throw new AuditEntryError(`${where}.valuation has ${keys.length} keys, more than ${MAX_VALUATION_KEYS}`);
  const out: AuditValuation = {};
  for (const key of keys) {
    if (!VALUATION_KEY.test(key)) throw new AuditEntryError(`${where}.valuation has an invalid key ${JSON.stringify(key.slice(0, 40))}`);
    const value = valuation[key];
    if (value === null) {
      out[key] = null;
      continue;
    }
    if (typeof value !== 'string') throw new AuditEntryError(`${where}.valuation.${key} must be a string (money as a decimal string) or null`);
    if (value.length > MAX_VALUATION_CHARS) throw new AuditEntryError(`${where}.valuation.${key} is longer than ${MAX_VALUATION_CHARS} characters`);
    if (DECIMAL_VALUATION_KEYS.includes(key)) {
      const parsed = parseDecimal(value, `${where}.valuation.${key}`);
      if (!parsed.ok) throw new AuditEntryError(parsed.error);
    }
    out[key] = value;
  }
  return out;
}

function prepareEntry(entry: unknown, index: number): PreparedEntry {
  const where = `entries[${index}]`;
  if (!isPlainObject(entry)) throw new AuditEntryError(`${where} must be an object`);
  const { eventId, at, kind, what, why } = entry;
  if (typeof eventId !== 'string' || !EVENT_ID.test(eventId)) {
    throw new AuditEntryError(`${where}.eventId must be 1 to 128 printable ASCII characters without spaces`);
  }
  if (typeof at !== 'string' || !ISO_TIME.test(at) || !Number.isFinite(Date.parse(at))) {
    throw new AuditEntryError(`${where}.at must be an ISO 8601 time such as "2026-01-01T00:00:00.000Z"`);
  }
  if (typeof kind !== 'string' || !KINDS.has(kind)) {
    throw new AuditEntryError(`${where}.kind ${JSON.stringify(String(kind).slice(0, 40))} is not one of ${[...KINDS].join(', ')}`);
  }
  if (typeof what !== 'string') throw new AuditEntryError(`${where}.what must be a string`);
  if (why !== null && why !== undefined && typeof why !== 'string') throw new AuditEntryError(`${where}.why must be a string or null`);
  const data = entry.data === undefined ? {} : entry.data;
  if (!isPlainObject(data)) throw new AuditEntryError(`${where}.data must be a plain object`);
  const prepared: PreparedEntry = {
    eventId,
    at: new Date(at).toISOString(),
    kind: kind as AuditKind,
    actor: prepareActor(entry.actor, where),
    what: clip(what, MAX_WHAT_CHARS),
    why: typeof why === 'string' ? clip(why, MAX_WHY_CHARS) : null,
    valuation: prepareValuation(entry.valuation, where),
    data: toJson(data, `${where}.data`, 0, new Set()) as JsonObject,
  };
  const dataBytes = Buffer.byteLength(canonicalJson(prepared.data));
  if (dataBytes > MAX_DATA_BYTES) prepared.data = clippedData(dataBytes);
  // Room for what the store adds (v, seq, accountId, prevHash, hash and their keys: under 300 bytes).
  const budget = MAX_RECORD_BYTES - 300;
  if (Buffer.byteLength(canonicalJson(prepared)) > budget) prepared.data = clippedData(dataBytes);
  if (Buffer.byteLength(canonicalJson(prepared)) > budget && prepared.why !== null) prepared.why = clip(prepared.why, MAX_WHAT_CHARS);
  if (Buffer.byteLength(canonicalJson(prepared)) > budget) throw new AuditEntryError(`${where} is larger than ${budget} bytes even with its data and reason clipped`);
  return prepared;
}

/** What replaces a `data` too large to keep: the record still says that there was data, and how much. */
function clippedData(bytes: number): JsonObject {
  return { clipped: true, bytes };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading and checking a log.

type HeadFile = { kind: 'absent' } | { kind: 'invalid'; reason: string } | { kind: 'present'; head: AuditHead };

interface Inspection {
  records: AuditRecord[];
  problem: AuditProblem | null;
  warnings: string[];
  /** Bytes up to and including the last newline: what an interrupted append did not leave half-written. */
  completeBytes: number;
  tornTail: boolean;
}

class ForbiddenKey extends Error {}

/** JSON.parse that refuses `__proto__` keys, which the store never writes (a planted one is a bad record). */
function parseLine(line: string): unknown {
  return JSON.parse(line, (key, value: unknown) => {
    if (key === '__proto__') throw new ForbiddenKey('a key "__proto__"');
    return value;
  });
}

function isStringOrAbsent(value: unknown): boolean {
  return value === undefined || typeof value === 'string';
}

/** Why `value` is not a record of this account in format v1, or null when it is one. */
function recordShapeError(value: unknown, accountId: string): string | null {
  if (!isPlainObject(value)) return 'not an object';
  const allowed = ['v', 'seq', 'eventId', 'accountId', 'at', 'kind', 'actor', 'what', 'why', 'valuation', 'data', 'prevHash', 'hash'];
  const extra = Object.keys(value).find((k) => !allowed.includes(k));
  if (extra !== undefined) return `unexpected field ${JSON.stringify(extra.slice(0, 40))}`;
  if (value.v !== AUDIT_RECORD_VERSION) return `unknown version ${JSON.stringify(value.v)}`;
  if (typeof value.seq !== 'number' || !Number.isSafeInteger(value.seq) || value.seq < 1) return 'seq is not a positive integer';
  if (value.accountId !== accountId) return `it belongs to account ${JSON.stringify(String(value.accountId).slice(0, 70))}`;
  if (typeof value.eventId !== 'string' || !EVENT_ID.test(value.eventId)) return 'invalid eventId';
  if (typeof value.at !== 'string' || !Number.isFinite(Date.parse(value.at))) return 'invalid time';
  if (typeof value.kind !== 'string' || !KINDS.has(value.kind)) return `unknown kind ${JSON.stringify(String(value.kind).slice(0, 40))}`;
  if (typeof value.what !== 'string') return 'what is not a string';
  if (value.why !== null && typeof value.why !== 'string') return 'why is neither a string nor null';
  const actor = value.actor;
  if (actor !== null && !(isPlainObject(actor) && isStringOrAbsent(actor.operator) && isStringOrAbsent(actor.keyId) && isStringOrAbsent(actor.approvedBy) && isStringOrAbsent(actor.bot))) return 'invalid actor';
  const valuation = value.valuation;
  if (valuation !== null && !(isPlainObject(valuation) && Object.values(valuation).every((v) => v === null || typeof v === 'string'))) return 'invalid valuation';
  if (!isPlainObject(value.data)) return 'data is not an object';
  if (typeof value.prevHash !== 'string' || !HEX64.test(value.prevHash)) return 'invalid prevHash';
  if (typeof value.hash !== 'string' || !HEX64.test(value.hash)) return 'invalid hash';
  return null;
}

/**
 * Checks a log's text and its head file: every line a record, every hash and link, then the head. Stops at the first
 * problem. `exists` says whether the log file exists at all.
 */
function inspect(buffer: Buffer, accountId: string, head: HeadFile, exists: boolean): Inspection {
  const completeBytes = buffer.lastIndexOf(0x0a) + 1;
  const tornTail = completeBytes < buffer.length;
  const lines = buffer.subarray(0, completeBytes).toString('utf8').split('\n');
  lines.pop(); // the empty string after the last newline
  const records: AuditRecord[] = [];
  const warnings: string[] = [];
  const result = (problem: AuditProblem | null): Inspection => ({ records, problem, warnings, completeBytes, tornTail });

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let value: unknown;
    try {
      value = parseLine(lines[i] as string);
    } catch (err) {
      if (err instanceof ForbiddenKey) {
        return result({ kind: 'invalid-record', seq: lineNo, message: `record ${lineNo} is not a valid audit record (${err.message})` });
      }
      return result({ kind: 'invalid-json', seq: lineNo, message: `record ${lineNo} is not valid JSON` });
    }
    const shapeError = recordShapeError(value, accountId);
    if (shapeError !== null) {
      return result({ kind: 'invalid-record', seq: lineNo, message: `record ${lineNo} is not a valid audit record (${shapeError})` });
    }
    const record = value as AuditRecord;
    if (recordHash(record) !== record.hash) {
      return result({ kind: 'edited', seq: record.seq, message: `record ${record.seq} was edited (hash mismatch)` });
    }
    const prev = records[records.length - 1];
    const expected = prev === undefined ? 1 : prev.seq + 1;
    if (record.seq > expected) {
      const which = record.seq - expected === 1 ? `record ${expected} was removed` : `records ${expected} to ${record.seq - 1} were removed`;
      return result({ kind: 'removed', seq: expected, message: `${which} (seq jumps from ${expected - 1} to ${record.seq})` });
    }
    if (record.seq < expected) {
      return result({ kind: 'out-of-order', seq: record.seq, message: `line ${lineNo} holds record ${record.seq} after record ${expected - 1} (duplicated or reordered)` });
    }
    if (record.prevHash !== (prev?.hash ?? GENESIS_HASH)) {
      const message = prev === undefined
        ? `record 1 does not start a chain (prevHash is not ${GENESIS_HASH.slice(0, 8)}…)`
        : `record ${record.seq} does not follow record ${prev.seq} (prevHash mismatch: a record was replaced, or records were removed and renumbered)`;
      return result({ kind: 'unlinked', seq: record.seq, message });
    }
    records.push(record);
  }

  const last = records[records.length - 1];
  const lastSeq = last?.seq ?? 0;
  if (head.kind === 'invalid') {
    return result({ kind: 'head-invalid', seq: null, message: `the head file is not valid (${head.reason})` });
  }
  if (head.kind === 'absent') {
    if (!exists) return result({ kind: 'missing', seq: null, message: 'no audit log' });
    if (lastSeq > 0) warnings.push('no head file, so a truncated tail cannot be detected (the next append writes it)');
  } else {
    const h = head.head;
    if (!exists) {
      return result({ kind: 'missing', seq: h.seq, message: `the log file is missing but its head file says ${h.seq} records` });
    }
    if (h.seq > lastSeq) {
      return result({ kind: 'truncated', seq: lastSeq + 1, message: `the log ends at record ${lastSeq} but its head file says ${h.seq}: the tail was truncated` });
    }
    const named = h.seq === 0 ? { seq: 0, hash: GENESIS_HASH } : records[h.seq - 1];
    if (named === undefined || named.hash !== h.hash) {
      return result({ kind: 'head-mismatch', seq: h.seq, message: `record ${h.seq} does not match the head file (hash differs): the log was rewritten` });
    }
    if (h.seq < lastSeq) {
      warnings.push(`the head file names record ${h.seq} of ${lastSeq}: an append was interrupted before writing it (the next append updates it)`);
    }
  }
  if (tornTail) warnings.push('an incomplete last line: an append was interrupted before it was committed (the next append removes it)');
  return result(null);
}

function logPath(dir: string, accountId: string): string {
  return path.join(dir, `${accountId}.jsonl`);
}
function headPath(dir: string, accountId: string): string {
  return path.join(dir, `${accountId}.head`);
}
function lockPath(dir: string, accountId: string): string {
  return path.join(dir, `${accountId}.lock`);
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}

async function readIfExists(file: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
}

async function readHead(dir: string, accountId: string): Promise<HeadFile> {
  const buffer = await readIfExists(headPath(dir, accountId));
  if (buffer === null) return { kind: 'absent' };
  let value: unknown;
  try {
    value = parseLine(buffer.toString('utf8'));
  } catch {
    return { kind: 'invalid', reason: 'not JSON' };
  }
  if (!isPlainObject(value) || value.v !== AUDIT_RECORD_VERSION || value.accountId !== accountId) return { kind: 'invalid', reason: 'not a head of this account' };
  const { seq, hash } = value;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || typeof hash !== 'string' || !HEX64.test(hash)) {
    return { kind: 'invalid', reason: 'no valid seq and hash' };
  }
  return { kind: 'present', head: { seq, hash } };
}

/** Reads the head file first, then the log: an append writes the log first, so the log read is never behind the head. */
async function load(dir: string, accountId: string): Promise<Inspection> {
  const head = await readHead(dir, accountId);
  const buffer = await readIfExists(logPath(dir, accountId));
  return inspect(buffer ?? Buffer.alloc(0), accountId, head, buffer !== null);
}

function headOf(records: readonly AuditRecord[]): AuditHead {
  const last = records[records.length - 1];
  return last === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: last.seq, hash: last.hash };
}

/**
 * An account's records, oldest first, after checking the whole log as {@link verify} does (chain and head file), so
 * that a guard never starts from a log whose trip was cut off the end.
 * @throws AuditLogError when the log is not intact or does not exist; AuditEntryError for an invalid account id.
 */
export async function read(dir: string, accountId: string): Promise<AuditRecord[]> {
  assertAccountId(accountId);
  const inspection = await load(dir, accountId);
  if (inspection.problem !== null) {
    throw new AuditLogError(`audit log of ${accountId}: ${inspection.problem.message}`, accountId, inspection.problem);
  }
  return inspection.records;
}

/**
 * Like {@link read}, but an account that has never had a record (no log and no head file) has none: `[]`. A log
 * that is gone while its head file remains is still an error (its records were removed).
 */
export async function readIfAny(dir: string, accountId: string): Promise<AuditRecord[]> {
  try {
    return await read(dir, accountId);
  } catch (err) {
    if (err instanceof AuditLogError && err.problem?.kind === 'missing') return [];
    throw err;
  }
}

/**
 * Checks one account's log, or every account's in `dir` (those with a log or a head file, sorted by id): recomputes
 * every record's hash, every `prevHash` link and the seq sequence, then compares the end of the log with the head
 * file. Reports the first problem per account. Takes no lock: an append in progress shows at most as a warning.
 * @returns one result per account; `ok` is false when the log is edited, has records removed, is truncated against
 * its head, has a line that is not a record, or does not exist.
 * @throws when `dir` cannot be read (e.g. does not exist), or for an invalid account id.
 */
export async function verify(dir: string, accountId?: string): Promise<AuditVerifyResult[]> {
  let accounts: string[];
  if (accountId !== undefined) {
    assertAccountId(accountId);
    accounts = [accountId];
  } else {
    const names = await fs.readdir(dir);
    const found = new Set<string>();
    for (const name of names) {
      const match = /^(.+)\.(jsonl|head)$/.exec(name);
      if (match && ACCOUNT_ID.test(match[1] as string)) found.add(match[1] as string);
    }
    accounts = [...found].sort();
  }
  const results: AuditVerifyResult[] = [];
  for (const account of accounts) {
    const inspection = await load(dir, account);
    results.push({
      accountId: account,
      ok: inspection.problem === null,
      records: inspection.records.length,
      head: headOf(inspection.records),
      problem: inspection.problem,
      warnings: inspection.warnings,
    });
  }
  return results;
}

// ---------------------------------------------------------------------------------------------------------------
// Appending.

/** In-process queues per account file: concurrent appends in one worker take turns before they reach the file lock. */
const queues = new Map<string, Promise<void>>();

function inTurn<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const run = previous.then(fn);
  const done = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(key, done);
  void done.then(() => {
    if (queues.get(key) === done) queues.delete(key);
  });
  return run;
}

/**
 * Takes the account's lock file, exclusive across processes. The lock is created complete with its owner's token in
 * one step (written to a private file, then hard-linked into place, which fails if the lock exists: the same
 * exclusivity as `open(..., 'wx')`, without a window where the lock exists but is empty). A lock whose mtime is older
 * than `staleMs` belongs to a dead process: it is moved aside under a unique name and, if what was moved turns out
 * to be a fresh lock that another process had just taken over, linked back. The holder touches its lock every
 * `staleMs / 3` so that a slow append is never taken for dead.
 * @returns the token to release with.
 */
async function acquireLock(file: string, staleMs: number, timeoutMs: number): Promise<string> {
  const token = `${process.pid}-${randomBytes(8).toString('hex')}`;
  const draft = `${file}.${token}`;
  await fs.writeFile(draft, `${token}\n`);
  try {
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    for (;;) {
      try {
        await fs.link(draft, file);
        return token;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      const stat = await fs.stat(file).catch((err: unknown) => (isErrno(err, 'ENOENT') ? null : Promise.reject(err)));
      if (stat === null) continue; // released meanwhile
      if (Date.now() - stat.mtimeMs > staleMs) {
        await takeOverStale(file);
        continue;
      }
      if (Date.now() > deadline) throw new AuditLockTimeoutError(`${path.basename(file)} has been held by another process for more than ${timeoutMs} ms`);
      await sleep(delay * (0.5 + Math.random()));
      delay = Math.min(delay * 2, 100);
    }
  } finally {
    await fs.unlink(draft).catch(() => undefined);
  }
}

async function takeOverStale(file: string): Promise<void> {
  const staleToken = await fs.readFile(file, 'utf8').catch(() => null);
  if (staleToken === null) return;
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fs.rename(file, aside);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return; // someone else moved it
    throw err;
  }
  const moved = await fs.readFile(aside, 'utf8').catch(() => null);
  if (moved !== staleToken) {
    // Between our read and our rename another process replaced the stale lock with its own: give it back.
    await fs.link(aside, file).catch(() => undefined);
  }
  await fs.unlink(aside).catch(() => undefined);
}

async function releaseLock(file: string, token: string): Promise<void> {
  const content = await fs.readFile(file, 'utf8').catch(() => null);
  if (content === `${token}\n`) await fs.unlink(file).catch(() => undefined);
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeFileDurably(file: string, content: string | Buffer, flag: 'a' | 'w'): Promise<void> {
  const handle = await fs.open(file, flag, 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces the head file atomically (write a temporary file, fsync, rename, fsync the directory). */
async function writeHead(dir: string, accountId: string, head: AuditHead): Promise<void> {
  const file = headPath(dir, accountId);
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFileDurably(temp, `${canonicalJson({ v: AUDIT_RECORD_VERSION, accountId, seq: head.seq, hash: head.hash })}\n`, 'w');
  await fs.rename(temp, file);
  await fsyncDir(dir);
}

/**
 * Appends events to an account's log: chained to its last record, written with one write and fsync'd, then the head
 * file is replaced. Idempotent by `eventId`: an entry whose id is already in the log, or earlier in `entries`, is
 * skipped (the activity that calls this is retried by Temporal and must not write an event twice; a skipped entry
 * is not compared with the record already there). Every entry is checked before anything is written: one invalid
 * entry refuses the whole batch.
 *
 * Serialized per account: within this process by a promise queue, across processes (two workers during a failover)
 * by the account's lock file. Appends to different accounts run in parallel.
 *
 * An incomplete last line (a crash mid-append, never committed to the head) is cut off before appending. A log that
 * is not intact otherwise (see {@link verify}) is left untouched and the append refused, so that the evidence stays
 * as found and the head file still shows a truncation.
 *
 * @param dir the audit directory (`BREAKER_AUDIT_DIR`); created if missing.
 * @throws AuditEntryError for an invalid account id or entry (retrying cannot help), AuditLogError when the log is
 * not intact, AuditLockTimeoutError when another process holds the lock for longer than `lockTimeoutMs`.
 */
export async function append(dir: string, accountId: string, entries: readonly AuditEntry[], options: AuditAppendOptions = {}): Promise<AuditAppendResult> {
  assertAccountId(accountId);
  if (!Array.isArray(entries)) throw new AuditEntryError('entries must be an array');
  const prepared = entries.map((entry, i) => prepareEntry(entry, i));
  const staleMs = options.lockStaleMs ?? 30_000;
  const timeoutMs = options.lockTimeoutMs ?? 60_000;
  return inTurn(path.resolve(dir, accountId), async () => {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = lockPath(dir, accountId);
    const token = await acquireLock(lock, staleMs, timeoutMs);
    const heartbeat = setInterval(() => {
      const now = new Date();
      void fs.utimes(lock, now, now).catch(() => undefined);
    }, Math.max(1, Math.floor(staleMs / 3)));
    heartbeat.unref();
    try {
      return await appendLocked(dir, accountId, prepared);
    } finally {
      clearInterval(heartbeat);
      await releaseLock(lock, token);
    }
  });
}

async function appendLocked(dir: string, accountId: string, prepared: PreparedEntry[]): Promise<AuditAppendResult> {
  const file = logPath(dir, accountId);
  const head = await readHead(dir, accountId);
  const buffer = await readIfExists(file);
  const inspection = inspect(buffer ?? Buffer.alloc(0), accountId, head, buffer !== null);
  const problem = inspection.problem?.kind === 'missing' && head.kind === 'absent' ? null : inspection.problem;
  if (problem !== null) {
    throw new AuditLogError(`audit log of ${accountId} is not intact, refusing to append: ${problem.message}`, accountId, problem);
  }
  if (inspection.tornTail) await fs.truncate(file, inspection.completeBytes);

  const known = new Set(inspection.records.map((r) => r.eventId));
  const written: AuditRecord[] = [];
  const skipped: string[] = [];
  let tip = headOf(inspection.records);
  for (const entry of prepared) {
    if (known.has(entry.eventId)) {
      skipped.push(entry.eventId);
      continue;
    }
    known.add(entry.eventId);
    const body: Omit<AuditRecord, 'hash'> = { v: AUDIT_RECORD_VERSION, seq: tip.seq + 1, accountId, ...entry, prevHash: tip.hash };
    const record: AuditRecord = { ...body, hash: recordHash(body) };
    written.push(record);
    tip = { seq: record.seq, hash: record.hash };
  }
  if (written.length > 0) {
    await writeFileDurably(file, written.map((r) => `${canonicalJson(r)}\n`).join(''), 'a');
    if (buffer === null) await fsyncDir(dir); // the new file's directory entry
  } else if (inspection.tornTail) {
    await writeFileDurably(file, '', 'a'); // fsync the truncation
  }
  const headCurrent = head.kind === 'present' && head.head.seq === tip.seq && head.head.hash === tip.hash;
  if (!headCurrent && (tip.seq > 0 || head.kind === 'present')) await writeHead(dir, accountId, tip);
  return { accountId, written, skipped, head: tip };
}

// ---------------------------------------------------------------------------------------------------------------
// What a starting guard needs.

/**
 * Pure: what a guard restores from its account's records (oldest first, as {@link read} returns them).
 * `tripped` is true when the last `CircuitBreakerTriggered` / `TripRecalled` / `CircuitBreakerReset` record is a
 * trip; `recentNonces` are the `data.nonce` strings of `OperatorAction` records whose `at` is within `windowMs`
 * before `now` (or after it: a clock ahead of ours must not reopen a replay window).
 * @param now the caller's current time (ISO 8601), passed in so that this stays deterministic.
 * @param windowMs @default NONCE_WINDOW_MS (15 minutes)
 */
export function latchOf(records: readonly AuditRecord[], now: string, windowMs: number = NONCE_WINDOW_MS): AuditLatch {
  const since = Date.parse(now) - windowMs;
  if (!Number.isFinite(since)) throw new RangeError(`now must be an ISO 8601 time, got ${JSON.stringify(now)}`);
  let lastState: AuditRecord | undefined;
  const nonces = new Set<string>();
  let config: string | undefined;
  for (const record of records) {
    switch (record.kind) {
      case AuditKind.CircuitBreakerTriggered:
      case AuditKind.TripRecalled:
      case AuditKind.CircuitBreakerReset:
        lastState = record;
        break;
      case AuditKind.OperatorAction: {
        const nonce = record.data.nonce;
        if (typeof nonce === 'string' && Date.parse(record.at) >= since) nonces.add(nonce);
        break;
      }
      case AuditKind.GuardConfigured:
        if (typeof record.data.config === 'string') config = record.data.config;
        break;
      default:
        break;
    }
  }
  const recentNonces = [...nonces];
  if (lastState === undefined || lastState.kind === AuditKind.CircuitBreakerReset) return { tripped: false, recentNonces, ...(config !== undefined ? { config } : {}) };
  return { tripped: true, at: lastState.at, reason: lastState.why ?? lastState.what, eventId: lastState.eventId, recentNonces, ...(config !== undefined ? { config } : {}) };
}
