/**
 * Operator requests: who acts on a guard (reset, disable, enable, resync, ...) and why. Both end up in events, state and
 * alerts, so they are short, trimmed, single-line texts.
 */
import { z } from 'zod';
import { CONTROL_CHARACTERS, MAX_OPERATOR_CHARS, MAX_REASON_CHARS } from './limits';
import { Parsed } from './money';
import { OperatorAuth, operatorAuthSchema } from './trust';
import { got, quoted, rule, strictObject, text, validate } from './validation';

/** Who did it and why; every operator action carries these. */
export interface OperatorRequest {
  /** Who is acting, 1-{@link MAX_OPERATOR_CHARS} characters, trimmed. */
  operator: string;
  /** Why, 1-{@link MAX_REASON_CHARS} characters, trimmed. */
  reason: string;
  /**
   * The operator's signature, required by a guard whose worker has a trust anchor: `{ nonce, expiresAt, signature }`
   * over the account, action, the action's own fields, operator, reason (both trimmed), nonce and expiry
   * (src/domain/signing.ts `operatorActionMessage`; `breaker sign` builds it).
   */
  auth?: OperatorAuth;
}

/** An `approve` request: a second operator approves a pending reset or disable (see `pendingApprovals` in state). */
export interface ApproveRequest extends OperatorRequest {
  /** The pending request's id. */
  requestId: string;
}

/** A `resync` request: make the guard accept a venue's reports again from a given `seq`. */
export interface ResyncRequest extends OperatorRequest {
  /** One of the account's venues. */
  venue: string;
  /** A whole number from 0 to `Number.MAX_SAFE_INTEGER`, or null: accept the next report whatever its seq. */
  seq: number | null;
}

const operatorShape = {
  operator: text({ max: MAX_OPERATOR_CHARS, trim: true, noControl: CONTROL_CHARACTERS, hint: `who is acting (1-${MAX_OPERATOR_CHARS} characters)` }),
  reason: text({ max: MAX_REASON_CHARS, trim: true, noControl: CONTROL_CHARACTERS, hint: `why (1-${MAX_REASON_CHARS} characters)` }),
  auth: operatorAuthSchema.optional(),
};
const EXAMPLE = '{"operator": "alice", "reason": "..."}';
const operatorSchema = strictObject(operatorShape, EXAMPLE);

/**
 * Validates an operator request: operator 1..MAX_OPERATOR_CHARS chars, reason 1..MAX_REASON_CHARS, both trimmed,
 * neither blank nor containing control characters (CONTROL_CHARACTERS). Unknown fields refused by name, except the
 * `extra` fields the action allows.
 * @param raw the request as received (anything at all)
 * @param action the action's name, the prefix of every message (`reset.operator: is required: ...`)
 * @param extra fields this action takes besides `operator` and `reason`, as zod schemas (preferably the rules of
 *   `./validation`, whose messages say what is wrong)
 * @returns the trimmed request, or every problem in one message of at most `MAX_ERROR_CHARS` characters; never throws
 */
export function parseOperatorRequest<E extends z.ZodRawShape = Record<never, never>>(
  raw: unknown,
  action: string,
  extra?: E,
): Parsed<OperatorRequest & z.infer<z.ZodObject<E>>> {
  const schema = extra ? strictObject({ ...operatorShape, ...extra }, EXAMPLE) : operatorSchema;
  return validate(schema, raw, action) as Parsed<OperatorRequest & z.infer<z.ZodObject<E>>>;
}

/**
 * Validates a `resync` request: `{ operator, reason, venue, seq }` with `venue` one of the account's venues and `seq`
 * a whole number from 0 to `Number.MAX_SAFE_INTEGER` or null ("accept the next report whatever its seq").
 */
export function parseResyncRequest(raw: unknown, venues: readonly string[]): Parsed<ResyncRequest> {
  return parseOperatorRequest(raw, 'resync', {
    venue: rule<string>((v) => {
      if (v === undefined) return `is required: one of ${quoted(venues)}`;
      return typeof v === 'string' && venues.includes(v) ? undefined : `must be one of ${quoted(venues)}, got ${got(v)}`;
    }),
    seq: rule<number | null>((v) => {
      if (v === null || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER)) return undefined;
      const allowed = `a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, or null to accept the next report whatever its seq`;
      return v === undefined ? `is required: ${allowed}` : `must be ${allowed}, got ${got(v)}`;
    }),
  });
}

/** Validates an `approve` request: `{ operator, reason, requestId, auth }`. */
export function parseApproveRequest(raw: unknown): Parsed<ApproveRequest> {
  return parseOperatorRequest(raw, 'approve', {
    requestId: rule<string>((v) =>
      typeof v === 'string' && /^[A-Za-z0-9_-]{16,64}$/.test(v) ? undefined : `must be the id of a pending request (its nonce, as state.pendingApprovals lists it), got ${got(v)}`,
    ),
  });
}

/** The fields of a request an operator signs besides operator, reason and auth: the action's own arguments. */
export function actionArgs(request: OperatorRequest & Record<string, unknown>): Record<string, unknown> {
  const args: Record<string, unknown> = { ...request };
  delete args.operator;
  delete args.reason;
  delete args.auth;
  return args;
}
