/**
 * The trust anchor: the worker's own list, per account, of its venues, the operators who may act on its guard (public
 * keys and the actions each may take), whether reset and disable need a second operator, and optionally the bots
 * whose reports it accepts. It lives in the worker's deployment (a file named by BREAKER_TRUST_FILE), where no
 * Temporal client can change it; a guard gets its account's view from the worker (the `loadTrust` activity), never
 * from its input, so a client that starts or restarts a guard cannot bring its own keys.
 *
 * For rehearsals on paper venues only, an entry named `"*"` serves every account not listed by name (the demo, the
 * chaos run and the crash tests make accounts up as they go); a worker with a live or demo venue refuses it
 * ({@link anchorVenueProblems}).
 *
 * The file is read again when it changes (by mtime and size), so that revoking an operator's key takes effect at the
 * guard's next signed request without restarting workers.
 *
 * ```json
 * { "accounts": { "acct-1": {
 *     "venues": ["binance-spot", "binance-usdm"],
 *     "operators": [ { "id": "alice", "publicKey": "<base64 Ed25519>", "actions": ["halt", "reset", "disable", "enable", "resyncSeq"] },
 *                    { "id": "bob",   "publicKey": "<base64 Ed25519>", "actions": ["halt", "reset"] } ],
 *     "approval": { "actions": ["reset"], "windowSeconds": 900 },
 *     "bots": [ { "id": "mm-bot", "publicKey": "<base64 Ed25519>", "venues": ["binance-spot"] } ] } } }
 * ```
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { PERMISSIONS, TrustView } from '../domain/trust';
import { isEd25519PublicKey } from '../domain/signing';
import { VenueSpec, modeOf } from '../exchanges/venues';

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const publicKey = z.string().refine(isEd25519PublicKey, 'must be a base64 Ed25519 public key (32 bytes; `breaker keygen` prints one)');

const accountSchema = z
  .object({
    venues: z.array(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/)).max(8),
    operators: z
      .array(z.object({ id: z.string().regex(ID), publicKey, actions: z.array(z.enum(PERMISSIONS)).min(1) }).strict())
      .max(100),
    approval: z.object({ actions: z.array(z.enum(['reset', 'disable'])).min(1), windowSeconds: z.int().min(10).max(86_400).default(900) }).strict().optional(),
    bots: z.array(z.object({ id: z.string().regex(ID), publicKey, venues: z.array(z.string()).min(1) }).strict()).max(100).optional(),
  })
  .strict();

/** The rehearsal entry: every account not listed by name (paper venues only). */
export const ANY_ACCOUNT = '*';
// Account ids are checked by a refinement of the record, not by its key schema: zod 4 reports a key that fails its
// schema as "Invalid key in record" and drops the key schema's own message.
const accountsSchema = z.record(z.string(), accountSchema).superRefine((accounts, ctx) => {
  for (const id of Object.keys(accounts)) {
    if (id !== ANY_ACCOUNT && !ID.test(id)) ctx.addIssue({ code: 'custom', path: [id], message: 'account ids are 1-64 characters of A-Z a-z 0-9 _ . - (or "*" for a paper rehearsal)' });
  }
});
const anchorSchema = z.object({ accounts: accountsSchema }).strict();
type AnchorFile = z.infer<typeof anchorSchema>;

/** The worker's trust anchor. */
export interface TrustAnchor {
  /** Where it comes from, with the digest of its content: `file <path> sha256:<12 hex>`. */
  readonly source: string;
  /** The accounts it lists by name (the watchdog checks each has a running guard). */
  accounts(): string[];
  /** True when a `"*"` entry serves every other account (paper rehearsals only). */
  readonly hasAnyAccount: boolean;
  /** The guard's view of an account (unlisted accounts get `listed: false` and no operators). */
  viewOf(accountId: string): TrustView;
}

/**
 * Validates an anchor's content.
 * @throws Error naming every problem (`accounts.acct-1.operators.0.publicKey: ...`)
 */
export function parseTrustAnchor(raw: unknown, source: string): TrustAnchor {
  const parsed = anchorSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`Invalid trust anchor (${source}): ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const problems = crossProblems(parsed.data);
  if (problems.length > 0) throw new Error(`Invalid trust anchor (${source}): ${problems.join('; ')}`);
  return anchorOf(parsed.data, source);
}

function crossProblems(anchor: AnchorFile): string[] {
  const problems: string[] = [];
  for (const [accountId, a] of Object.entries(anchor.accounts)) {
    const at = `accounts.${accountId}`;
    if (accountId !== ANY_ACCOUNT && a.venues.length === 0) problems.push(`${at}.venues: lists no venue; name the account's venues`);
    const ids = a.operators.map((o) => o.id);
    ids.forEach((id, i) => ids.indexOf(id) !== i && problems.push(`${at}.operators: operator "${id}" appears twice`));
    const keys = a.operators.map((o) => o.publicKey);
    keys.forEach((k, i) => keys.indexOf(k) !== i && problems.push(`${at}.operators.${i}: the same public key serves two operators; each person holds their own key`));
    for (const action of a.approval?.actions ?? []) {
      const allowed = a.operators.filter((o) => o.actions.includes(action)).length;
      if (allowed < 2) problems.push(`${at}.approval: "${action}" needs a second approver, but only ${allowed} operator(s) may ${action}`);
    }
    for (const [i, bot] of (a.bots ?? []).entries()) {
      // The "*" entry names no venues (any paper venue): its bots' venues cannot be checked against them.
      if (accountId !== ANY_ACCOUNT) for (const venue of bot.venues) if (!a.venues.includes(venue)) problems.push(`${at}.bots.${i}.venues: "${venue}" is not one of the account's venues (${a.venues.join(', ')})`);
    }
  }
  // A venue belongs to one account: two accounts naming it could each flatten (or fail to protect) the other.
  const owner = new Map<string, string>();
  for (const [accountId, a] of Object.entries(anchor.accounts)) {
    if (accountId === ANY_ACCOUNT) continue;
    for (const venue of a.venues) {
      const other = owner.get(venue);
      if (other) problems.push(`accounts.${accountId}.venues: venue "${venue}" is already bound to account "${other}"`);
      else owner.set(venue, accountId);
    }
  }
  return problems;
}

function anchorOf(anchor: AnchorFile, source: string): TrustAnchor {
  return {
    source,
    hasAnyAccount: Object.prototype.hasOwnProperty.call(anchor.accounts, ANY_ACCOUNT),
    accounts: () => Object.keys(anchor.accounts).filter((id) => id !== ANY_ACCOUNT),
    viewOf: (accountId) => {
      const own = (id: string) => (Object.prototype.hasOwnProperty.call(anchor.accounts, id) ? anchor.accounts[id] : undefined);
      const a = own(accountId) ?? own(ANY_ACCOUNT);
      if (!a) return { accountId, listed: false, venues: [], operators: [], approval: null, bots: null, source };
      return {
        accountId,
        listed: true,
        venues: a.venues,
        operators: a.operators,
        approval: a.approval ? { actions: a.approval.actions, windowSeconds: a.approval.windowSeconds } : null,
        bots: a.bots ?? null,
        source,
      };
    },
  };
}

/**
 * The anchor in the file named by BREAKER_TRUST_FILE, read again whenever the file changes.
 * @throws Error when the variable is unset or the file is missing or invalid (the worker refuses to start)
 */
export function loadTrustAnchor(env: NodeJS.ProcessEnv = process.env): TrustAnchor {
  const path = env.BREAKER_TRUST_FILE;
  if (!path) {
    throw new Error('No trust anchor: set BREAKER_TRUST_FILE to the JSON file listing each account\'s venues, operators\' public keys and roles (see README, "Security model")');
  }
  // The stamp is taken before the read: a change landing between the two is then seen at the next call, where the
  // other order would pair the new stamp with the old content and miss the change (a revoked key) until the next edit.
  let stamp = stampOf(path);
  let current = readAnchorFile(path);
  const refresh = (): TrustAnchor => {
    const now = stampOf(path);
    if (now !== stamp) {
      // A broken edit keeps the last good anchor rather than locking every operator out mid-incident; the worker logs it.
      try {
        current = readAnchorFile(path);
        stamp = now;
      } catch (err) {
        console.error(`trust anchor: keeping the last valid content: ${(err as Error).message}`);
      }
    }
    return current;
  };
  return {
    get source() {
      return refresh().source;
    },
    get hasAnyAccount() {
      return refresh().hasAnyAccount;
    },
    accounts: () => refresh().accounts(),
    viewOf: (accountId) => refresh().viewOf(accountId),
  };
}

function stampOf(path: string): string {
  try {
    const s = statSync(path);
    return `${s.mtimeMs}:${s.size}`;
  } catch {
    return 'missing';
  }
}

function readAnchorFile(path: string): TrustAnchor {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`BREAKER_TRUST_FILE ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`BREAKER_TRUST_FILE ${path}: not valid JSON (${(err as Error).message})`);
  }
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return parseTrustAnchor(raw, `file ${path} sha256:${digest}`);
}

/**
 * The venue bindings of the anchor against the worker's venue specs: every venue an account lists must be configured,
 * and a live or demo venue's `account` must be that account.
 */
export function anchorVenueProblems(anchor: TrustAnchor, specs: readonly VenueSpec[]): string[] {
  const problems: string[] = [];
  const real = specs.filter((s) => modeOf(s) !== 'paper');
  if (anchor.hasAnyAccount && real.length > 0) {
    problems.push(`trust anchor: the "*" entry (every account) is for paper rehearsals only, and this worker has ${modeOf(real[0]!)} venue "${real[0]!.id}"; list each account by name`);
  }
  for (const accountId of anchor.accounts()) {
    for (const venue of anchor.viewOf(accountId).venues) {
      const spec = specs.find((s) => s.id === venue);
      if (!spec) problems.push(`trust anchor: account "${accountId}" lists venue "${venue}", which BREAKER_VENUES does not configure`);
      else if (modeOf(spec) !== 'paper' && spec.account !== accountId) {
        const bound = spec.account === undefined ? `(${modeOf(spec)}) is bound to no account` : `is bound to account "${spec.account}"`;
        problems.push(`trust anchor: account "${accountId}" lists venue "${venue}", but the venue ${bound}`);
      }
    }
  }
  return problems;
}

/** An anchor built in code (tests, the demo, benchmarks): the same checks as a file. */
export function trustAnchorFrom(content: unknown, source = 'inline'): TrustAnchor {
  const digest = createHash('sha256').update(JSON.stringify(content)).digest('hex').slice(0, 12);
  return parseTrustAnchor(content, `${source} sha256:${digest}`);
}
