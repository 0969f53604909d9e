/**
 * A real mTLS connection, configured the way an operator configures one: TEMPORAL_* variables only, resolved by
 * src/temporal-connection.ts, for both the client (`Connection`, grpc-js) and the worker (`NativeConnection`, Rust core).
 *
 * `temporal server start-dev` has no TLS options, so a TLS-terminating TCP proxy (`node:tls`, ALPN h2, client
 * certificates required and checked against our CA) sits in front of the shared dev server's plain gRPC port. The
 * certificates (a CA, a server certificate for 127.0.0.1/localhost, one client certificate for the worker and one for
 * the client, and a second, untrusted CA with a client certificate of its own) are made with openssl in a temporary
 * directory for each run. The proxy records the subject of every client it let through and counts the handshakes it
 * refused, so that a test can tell "refused by mTLS" from "failed for some other reason".
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { BreakerClient } from '../../src/client';
import { createVenueClient } from '../../src/exchanges/ccxt-factory';
import { loadTemporalConnection } from '../../src/temporal-connection';
import { createGuardWorker } from '../../src/worker-factory';
import { rehearsal } from '../../tooling/rehearsal-trust';
import { PaperServer, startPaperServer } from '../../tooling/paper/server';
import { SPOT_VENUE } from '../../tooling/seed-scenario';
import { PAPER_RATE_LIMIT_MS } from './harness-constants';
import { eventually, uniqueAccount } from './harness';

interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  workerCert: string;
  workerKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA the proxy does not trust, and a client certificate it signed. */
  rogueCaCert: string;
  rogueClientCert: string;
  rogueClientKey: string;
}

/** A throwaway PKI: EC P-256 keys, certificates valid for a day, with the extensions rustls (core) insists on. */
function makePki(): Pki {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'breaker-tls-'));
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = (name: string) => {
    openssl('req', '-x509', ...ec, '-days', '1', '-subj', `/CN=${name}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    return file(`${name}.pem`);
  };
  const leaf = (name: string, caName: string, extensions: string) => {
    writeFileSync(file(`${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n${extensions}\n`);
    openssl('req', ...ec, '-subj', `/CN=${name}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`));
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${caName}.pem`), '-CAkey', file(`${caName}.key`), '-CAcreateserial',
      '-days', '1', '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`));
    return { cert: file(`${name}.pem`), key: file(`${name}.key`) };
  };
  const caCert = ca('test-ca');
  const server = leaf('temporal-frontend', 'test-ca', 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost');
  const worker = leaf('breaker-worker', 'test-ca', 'extendedKeyUsage=clientAuth');
  const client = leaf('breaker-cli', 'test-ca', 'extendedKeyUsage=clientAuth');
  const rogueCaCert = ca('rogue-ca');
  const rogue = leaf('rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth');
  return {
    dir, caCert, serverCert: server.cert, serverKey: server.key, workerCert: worker.cert, workerKey: worker.key,
    clientCert: client.cert, clientKey: client.key, rogueCaCert, rogueClientCert: rogue.cert, rogueClientKey: rogue.key,
  };
}

interface TlsProxy {
  address: string;
  /** Subject CN of each client certificate the proxy accepted, one entry per connection. */
  accepted: string[];
  /** Handshakes refused (no client certificate, or one not signed by our CA). */
  refused: number;
  close(): Promise<void>;
}

/** Terminates mTLS on a free loopback port and pipes the bytes to the dev server's plain gRPC port. */
async function startTlsProxy(pki: Pki, upstream: string): Promise<TlsProxy> {
  const [upstreamHost, upstreamPort] = [upstream.slice(0, upstream.lastIndexOf(':')), Number(upstream.slice(upstream.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  const proxy: Omit<TlsProxy, 'address' | 'close'> = { accepted: [], refused: 0 };
  const server = tls.createServer(
    {
      cert: readFileSync(pki.serverCert),
      key: readFileSync(pki.serverKey),
      ca: readFileSync(pki.caCert),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    // Called only for authorized connections (rejectUnauthorized).
    (socket) => {
      proxy.accepted.push(String(socket.getPeerCertificate().subject.CN));
      const backend = net.connect(upstreamPort, upstreamHost);
      sockets.add(socket).add(backend);
      const end = () => {
        socket.destroy();
        backend.destroy();
      };
      socket.on('error', end).on('close', end);
      backend.on('error', end).on('close', end);
      socket.pipe(backend).pipe(socket);
    },
  );
  server.on('tlsClientError', (_err, socket) => {
    proxy.refused += 1;
    socket.destroy();
  });
  server.on('connection', (socket: net.Socket) => sockets.add(socket));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return Object.assign(proxy, {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}

let pki: Pki;
let proxy: TlsProxy;
let paper: PaperServer;
const credentials = { apiKey: randomBytes(8).toString('hex'), secret: randomBytes(16).toString('hex') };

/** What an operator sets for a process that connects with the given certificate and key. */
function operatorEnv(cert: string | undefined, key: string | undefined, caCert = pki.caCert): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: proxy.address,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: caCert,
    // The name in the server's certificate: TLS clients do not send an IP address as SNI (RFC 6066).
    TEMPORAL_TLS_SERVER_NAME: 'localhost',
    ...(cert ? { TEMPORAL_TLS_CLIENT_CERT_PATH: cert } : {}),
    ...(key ? { TEMPORAL_TLS_CLIENT_KEY_PATH: key } : {}),
  };
}

beforeAll(async () => {
  // Refused connections make core log transport errors that the tests expect; only errors are printed.
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
  const upstream = process.env.TEST_TEMPORAL_ADDRESS;
  if (!upstream) throw new Error('TEST_TEMPORAL_ADDRESS is not set: run integration tests through jest (globalSetup)');
  pki = makePki();
  proxy = await startTlsProxy(pki, upstream);
  paper = await startPaperServer({ credentials: [credentials] });
  paper.exchange.seed({ spotBalances: { USDT: '10000' } });
});
afterAll(async () => {
  await proxy?.close();
  await paper?.close();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

/** Waits until the proxy has refused a handshake since `before` (its error event may trail the client's failure). */
const refusedSince = (before: number) => eventually(async () => proxy.refused, (n) => n > before, 10_000);

describe('mTLS through TEMPORAL_* variables', () => {
  it('a client (Connection) and a worker (NativeConnection) both work through TLS with their certificates', async () => {
    const clientSide = loadTemporalConnection(operatorEnv(pki.clientCert, pki.clientKey));
    const workerSide = loadTemporalConnection(operatorEnv(pki.workerCert, pki.workerKey));
    expect(clientSide.tls).toBe(true);
    expect(workerSide.describe()).toContain(`${proxy.address} (TEMPORAL_ADDRESS), namespace default; TLS with client certificate ${pki.workerCert} (CN=breaker-worker`);

    const venue = createVenueClient({ id: SPOT_VENUE, exchange: 'binance', routeTo: paper.url, timeoutMs: 5_000, rateLimitMs: PAPER_RATE_LIMIT_MS }, credentials);
    const taskQueue = `tls-${randomBytes(4).toString('hex')}`;
    const nativeConnection = await NativeConnection.connect(workerSide.nativeConnectOptions);
    const connection = await Connection.connect(clientSide.clientConnectOptions);
    try {
      const systemInfo = await connection.workflowService.getSystemInfo({});
      expect(systemInfo.capabilities).toBeTruthy();
      const trust = rehearsal();
      const worker = await createGuardWorker({
        connection: nativeConnection,
        namespace: workerSide.namespace,
        venues: new Map([[venue.id, venue]]),
        taskQueue,
        workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
        trust: trust.anchor,
        auditDir: trust.auditDir,
      });
      const breaker = new BreakerClient(new Client({ connection, namespace: clientSide.namespace }), taskQueue);
      const accountId = uniqueAccount('tls');
      await worker.runUntil(async () => {
        await breaker.startGuard({ accountId, initialCapital: '10000', venues: [SPOT_VENUE], valuationIntervalSeconds: 60 });
        // A valuation is a workflow task and an activity: only the worker, connected through the proxy, runs them.
        const state = await eventually(() => breaker.state(accountId), (s) => s.lastValuationAt !== null);
        expect(state).toMatchObject({ state: 'Active', totalValue: '10000' });
        await breaker.handle(accountId).terminate('tls test done');
      });
    } finally {
      await connection.close();
      await nativeConnection.close();
      await venue.exchange.close();
    }
    // Both went through the proxy, each with its own certificate.
    expect(proxy.accepted).toEqual(expect.arrayContaining(['breaker-cli', 'breaker-worker']));
  });

  it('refuses a client and a worker without a client certificate (mTLS is enforced)', async () => {
    const noCert = loadTemporalConnection(operatorEnv(undefined, undefined));
    expect(noCert.tls).toBe(true);
    const refusedBefore = proxy.refused;
    await expect(Connection.connect({ ...noCert.clientConnectOptions, connectTimeout: 5_000 })).rejects.toThrow();
    await refusedSince(refusedBefore);
    const refusedByClient = proxy.refused;
    await expect(NativeConnection.connect(noCert.nativeConnectOptions)).rejects.toThrow();
    await refusedSince(refusedByClient);
    expect(proxy.accepted).not.toContain('undefined');
  });

  it('refuses a client certificate from a CA the server does not trust', async () => {
    const rogue = loadTemporalConnection(operatorEnv(pki.rogueClientCert, pki.rogueClientKey));
    const refusedBefore = proxy.refused;
    await expect(Connection.connect({ ...rogue.clientConnectOptions, connectTimeout: 5_000 })).rejects.toThrow();
    await refusedSince(refusedBefore);
    expect(proxy.accepted).not.toContain('rogue-client');
  });

  it('a client refuses a server whose certificate its CA did not sign', async () => {
    // The right client certificate, but the rogue CA as the trusted root: the client must hang up, not the server.
    const wrongRoot = loadTemporalConnection(operatorEnv(pki.clientCert, pki.clientKey, pki.rogueCaCert));
    const acceptedBefore = proxy.accepted.length;
    await expect(Connection.connect({ ...wrongRoot.clientConnectOptions, connectTimeout: 5_000 })).rejects.toThrow();
    await expect(NativeConnection.connect(wrongRoot.nativeConnectOptions)).rejects.toThrow();
    expect(proxy.accepted.length).toBe(acceptedBefore);
  });

  it('plaintext to the TLS port fails', async () => {
    // Only TEMPORAL_ADDRESS set, as if the operator forgot the TLS variables.
    const plain = loadTemporalConnection({ TEMPORAL_ADDRESS: proxy.address });
    expect(plain.tls).toBe(false);
    const [acceptedBefore, refusedBefore] = [proxy.accepted.length, proxy.refused];
    await expect(Connection.connect({ ...plain.clientConnectOptions, connectTimeout: 5_000 })).rejects.toThrow();
    await expect(NativeConnection.connect(plain.nativeConnectOptions)).rejects.toThrow();
    // It reached the TLS port and failed there (not, say, a closed port).
    await refusedSince(refusedBefore);
    expect(proxy.accepted.length).toBe(acceptedBefore);
  });
});
