/**
 * `npm run demo`: the seed scenario end to end. Starts an embedded Temporal dev server (unless Temporal's environment
 * configuration names a server: TEMPORAL_ADDRESS, or a profile with an address, see src/temporal-connection.ts), the
 * paper exchange and a worker; starts a guard for a $10,000.00 USDT account with open orders on Binance
 * spot and USDⓈ-M perps; reports losses of 2.00 %, 3.50 %, 4.20 % and 5.50 %; shows the emergency shutdown; exits
 * with code 1 because the breaker tripped, like the original design's demo.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { GuardStateView } from '../src/api/contract';
import { BreakerClient } from '../src/client';
import { Decimal, formatUsd, toDecimalString } from '../src/domain/money';
import { createVenueClient } from '../src/exchanges/ccxt-factory';
import { pollUntil } from './poll';
import { startPaperServer } from './paper/server';
import { DevServer, startDevServer } from './temporal/dev-server';
import { PERP_VENUE, SEED_CAPITAL, SEED_STEPS, SPOT_VENUE, perpReport, seedPaperAccount, spotReport } from './seed-scenario';
import { createGuardWorker } from '../src/worker-factory';
import { loadTemporalConnection } from '../src/temporal-connection';
import { payloadCodecsFromEnv } from '../src/codec/encryption';
import { rehearsal } from './rehearsal-trust';

const CAPITAL = new Decimal(SEED_CAPITAL);

const out = (line = '') => process.stdout.write(`${line}\n`);
const pct = (value: string | null) => (value === null ? 'n/a' : `${value} %`);

async function main(): Promise<number> {
  // The worker's own INFO lines would bury the demo's story; warnings and errors (alerts among them) still show,
  // one line each.
  Runtime.install({ logger: new DefaultLogger('WARN', (entry) => out(`  ${entry.level === 'WARN' ? '⚠' : '✗'} ${entry.message}`)) });
  out('portfolio-breaker demo: a guard trips on a paper exchange');
  out('=========================================================');
  let devServer: DevServer | undefined;
  // The same resolution as the worker's and the CLI's: a configured server (TLS, API key, namespace and all) is used
  // as configured; only when nothing names a server does the demo bring its own.
  let temporal = loadTemporalConnection(process.env);
  if (temporal.addressConfigured) out(`• Temporal: using the server at ${temporal.describe()}`);
  else {
    out('• Temporal: starting an embedded dev server ...');
    devServer = await startDevServer({ log: (l) => out(`  ${l}`) });
    temporal = loadTemporalConnection({}, { address: devServer.address, namespace: devServer.namespace });
    out(`  dev server on ${devServer.address}`);
  }

  // Demo credentials exist only in this process: the paper exchange verifies them, ccxt signs with them.
  const credentials = { apiKey: randomBytes(16).toString('hex'), secret: randomBytes(32).toString('hex') };
  const paper = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed(seedPaperAccount());
  const before = paper.exchange.snapshot().openOrders;
  out(`• Paper exchange on ${paper.url}: Binance spot + USDⓈ-M futures`);
  out(`  account: 4,000 USDT + 0.1 BTC on spot; 2,000 USDT + 0.1 BTC long on perps; BTC at $40,000`);
  out(`  open orders: ${before.spot} spot, ${before.futures} perp, ${before.futuresAlgo} perp conditional`);

  const venues = new Map(
    [
      createVenueClient({ id: SPOT_VENUE, exchange: 'binance', routeTo: paper.url, timeoutMs: 10_000 }, credentials),
      createVenueClient({ id: PERP_VENUE, exchange: 'binanceusdm', routeTo: paper.url, timeoutMs: 10_000 }, credentials),
    ].map((v) => [v.id, v]),
  );
  out('• Worker: bundling the workflow code and connecting ...');
  const nativeConnection = await NativeConnection.connect(temporal.nativeConnectOptions);
  // A rehearsal trust anchor: operators alice and bob with generated keys, for this demo's accounts only (paper venues).
  const trust = rehearsal();
  // alice's key as `breaker keygen` writes it (0600), so that the reset printed at the end can be run as shown.
  const aliceKey = path.join(path.dirname(trust.trustFile), 'alice.key');
  const alice = trust.operatorKeys.find((k) => k.id === 'alice')!;
  writeFileSync(aliceKey, JSON.stringify({ kind: 'portfolio-breaker-ed25519', ...alice }), { mode: 0o600 });
  out(`• Trust anchor: operators ${trust.operatorKeys.map((k) => k.id).join(', ')} (keys generated for this demo; alice's in ${aliceKey}); audit log in ${trust.auditDir}`);
  // BREAKER_CODEC_KEYS, when set, encrypts the demo's history as it would a deployment's.
  const payloadCodecs = payloadCodecsFromEnv(process.env);
  const worker = await createGuardWorker({ connection: nativeConnection, namespace: temporal.namespace, venues, trust: trust.anchor, auditDir: trust.auditDir, payloadCodecs });
  const connection = await Connection.connect(temporal.clientConnectOptions);
  const breaker = new BreakerClient(new Client({ connection, namespace: temporal.namespace, dataConverter: { payloadCodecs } }), undefined, { operatorKeys: trust.operatorKeys });
  const accountId = `demo-${Date.now()}`;

  let exitCode = 0;
  await worker.runUntil(async () => {
    await breaker.startGuard({ accountId, initialCapital: CAPITAL.toFixed(2), venues: [...venues.keys()], valuationIntervalSeconds: 60 });
    out(`• Guard started: workflow guard-${accountId}, capital $10,000.00, warning at 3 %, trip at 5 %`);
    await pollUntil(() => breaker.state(accountId), (s) => s.lastValuationAt !== null, { what: 'the first valuation', timeoutMs: 60_000, intervalMs: 200 });
    out('');
    out('  step  BTC price   loss      value        state');
    let last: GuardStateView | undefined;
    for (const [i, { price }] of SEED_STEPS.entries()) {
      await fetch(`${paper.url}/control/prices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ BTC: price }) });
      await breaker.report(accountId, spotReport(i + 1, price));
      last = await breaker.report(accountId, perpReport(i + 1, price));
      out(`  ${i + 1}     $${price}    ${pct(last.lossPct).padEnd(9)} ${formatUsd(new Decimal(last.totalValue!)).padEnd(12)} ${last.state}`);
    }
    out('');
    if (last?.state !== 'Triggered') {
      out('✗ the breaker did not trip');
      exitCode = 2;
      return;
    }
    out('• Circuit breaker TRIGGERED: cancelling every open order on every venue ...');
    const flat = await pollUntil(() => breaker.state(accountId), (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat', {
      what: 'the shutdown to finish',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    for (const [venue, progress] of Object.entries(flat.shutdown)) {
      out(`  ${venue.padEnd(13)} cancelled ${String(progress.cancelled).padStart(2)} order(s), open now: ${progress.openOrders}`);
    }
    const after = paper.exchange.snapshot().openOrders;
    out(`  paper exchange open orders: ${after.total} (spot ${after.spot}, perp ${after.futures}, perp conditional ${after.futuresAlgo})`);
    const events = await breaker.events(accountId);
    out(`  events: ${events.map((e) => e.type).join(' → ')}`);
    const pnl = new Decimal(flat.pnl!);
    out('');
    out(`Final loss: ${formatUsd(pnl.negated())} (${toDecimalString(pnl.div(CAPITAL).times(100), 2)} %). The account stays flat until an operator resets it:`);
    out(`  npm run breaker -- reset ${accountId} --key ${aliceKey} --reason "reviewed"   (signed with alice's key; see README "Security model")`);
    if (devServer) out('  (the embedded server stops with the demo; run `npm run server` and set TEMPORAL_ADDRESS=127.0.0.1:7233 to keep it)');
    exitCode = after.total === 0 ? 1 : 3;
  });
  await connection.close();
  await nativeConnection.close();
  await paper.close();
  await devServer?.stop();
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`demo failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(4);
  },
);
