/**
 * `breaker watch`: the watchdog as a command (src/watchdog/watchdog.ts). Checks every account of the trust anchor
 * (BREAKER_TRUST_FILE) each interval, prints every finding and POSTs those that are not ok to ALERT_WEBHOOK_URL.
 *
 *   breaker watch [--interval <s>] [--query-timeout <ms>]     runs until SIGINT/SIGTERM (a service of its own)
 *   breaker watch --once                                      one round; exit 0 when every guard is ok, 1 otherwise
 *
 * Exit code 2: it could not start (no or invalid trust anchor, an alert webhook URL that is not allowed).
 */
import type { Client } from '@temporalio/client';
import { Command, InvalidArgumentError } from 'commander';
import { loadTrustAnchor } from '../trust/anchor';
import { DEFAULT_QUERY_TIMEOUT_MS } from '../watchdog/checks';

interface WatchOptions {
  interval: number;
  once?: boolean;
  queryTimeout: number;
}

function positiveInteger(what: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${what} must be a whole number from 1 to ${max}`);
    return n;
  };
}

/**
 * Adds `watch` to the `breaker` program.
 * @param connect opens a Temporal client (called again each round until it succeeds) and closes it
 */
export function registerWatchCommand(program: Command, connect: () => Promise<{ client: Client; close: () => Promise<void> }>): Command {
  return program
    .command('watch')
    .description('check that every account in the trust anchor has exactly one running, answering, unblind guard; alert otherwise')
    .option('--interval <s>', 'seconds between rounds', positiveInteger('--interval', 86_400), 60)
    .option('--once', 'one round, then exit: 0 when every guard is ok, 1 when there is any finding')
    .option('--query-timeout <ms>', 'how long a guard has to answer the state query', positiveInteger('--query-timeout', 600_000), DEFAULT_QUERY_TIMEOUT_MS)
    .action(async (opts: WatchOptions) => {
      let close: (() => Promise<void>) | undefined;
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const anchor = loadTrustAnchor(process.env);
        // Loaded here, not at the top: it brings the alert rules from the activities module, and with them ccxt
        // (most of a second), which no other `breaker` verb should pay for.
        const { runWatchdog } = await import('../watchdog/watchdog');
        const checks = await runWatchdog({
          client: async () => {
            const opened = await connect();
            close = opened.close;
            return opened.client;
          },
          accounts: () => anchor.accounts(),
          venuesOf: (accountId) => anchor.viewOf(accountId).venues,
          queryTimeoutMs: opts.queryTimeout,
          intervalSeconds: opts.interval,
          alertWebhookUrl: process.env.ALERT_WEBHOOK_URL,
          signal: stop.signal,
          ...(opts.once ? { rounds: 1 } : {}),
        });
        if (opts.once) process.exitCode = checks.every((c) => c.findings.every((f) => f.kind === 'ok')) ? 0 : 1;
      } catch (err) {
        console.error(`breaker watch: ${(err as Error).message}`);
        process.exitCode = 2;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await close?.();
      }
    });
}
