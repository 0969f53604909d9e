/**
 * Signature checks: what authenticating operators and bots costs (issue 10). The guard checks Ed25519 signatures in
 * the workflow sandbox with @noble/curves (pure JavaScript: node:crypto is not available there). Measured twice:
 * the check alone, as the decider runs it, and a bot report's round trip through a real guard with and without a
 * signature (client signs, guard verifies), each on an in-process worker of its own on the same server, one after the other.
 */
import { randomBytes } from 'node:crypto';
import { NativeConnection } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { BreakerClient } from '../src/client';
import { botReportMessage, newEd25519KeyPair, operatorActionMessage, signEd25519, verifyEd25519 } from '../src/domain/signing';
import { PERMISSIONS } from '../src/domain/trust';
import { ANY_ACCOUNT, trustAnchorFrom } from '../src/trust/anchor';
import { createGuardWorker } from '../src/worker-factory';
import type { VenueClient } from '../src/exchanges/ccxt-factory';
import { rehearsal } from '../tooling/rehearsal-trust';
import { median, percentile, round } from './stats';

const CHECKS = 300;
const REPORTS = 200;

/** Median and p99 of `fn` in µs over `n` runs (after a warm-up of 20). */
function timeUs(fn: () => void, n: number): { p50: number; p99: number } {
  for (let i = 0; i < 20; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  return { p50: round(median(samples)), p99: round(percentile(samples, 99)) };
}

export interface SignatureContext {
  client: Client;
  address: string;
  workflowBundle: string;
  venues: () => ReadonlyMap<string, VenueClient>;
  spot: string;
  say: (line: string) => void;
}

export async function signatureChecks(ctx: SignatureContext): Promise<Record<string, number>> {
  const operator = newEd25519KeyPair();
  const action = operatorActionMessage({ accountId: 'acct-1', action: 'reset', args: {}, operator: 'alice', reason: 'losses reviewed', nonce: 'n'.repeat(22), expiresAt: '2026-01-01T00:00:00.000Z' });
  const actionSig = signEd25519(operator.secretKey, action);
  const report = { venue: 'binance-spot', seq: 1, balances: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`A${i}`, '12.5'])) };
  const reportMsg = botReportMessage('acct-1', report);
  const reportSig = signEd25519(operator.secretKey, reportMsg);
  const operatorCheck = timeUs(() => verifyEd25519(operator.publicKey, actionSig, action), CHECKS);
  const reportCheck = timeUs(() => verifyEd25519(operator.publicKey, reportSig, reportMsg), CHECKS);

  // Round trips: one worker whose anchor requires signed reports from `bot` (every paper account, "*").
  const bot = newEd25519KeyPair();
  const base = rehearsal();
  const anchor = trustAnchorFrom({
    accounts: {
      [ANY_ACCOUNT]: {
        venues: [],
        operators: base.operatorKeys.map((k) => ({ id: k.id, publicKey: k.publicKey, actions: [...PERMISSIONS] })),
        bots: [{ id: 'bench-bot', publicKey: bot.publicKey, venues: [ctx.spot] }],
      },
    },
  });
  /** Report round trips on a guard of a worker with this anchor; `botKey` signs them. */
  const roundTrips = async (anchorFor: typeof anchor, botKey?: { id: string; secretKey: string }) => {
    const taskQueue = `bench-signatures-${randomBytes(3).toString('hex')}`;
    const native = await NativeConnection.connect({ address: ctx.address });
    const worker = await createGuardWorker({ connection: native, venues: ctx.venues(), taskQueue, workflowBundle: { codePath: ctx.workflowBundle }, trust: anchorFor, auditDir: base.auditDir });
    const breaker = new BreakerClient(ctx.client, taskQueue, botKey ? { botKey } : {});
    const samples: number[] = [];
    let refusedUnsigned = 0;
    await worker.runUntil(async () => {
      const accountId = `bench-sig-${randomBytes(3).toString('hex')}`;
      await breaker.startGuard({ accountId, initialCapital: '10000', venues: [ctx.spot], valuationIntervalSeconds: 3600, watch: { enabled: false } });
      for (let i = 1; i <= REPORTS; i++) {
        const t = process.hrtime.bigint();
        await breaker.report(accountId, { venue: ctx.spot, seq: i, balances: { USDT: i % 2 ? '10000' : '9990' } });
        samples.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      // Where signatures are required, an unsigned report is refused (a proof the signed figure was checked).
      if (botKey) {
        for (let i = 1; i <= 10; i++) {
          await new BreakerClient(ctx.client, taskQueue).report(accountId, { venue: ctx.spot, seq: REPORTS + i, balances: { USDT: '10000' } }).catch(() => (refusedUnsigned += 1));
        }
      }
      await breaker.handle(accountId).terminate('bench');
    });
    await native.close();
    return { samples, refusedUnsigned };
  };
  const unsigned = await roundTrips(base.anchor);
  const signed = await roundTrips(anchor, { id: 'bench-bot', secretKey: bot.secretKey });
  const results = {
    signatureCheck_operatorAction_p50_us: operatorCheck.p50,
    signatureCheck_operatorAction_p99_us: operatorCheck.p99,
    signatureCheck_botReport20Assets_p50_us: reportCheck.p50,
    signatureCheck_botReport20Assets_p99_us: reportCheck.p99,
    unsignedReportUpdate_p50_ms: round(median(unsigned.samples)),
    unsignedReportUpdate_p99_ms: round(percentile(unsigned.samples, 99)),
    signedReportUpdate_p50_ms: round(median(signed.samples)),
    signedReportUpdate_p99_ms: round(percentile(signed.samples, 99)),
    unsignedReportsRefusedOf10: signed.refusedUnsigned,
  };
  ctx.say(
    `signatures. Ed25519 check in the guard (@noble/curves, pure JS): operator action p50 ${results.signatureCheck_operatorAction_p50_us} µs ` +
      `(p99 ${results.signatureCheck_operatorAction_p99_us}), bot report of 20 assets p50 ${results.signatureCheck_botReport20Assets_p50_us} µs; ` +
      `report update round trip over ${REPORTS}: unsigned (no bot keys) p50 ${results.unsignedReportUpdate_p50_ms} ms (p99 ${results.unsignedReportUpdate_p99_ms}), ` +
      `signed and checked p50 ${results.signedReportUpdate_p50_ms} ms (p99 ${results.signedReportUpdate_p99_ms}); unsigned refused where keys are required: ${signed.refusedUnsigned}/10`,
  );
  return results;
}
