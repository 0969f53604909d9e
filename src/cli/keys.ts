/**
 * `breaker keygen` and `breaker sign`: an operator's (or bot's) Ed25519 key, and a signed operator request made with
 * it. Local only: no Temporal, and the secret key never leaves its file (nothing here prints it).
 *
 *   breaker keygen --out ~/.breaker/alice.key [--operator alice | --bot mm-bot]
 *   breaker sign acct-1 reset --key ~/.breaker/alice.key --reason "checked: fat finger" [--args '{"venue": "..."}'] [--ttl 300]
 *
 * `sign` prints the request as one line of JSON, for any Temporal client:
 *   temporal workflow update execute --workflow-id guard-acct-1 --name reset --input "$(breaker sign acct-1 reset ...)"
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { newEd25519KeyPair } from '../domain/signing';
import { MAX_SIGNED_VALIDITY_SECONDS, OPERATOR_ACTIONS } from '../domain/trust';
import { isPlainObject } from '../domain/validation';
import { DEFAULT_SIGNED_TTL_SECONDS, KeyFile, readKeyFile, signOperatorRequest } from '../trust/sign-request';

/** The actions an operator signs: every operator action, and the approval of another operator's request. */
export const SIGNABLE_ACTIONS = [...OPERATOR_ACTIONS, 'approve'] as const;
export type SignableAction = (typeof SIGNABLE_ACTIONS)[number];

/** Where the commands write and how they end; the defaults are the console and `process.exitCode`. */
export interface KeysCliIo {
  out(line: string): void;
  err(line: string): void;
  exit(code: number): void;
}

const consoleIo: KeysCliIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  exit: (code) => {
    process.exitCode = code;
  },
};

/** Ids as the trust anchor spells them (src/trust/anchor.ts). */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Fields of the request itself, which an action's arguments cannot take. */
const RESERVED_ARGS = ['operator', 'reason', 'auth'];

function parseTtl(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1 || n > MAX_SIGNED_VALIDITY_SECONDS) {
    throw new InvalidArgumentError(`expected whole seconds from 1 to ${MAX_SIGNED_VALIDITY_SECONDS} (the guard refuses a request valid for longer)`);
  }
  return n;
}

function parseArgs(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`--args: not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(value)) throw new Error(`--args: must be a JSON object of the action's fields, e.g. '{"venue": "binance-spot", "seq": 42}'`);
  const reserved = RESERVED_ARGS.filter((k) => Object.prototype.hasOwnProperty.call(value, k));
  if (reserved.length > 0) throw new Error(`--args: ${reserved.join(', ')} belong to the request itself (use --operator and --reason), not to the action's fields`);
  return value;
}

function defaultId(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}

/**
 * Adds `keygen` and `sign` to `program` (the `breaker` command).
 * @param io where output goes and how the exit code is set; the console and `process.exitCode` by default.
 */
export function registerKeyCommands(program: Command, io: KeysCliIo = consoleIo): Command {
  // Errors become one line and exit code 2 (not a stack trace).
  const guarded = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      io.err(`breaker: ${(err as Error).message}`);
      io.exit(2);
    }
  };

  program
    .command('keygen')
    .description('make an Ed25519 key pair for an operator (or a bot): the secret goes to a new file (mode 0600), the public key to the screen for the trust anchor')
    .requiredOption('--out <file>', 'the key file to create (never overwritten)')
    .addOption(new Option('--operator <id>', "the operator's id in the trust anchor (default: your login name)").conflicts('bot'))
    .addOption(new Option('--bot <id>', "a bot's id in the trust anchor, for a key that signs reports"))
    .action(
      guarded((opts: { out: string; operator?: string; bot?: string }) => {
        const id = opts.bot ?? opts.operator ?? defaultId();
        if (id === undefined || !ID.test(id)) {
          throw new Error(`the key's id ${JSON.stringify(id ?? '')} is not a trust anchor id (1-64 characters of A-Z a-z 0-9 _ . -); pass --operator <id>`);
        }
        const { secretKey, publicKey } = newEd25519KeyPair();
        const file: KeyFile = { kind: 'portfolio-breaker-ed25519', id, secretKey, publicKey };
        try {
          // wx: never replace an existing key (an operator's only copy of a secret, or one the anchor already lists).
          writeFileSync(opts.out, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EEXIST') throw new Error(`${opts.out} already exists; keygen never overwrites a key file (choose another --out, or delete it yourself)`);
          throw new Error(`cannot write ${opts.out} (${code ?? (err as Error).message})`);
        }
        io.out(`publicKey ${publicKey}`);
        io.out(JSON.stringify({ id, publicKey }));
        io.err(
          `secret key written to ${opts.out} (mode 0600). Add the line above to the trust anchor (BREAKER_TRUST_FILE), in the account's ` +
            (opts.bot !== undefined ? '"bots" with the "venues" it reports for.' : '"operators" with the "actions" this operator may take.'),
        );
      }),
    );

  program
    .command('sign')
    .description('sign an operator action on an account; prints the request (one line of JSON) to send as the update\'s input')
    .argument('<account>', 'the account id')
    .argument('<action>', `one of ${SIGNABLE_ACTIONS.join(', ')}`)
    .requiredOption('--key <file>', 'your key file (breaker keygen)')
    .requiredOption('--reason <text>', 'why (recorded in the guard\'s events and the audit log)')
    .option('--args <json>', 'the action\'s own fields as a JSON object, e.g. resyncSeq: \'{"venue": "binance-spot", "seq": 42}\', approve: \'{"requestId": "..."}\'')
    .addOption(new Option('--ttl <seconds>', `how long the request stays valid (at most ${MAX_SIGNED_VALIDITY_SECONDS})`).argParser(parseTtl).default(DEFAULT_SIGNED_TTL_SECONDS))
    .option('--operator <id>', "the operator id to sign as (default: the key file's id)")
    .action(
      guarded((accountId: string, action: string, opts: { key: string; reason: string; args?: string; ttl: number; operator?: string }) => {
        if (!(SIGNABLE_ACTIONS as readonly string[]).includes(action)) {
          throw new Error(`unknown action ${JSON.stringify(action)}; allowed: ${SIGNABLE_ACTIONS.join(', ')}`);
        }
        const args = opts.args === undefined ? {} : parseArgs(opts.args);
        const key = readKeyFile(opts.key);
        const request = signOperatorRequest({
          accountId,
          action,
          operator: opts.operator ?? key.id,
          reason: opts.reason,
          args,
          secretKey: key.secretKey,
          ttlSeconds: opts.ttl,
        });
        io.out(JSON.stringify(request));
      }),
    );

  return program;
}
