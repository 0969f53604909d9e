/**
 * `npm run paper`: the paper exchange on its own, for rehearsing by hand with a real worker, the `breaker` CLI and the
 * `temporal` CLI (see docs/paper-exchange.md). It prints everything a worker needs (the `BREAKER_VENUES` value and the
 * credentials' environment lines) and the control API, then runs until SIGINT or SIGTERM.
 *
 * The credentials are generated (or given) for this run and printed on purpose: this is a rehearsal tool whose venue
 * exists only in this process. Never give it real keys.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { PERP_VENUE, SPOT_VENUE, seedPaperAccount } from '../seed-scenario';
import type { PaperSeed } from './exchange';
import { startPaperServer } from './server';

/** The environment variables the printed venue configuration names for the key and the secret. */
const PAPER_API_KEY_ENV = 'PAPER_API_KEY';
const PAPER_SECRET_ENV = 'PAPER_SECRET';

interface Options {
  host: string;
  port: number;
  apiKey?: string;
  secret?: string;
  seed?: string;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('a TCP port, 0-65535 (0: any free port)');
  return n;
}

function readSeed(file: string): PaperSeed {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`--seed ${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`--seed ${file}: expected a JSON object (see docs/paper-exchange.md)`);
  return raw as PaperSeed;
}

/** The worker's venue configuration for this paper exchange: Binance spot and USDⓈ-M, both routed here. */
function paperVenues(url: string) {
  return [
    { id: SPOT_VENUE, exchange: 'binance', routeTo: url, apiKeyEnv: PAPER_API_KEY_ENV, secretEnv: PAPER_SECRET_ENV },
    { id: PERP_VENUE, exchange: 'binanceusdm', routeTo: url, apiKeyEnv: PAPER_API_KEY_ENV, secretEnv: PAPER_SECRET_ENV },
  ];
}

/** Quotes a value for a POSIX shell. */
const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

async function main(argv: string[]): Promise<void> {
  const program = new Command('paper')
    .description('Run the paper exchange (Binance spot + USDⓈ-M futures REST, signed) for rehearsals by hand.')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <port>', 'TCP port (default: a free one picked by the OS)', port, 0)
    .option('--api-key <key>', 'API key the exchange accepts (default: generated and printed)')
    .option('--secret <secret>', 'secret of that key (default: generated and printed)')
    .option('--seed <file>', 'JSON seed of the account (default: the demo account: 4,000 USDT + 0.1 BTC spot, 2,000 USDT + a 0.1 BTC long perp, open orders)')
    .showHelpAfterError();
  program.parse(argv);
  const opts = program.opts<Options>();

  const credentials = { apiKey: opts.apiKey ?? randomBytes(16).toString('hex'), secret: opts.secret ?? randomBytes(32).toString('hex') };
  const seed = opts.seed ? readSeed(opts.seed) : seedPaperAccount();
  const paper = await startPaperServer({ credentials: [credentials], host: opts.host, port: opts.port });
  try {
    paper.exchange.seed(seed);
  } catch (err) {
    await paper.close();
    throw new Error(`seed rejected: ${(err as Error).message}`);
  }

  const url = paper.url;
  const venues = JSON.stringify(paperVenues(url));
  const snap = paper.exchange.snapshot();
  const amounts = (m: Record<string, string>) => Object.entries(m).map(([a, v]) => `${v} ${a}`).join(', ') || 'nothing';
  const out = (line = '') => process.stdout.write(`${line}\n`);
  out(`Paper exchange listening on ${url}`);
  out('  Binance spot (/api/v3) and USDⓈ-M futures (/fapi), HMAC-SHA256 signed; a rehearsal venue, never give it real keys.');
  out(`  WebSocket streams on the same port (ccxt pro watch* methods): ${url.replace(/^http/, 'ws')}/stream.binance.com/ws, /fstream.binance.com/..., /ws-api.binance.com/ws-api/v3`);
  if (!['127.0.0.1', 'localhost', '::1'].includes(opts.host)) out(`  WARNING: listening on ${opts.host}: the control API has no authentication.`);
  out(`  account: spot ${amounts(snap.spotBalances)}; futures ${amounts(snap.futuresBalances)}; ${snap.positions.length} position(s); ${snap.openOrders.total} open order(s)`);
  out('');
  out(`API key:    ${credentials.apiKey}`);
  out(`API secret: ${credentials.secret}`);
  out('');
  out(`BREAKER_VENUES=${venues}`);
  out('');
  out('Worker environment (paste into the shell that runs `npm run worker`):');
  out(`  export BREAKER_VENUES=${shellQuote(venues)}`);
  out(`  export ${PAPER_API_KEY_ENV}=${credentials.apiKey}`);
  out(`  export ${PAPER_SECRET_ENV}=${credentials.secret}`);
  out('  export TEMPORAL_ADDRESS=127.0.0.1:7233');
  out('');
  out('Control API (JSON; see docs/paper-exchange.md):');
  for (const [endpoint, what] of [
    ['GET    /control/state', 'balances, positions, prices, markets, open-order counts'],
    ['POST   /control/prices', 'set USDT prices, e.g. {"BTC":"37250"}'],
    ['POST   /control/seed', 'add to the account: prices, markets, spotBalances, futuresBalances, positions, orders'],
    ['POST   /control/reset', 'empty account, default prices and markets'],
    ['POST   /control/markets', 'list a market, e.g. {"base":"NEWCOIN","quote":"USDT","price":"2.5"}'],
    ['GET    /control/markets', 'listed markets with their prices'],
    ['DELETE /control/markets/:symbol', 'delist a market (balances stay, as dust)'],
    ['POST   /control/orders', 'place an order; GET lists them'],
    ['POST   /control/faults', 'inject a fault, e.g. {"endpoint":"DELETE /api/v3/openOrders","kind":"http5xx","count":2}'],
    ['GET    /control/faults', 'fault rules; DELETE clears them'],
    ['GET    /control/holds', 'requests held by a "hold" fault; POST /control/holds/:id/release'],
    ['GET    /control/requests', 'venue requests received, by endpoint'],
    ['POST   /control/clock', 'shift the venue clock, e.g. {"offsetMs":-5000} (worker 5 s fast); GET reads it'],
    ['POST   /control/keys', 'change a key\'s permissions: {"apiKey":"...","status":"revoked"|"readOnly"|"ok"}'],
    ['GET    /control/streams', 'WebSocket connections, subscriptions, events sent'],
    ['POST   /control/streams/faults', 'stream fault: {"action":"drop"|"silence"|"delay","streams":"market"|"user"|"all","ms":N}; DELETE clears'],
  ]) {
    out(`  ${endpoint!.padEnd(32)} ${what}`);
  }
  out(`  e.g. curl -s -X POST ${url}/control/prices -H 'content-type: application/json' -d '{"BTC":"37250"}'`);
  out('');
  out('Ctrl-C stops it.');

  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    out(`${signal}: closing the paper exchange`);
    paper.close().then(
      () => process.exit(0),
      (err) => {
        console.error(`paper exchange did not close cleanly: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main(process.argv).catch((err) => {
  console.error(`paper: ${(err as Error).message}`);
  process.exit(1);
});
