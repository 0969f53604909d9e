/**
 * The codec server: Temporal's remote codec protocol over node:http, so that the Web UI and the `temporal` CLI show
 * decrypted payloads to those who can reach it (and hold its token), while the Temporal server keeps only ciphertext.
 *
 * Protocol: `POST /encode` and `POST /decode` (also under a namespace prefix, `/<namespace>/decode`, which the CLI's
 * `--codec-endpoint` templating produces), body and answer `{"payloads":[{"metadata":{"<key>":"<base64>"},
 * "data":"<base64>"}]}` (proto3 JSON: every bytes field is base64). The Web UI calls it from the browser, hence CORS
 * for one configured origin.
 *
 * Decoding here never refuses a whole request for one payload it cannot decrypt: a payload that is not encrypted is
 * returned as it is (it is plaintext in the server already), and one under an unknown key or with a bad tag is
 * returned still encrypted, so the UI shows it as such. Only the worker must turn those into refusals.
 *
 * Run: `npm run codec-server` with BREAKER_CODEC_KEYS (or BREAKER_CODEC_KEYS_FILE) and optionally
 * BREAKER_CODEC_SERVER_TOKEN, BREAKER_CODEC_CORS_ORIGIN, BREAKER_CODEC_SERVER_HOST, BREAKER_CODEC_SERVER_PORT.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload } from '@temporalio/common';
import { CodecKeys, EncryptionCodec, codecKeysFromEnv, CODEC_KEYS_ENV, CODEC_KEYS_FILE_ENV } from './encryption';

/** The bearer token the server requires when set. */
export const CODEC_SERVER_TOKEN_ENV = 'BREAKER_CODEC_SERVER_TOKEN';
/** The Web UI's origin (e.g. `http://localhost:8233`), allowed by CORS. */
export const CODEC_CORS_ORIGIN_ENV = 'BREAKER_CODEC_CORS_ORIGIN';
export const CODEC_SERVER_HOST_ENV = 'BREAKER_CODEC_SERVER_HOST';
export const CODEC_SERVER_PORT_ENV = 'BREAKER_CODEC_SERVER_PORT';

/** Default largest request body: a guard's biggest payloads (reports, state) are tens of kilobytes. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Most payloads in one request. */
const MAX_PAYLOADS = 10_000;
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface CodecServerOptions {
  keys: CodecKeys;
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port; 0 picks a free one. @default 8888 */
  port?: number;
  /** When set, every request must carry `Authorization: Bearer <token>`; others get 401. */
  token?: string;
  /** The one origin CORS allows (the Web UI's, e.g. `http://localhost:8233`); none when unset. */
  corsOrigin?: string;
  /** Largest request body in bytes (413 beyond). @default {@link DEFAULT_MAX_BODY_BYTES} */
  maxBodyBytes?: number;
}

export interface RunningCodecServer {
  /** `http://host:port`, the value for `--codec-endpoint` and the Web UI's codec endpoint. */
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** A request the server answers with an error status and a message (never key material, never payload data). */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Constant-time comparison of a presented token with the configured one (hashes equalise the lengths). */
function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function bytesOf(value: unknown, where: string): Uint8Array {
  if (typeof value !== 'string' || !BASE64_PATTERN.test(value)) throw new HttpError(400, `${where} must be a base64 string`);
  return Buffer.from(value, 'base64');
}

/** A payload from proto3 JSON (bytes fields as base64). */
export function payloadFromJson(value: unknown, index: number): Payload {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, `payloads[${index}] must be an object`);
  const { metadata, data } = value as { metadata?: unknown; data?: unknown };
  const decoded: Record<string, Uint8Array> = {};
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object' || Array.isArray(metadata)) throw new HttpError(400, `payloads[${index}].metadata must be an object`);
    for (const [k, v] of Object.entries(metadata)) decoded[k] = bytesOf(v, `payloads[${index}].metadata`);
  }
  return { metadata: decoded, data: data === undefined || data === null ? new Uint8Array(0) : bytesOf(data, `payloads[${index}].data`) };
}

/** A payload as proto3 JSON (bytes fields as base64). */
export function payloadToJson(payload: Payload): { metadata: Record<string, string>; data: string } {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(payload.metadata ?? {})) if (v) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, data: Buffer.from(payload.data ?? new Uint8Array(0)).toString('base64') };
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, `request body over ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parsePayloads(body: Buffer): Payload[] {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new HttpError(400, 'body must be {"payloads": [...]}');
  // Proto3 JSON leaves out an empty repeated field: the CLI sends `{}` for a query without arguments.
  const payloads = (json as { payloads?: unknown }).payloads ?? [];
  if (!Array.isArray(payloads)) throw new HttpError(400, 'body must be {"payloads": [...]}');
  if (payloads.length > MAX_PAYLOADS) throw new HttpError(413, `more than ${MAX_PAYLOADS} payloads`);
  return payloads.map(payloadFromJson);
}

/**
 * Starts a codec server.
 * @returns its URL and a close function
 */
export async function startCodecServer(options: CodecServerOptions): Promise<RunningCodecServer> {
  const codec = new EncryptionCodec(options.keys);
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const token = options.token !== undefined && options.token !== '' ? options.token : undefined;

  function cors(req: IncomingMessage, res: ServerResponse): void {
    if (options.corsOrigin === undefined || req.headers.origin !== options.corsOrigin) return;
    res.setHeader('Access-Control-Allow-Origin', options.corsOrigin);
    res.setHeader('Vary', 'Origin');
    res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-Namespace');
    // The Web UI sends its user's credentials when told to ("include cross-origin credentials").
    res.setHeader('Access-Control-Allow-Credentials', 'true');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    cors(req, res);
    // Preflight: answered without a token (browsers send none with it); the actual request is checked.
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    const path = new URL(req.url ?? '/', 'http://codec').pathname;
    const operation = /^(?:\/[^/]+)?\/(encode|decode)\/?$/.exec(path)?.[1];
    if (operation === undefined) throw new HttpError(404, 'not found: POST /encode or /decode');
    if (req.method !== 'POST') throw new HttpError(405, 'method not allowed: POST only');
    if (token !== undefined) {
      const header = req.headers.authorization ?? '';
      const presented = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
      if (!tokenMatches(presented, token)) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        throw new HttpError(401, 'unauthorized');
      }
    }
    const payloads = parsePayloads(await readBody(req, limit));
    const out =
      operation === 'encode'
        ? await codec.encode(payloads)
        : // Not encrypted: shown as it is; not decryptable here: shown still encrypted (see the module comment).
          payloads.map((p) => {
            const result = codec.decrypt(p);
            return result.ok ? result.payload : p;
          });
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ payloads: out.map(payloadToJson) }));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      const message = err instanceof HttpError ? err.message : 'internal error';
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify({ error: message }));
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8888, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** `npm run codec-server`: the server configured from the environment. */
async function main(): Promise<void> {
  const keys = codecKeysFromEnv();
  if (keys === undefined) throw new Error(`no keys: set ${CODEC_KEYS_ENV} or ${CODEC_KEYS_FILE_ENV}`);
  const portText = process.env[CODEC_SERVER_PORT_ENV];
  const port = portText === undefined || portText === '' ? undefined : Number(portText);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new Error(`${CODEC_SERVER_PORT_ENV} must be a port number`);
  const running = await startCodecServer({
    keys,
    host: process.env[CODEC_SERVER_HOST_ENV] || undefined,
    port,
    token: process.env[CODEC_SERVER_TOKEN_ENV] || undefined,
    corsOrigin: process.env[CODEC_CORS_ORIGIN_ENV] || undefined,
  });
  // Which key encrypts and how many decrypt; never the keys.
  console.log(
    `codec server on ${running.url} (encrypts with key id ${keys.primaryKeyId}, decrypts ${keys.keys.size} key id(s); ` +
      `token ${process.env[CODEC_SERVER_TOKEN_ENV] ? 'required' : 'NOT required'}; CORS origin ${process.env[CODEC_CORS_ORIGIN_ENV] || 'none'})`,
  );
  const stop = () => void running.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
