/**
 * Schema helpers shared by the config, report and operator validators: zod for structure, our own messages for every
 * field, so that a message says what is wrong wherever it is produced, including inside the workflow bundle.
 *
 * Why our own messages: zod 4 installs its English messages as a side effect of `zod/v4/classic/external.js`
 * (`config(en())`), and zod's package.json declares `"sideEffects": false`. Temporal's workflow bundler runs webpack,
 * whose side-effects optimization (on in every mode for packages that declare the flag) resolves `z.object` straight
 * to `classic/schemas.js` and leaves `external.js`, with its `config(en())`, out of the bundle: every message then
 * falls back to "Invalid input". So we install the locale explicitly below (a side effect of *our* module, which
 * webpack keeps), and, more importantly, every field is checked by a rule that writes its own message; the locale is
 * only a fallback for issues we did not foresee.
 *
 * Everything here expects JSON-decoded input from any Temporal client: wrong types, megabyte strings, NaN, maps with
 * 100,000 keys. Lengths and counts are checked before any regular expression, Decimal or per-entry parse, input is
 * echoed only through {@link clip}, and {@link validate} never throws.
 */
import { z } from 'zod';
import { Decimal, Parsed } from './money';
import { MAX_DECIMAL_CHARS, MAX_ERROR_CHARS, clip } from './limits';

// A fallback only (see above); z.config and z.locales.en are resolved by webpack to zod's core and locale modules.
z.config(z.locales.en());

const DECIMAL = /^-?\d+(\.\d+)?$/;

/** At most this many problems are listed in one message; the rest are counted. */
const MAX_LISTED_PROBLEMS = 8;

/**
 * Describes a value from outside for "got ..." in a message: numbers as written (`-1`, `1e+300`, `NaN`), strings
 * quoted and clipped to 64 characters, containers by kind only (never their content).
 */
export function got(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(clip(value));
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Quotes a list of allowed values: `"long", "short"`. */
export function quoted(values: readonly string[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

/** True for a JSON object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A field checked by one function that returns what is wrong (or undefined when the value is fine); the same function
 * writes the message, so a field never gets a message that does not fit its value.
 */
export function rule<T>(problem: (value: unknown) => string | undefined) {
  return z.custom<T>((v) => problem(v) === undefined, { error: (issue) => problem(issue.input) ?? 'is invalid' });
}

/** "is required" with what the field is for, e.g. `is required: who is acting (1-64 characters)`. */
function required(hint?: string): string {
  return hint ? `is required: ${hint}` : 'is required';
}

/**
 * A check of a well-typed value's range (a positive amount, a whole number within bounds). Unlike a {@link rule}, its
 * issue does not abort the enclosing object's own checks, so that cross-field checks (warning below threshold) still
 * run and a config with two problems gets both messages.
 */
function inRange<T>(problem: (value: T) => string | undefined) {
  return (value: T, ctx: z.core.$RefinementCtx<T>) => {
    const message = problem(value);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message, input: value });
  };
}

/** A decimal string; a JavaScript number is refused with a message that shows the string to send instead. */
export function decimalString(opts: { nonNegative?: boolean; positive?: boolean } = {}) {
  const typed = rule<string>((v) => {
    if (v === undefined) return 'is required';
    if (typeof v === 'number') {
      return `must be a decimal string such as "${Number.isFinite(v) ? String(v) : '0.5'}", got the number ${String(v)}`;
    }
    if (typeof v !== 'string') return `must be a decimal string such as "9650.00", got ${got(v)}`;
    // The length first: a 700,000-digit string never reaches the regular expression or decimal.js.
    if (v.length > MAX_DECIMAL_CHARS) return `must be a decimal string of at most ${MAX_DECIMAL_CHARS} characters, got the string ${got(v)}`;
    if (!DECIMAL.test(v)) return `must be a decimal string such as "9650.00", got the string ${got(v)}`;
    return undefined;
  });
  if (!opts.positive && !opts.nonNegative) return typed;
  return typed.superRefine(
    inRange((v) => {
      const d = new Decimal(v);
      if (opts.positive && !d.gt(0)) return `must be greater than 0, got "${v}"`;
      if (opts.nonNegative && d.isNegative() && !d.isZero()) return `must not be negative, got "${v}"`;
      return undefined;
    }),
  );
}

/** A whole number from `min` to `max`: `must be a whole number from 0 to 9007199254740991, got -1`. */
export function wholeNumber(min: number, max: number, hint?: string) {
  const problem = (v: unknown) => `must be a whole number from ${min} to ${max}, got ${got(v)}`;
  return rule<number>((v) => {
    if (v === undefined) return required(hint);
    return typeof v === 'number' && Number.isInteger(v) ? undefined : problem(v);
  }).superRefine(inRange((v) => (v >= min && v <= max ? undefined : problem(v))));
}

/** One of a fixed set of strings: `must be one of "long", "short", got "LONG"`. */
export function oneOf<const T extends readonly string[]>(values: T, hint?: string) {
  return rule<T[number]>((v) => {
    if (v === undefined) return required(hint);
    if (typeof v === 'string' && values.includes(v)) return undefined;
    return `must be one of ${quoted(values)}, got ${got(v)}`;
  });
}

/** `true` or `false`. */
export function flag() {
  return rule<boolean>((v) => (typeof v === 'boolean' ? undefined : v === undefined ? 'is required' : `must be true or false, got ${got(v)}`));
}

/** Options of {@link text}. */
export interface TextRule {
  /** Most characters allowed (checked before anything else). */
  max: number;
  /** What the field is, for "is required: ...", e.g. `who is acting (1-64 characters)`. */
  hint?: string;
  /** A pattern the whole string must match, and what to say when it does not. */
  pattern?: { regex: RegExp; message: string };
  /** Refuse control characters (C0, DEL, C1, U+2028/2029). */
  noControl?: RegExp;
  /** Trim blanks at both ends first (the trimmed string is what the pattern, the limits and the output see). */
  trim?: boolean;
}

/** A non-empty string of at most `max` characters, optionally trimmed, matching a pattern, without control characters. */
export function text(opts: TextRule) {
  const check = (v: unknown): string | undefined => {
    if (v === undefined) return required(opts.hint);
    if (typeof v !== 'string') return `must be a string, got ${got(v)}`;
    const s = opts.trim ? v.trim() : v;
    if (s.length === 0) return v.length === 0 ? required(opts.hint) : 'must not be blank';
    // The length before the pattern: a 2 MB string is measured, never scanned.
    if (s.length > opts.max) return `must be at most ${opts.max} characters, got ${s.length} characters`;
    if (opts.noControl?.test(s)) return 'must not contain control characters';
    if (opts.pattern && !opts.pattern.regex.test(s)) return `${opts.pattern.message}, got ${got(s)}`;
    return undefined;
  };
  const checked = rule<string>(check);
  return opts.trim ? checked.transform((s) => s.trim()) : checked;
}

/**
 * A list of at most `max` items, each checked by `item`. The length is checked before any item is parsed, so that a
 * million-item array costs one comparison.
 */
export function boundedArray<T extends z.ZodType>(item: T, opts: { max: number; min?: number; what: string }) {
  const shape = rule<unknown[]>((v) => {
    if (v === undefined) return 'is required';
    if (!Array.isArray(v)) return `must be a list of ${opts.what}, got ${got(v)}`;
    if (v.length > opts.max) return `must list at most ${opts.max} ${opts.what}, got ${v.length}`;
    if (opts.min && v.length < opts.min) return `must list at least ${opts.min === 1 ? 'one' : opts.min} ${opts.what.replace(/s$/, '')}`;
    return undefined;
  });
  return shape.pipe(z.array(item));
}

/**
 * A map of keys to values (`{"BTC": "0.1"}`). The key count and every key are checked before the map reaches zod, so a
 * 100,000-key map costs one count and a "__proto__" key never becomes a property of the parsed map.
 */
export function keyedMap<T extends z.ZodType>(value: T, opts: { maxKeys: number; key: RegExp; keyMessage: string; example: string }) {
  const shape = z.unknown().superRefine((v, ctx) => {
    if (v === undefined) return void ctx.addIssue({ code: 'custom', message: 'is required', input: v });
    if (!isPlainObject(v)) return void ctx.addIssue({ code: 'custom', message: `must be an object such as ${opts.example}, got ${got(v)}`, input: v });
    const keys = Object.keys(v);
    if (keys.length > opts.maxKeys) {
      return void ctx.addIssue({ code: 'custom', message: `must hold at most ${opts.maxKeys} entries, got ${keys.length}`, input: v });
    }
    let bad = 0;
    for (const key of keys) {
      if (key.length <= 64 && opts.key.test(key)) continue;
      if (++bad <= 3) ctx.addIssue({ code: 'custom', path: [clip(key)], message: `${opts.keyMessage}, got ${got(key)}`, input: key });
    }
    if (bad > 3) ctx.addIssue({ code: 'custom', message: `and ${bad - 3} more keys like that`, input: v });
  });
  return shape.pipe(z.record(z.string(), value));
}

/**
 * An object with exactly these fields: a missing object, a value of another type and unknown fields (named, with the
 * allowed ones listed) get their own messages.
 * @param example what to show for a value of the wrong type, e.g. `{"operator": ..., "reason": ...}`
 */
export function strictObject<S extends z.ZodRawShape>(shape: S, example?: string) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code === 'unrecognized_keys') return unknownFields(issue.keys, allowed);
      if (issue.input === undefined) return 'is required';
      return `must be an object${example ? ` such as ${example}` : ''}, got ${got(issue.input)}`;
    },
  });
}

/** `unknown field "foo"; allowed fields: a, b` (at most three named, each clipped). */
export function unknownFields(keys: readonly string[], allowed: string): string {
  const named = keys.slice(0, 3).map((k) => JSON.stringify(clip(k)));
  const more = keys.length > 3 ? ` and ${keys.length - 3} more` : '';
  return `unknown field${keys.length === 1 ? '' : 's'} ${named.join(', ')}${more}; allowed fields: ${allowed}`;
}

/**
 * The fallback message for an issue none of our rules wrote (zod's own checks, if one is ever used directly): plain
 * English, independent of zod's locale.
 */
const fallbackMessage: z.core.$ZodErrorMap = (issue) => {
  if (issue.input === undefined && issue.code === 'invalid_type') return 'is required';
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${issue.expected === 'int' ? 'a whole number' : `of type ${issue.expected}`}, got ${got(issue.input)}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${got(issue.input)}`;
    case 'unrecognized_keys':
      return unknownFields(issue.keys, 'see the documentation');
    case 'too_small':
      return `must be at least ${String(issue.minimum)}${issue.origin === 'string' ? ' characters' : issue.origin === 'array' ? ' items' : ''}`;
    case 'too_big':
      return `must be at most ${String(issue.maximum)}${issue.origin === 'string' ? ' characters' : issue.origin === 'array' ? ' items' : ''}`;
    default:
      return `is invalid (${issue.code}), got ${got(issue.input)}`;
  }
};

/** Turns zod issues into one line per problem, each prefixed with the path of the offending field. */
export function formatIssues(error: z.ZodError, root: string): string[] {
  return error.issues.map((issue) => {
    const where = [root, ...issue.path.map((p) => clip(String(p)))].filter(Boolean).join('.');
    return `${where}: ${issue.message}`;
  });
}

/**
 * Joins problem lines into one message of at most {@link MAX_ERROR_CHARS} characters: the first few problems, then
 * how many more there are.
 */
export function joinProblems(lines: readonly string[]): string {
  const listed = lines.slice(0, MAX_LISTED_PROBLEMS);
  const more = lines.length - listed.length;
  const joined = listed.join('; ') + (more > 0 ? `; and ${more} more problem${more === 1 ? '' : 's'}` : '');
  return clipMessage(joined);
}

/** Cuts a message to at most {@link MAX_ERROR_CHARS} characters in all, saying that it was cut. */
export function clipMessage(message: string): string {
  if (message.length <= MAX_ERROR_CHARS) return message;
  const suffix = `… (${message.length} characters)`;
  return message.slice(0, MAX_ERROR_CHARS - suffix.length) + suffix;
}

/**
 * Runs a schema on anything from outside and never throws: every problem, prefixed with `root` and the field's path,
 * in one message of at most {@link MAX_ERROR_CHARS} characters.
 */
export function validate<T>(schema: z.ZodType<T>, raw: unknown, root: string): Parsed<T> {
  try {
    const result = schema.safeParse(raw, { error: fallbackMessage });
    if (result.success) return { ok: true, value: result.data };
    return { ok: false, error: joinProblems(formatIssues(result.error, root)) };
  } catch (err) {
    // Not expected for JSON input; a validator must answer rather than fail a workflow task.
    return { ok: false, error: clipMessage(`${root}: could not be validated: ${clip(err instanceof Error ? err.message : String(err))}`) };
  }
}
