/**
 * Where every process of ours (worker, client, CLI, demo) gets its Temporal connection: Temporal's own environment
 * configuration (`@temporalio/envconfig`), the same variables and profile file as the Temporal CLI and the other SDKs,
 * so that a local dev server, a self-hosted mTLS cluster and Temporal Cloud (API key or mTLS) need no code of ours.
 *
 * Precedence, highest first: explicit overrides (CLI flags), `TEMPORAL_*` variables, the selected profile of the
 * profile file, then our defaults (`127.0.0.1:7233`, namespace `default`), which apply only to what nothing configured.
 *
 * The envconfig package reads files lazily and silently: a missing `TEMPORAL_CONFIG_FILE` counts as "no file", a
 * client certificate without its key means "no client certificate", and a wrong path surfaces as a bare ENOENT. Here
 * each of these is an error that names the variable (or the profile key) to fix, before anything connects. Secrets (API
 * key, private key, inline certificate data, gRPC header values) never appear in an error or in {@link
 * TemporalConnection.describe}.
 *
 * Payload codecs are not configured here: they belong to the data converter (`Client({ dataConverter })`).
 */
import { KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from '@temporalio/client';
import {
  ClientConfigProfile,
  ConfigDataSource,
  loadClientConfig,
  loadClientConfigProfile,
  toClientOptions,
} from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';

/** Our address when neither a variable, a profile nor an override names one: a local dev server. */
export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
/** Our namespace when nothing names one. */
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/**
 * The environment variables read (by `@temporalio/envconfig`, checked here), for documentation and tests.
 * `TEMPORAL_GRPC_META_<NAME>` variables add gRPC headers besides these.
 */
export const TEMPORAL_ENV = {
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  apiKey: 'TEMPORAL_API_KEY',
  tls: 'TEMPORAL_TLS',
  clientCertPath: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
  clientCertData: 'TEMPORAL_TLS_CLIENT_CERT_DATA',
  clientKeyPath: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
  clientKeyData: 'TEMPORAL_TLS_CLIENT_KEY_DATA',
  serverCaCertPath: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  serverCaCertData: 'TEMPORAL_TLS_SERVER_CA_CERT_DATA',
  serverName: 'TEMPORAL_TLS_SERVER_NAME',
  disableHostVerification: 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION',
  configFile: 'TEMPORAL_CONFIG_FILE',
  profile: 'TEMPORAL_PROFILE',
} as const;

const GRPC_META_PREFIX = 'TEMPORAL_GRPC_META_';

/** Explicit choices that win over the environment and the profile file, e.g. from command-line flags. */
export interface TemporalConnectionOverrides {
  /** `host:port` of the frontend. */
  address?: string;
  namespace?: string;
  /** Profile of the profile file to use (instead of `TEMPORAL_PROFILE`, else `default`). */
  profile?: string;
  /** Profile file to read (instead of `TEMPORAL_CONFIG_FILE`, else the user's `temporalio/temporal.toml`). */
  configFile?: string;
}

/** A resolved connection: what to pass to `Connection.connect` / `NativeConnection.connect`, and the namespace. */
export interface TemporalConnection {
  address: string;
  namespace: string;
  /** False when the address is our default because nothing configured one (the demo then starts its own server). */
  addressConfigured: boolean;
  /** Whether the connection uses TLS (explicitly, or implied by an API key). */
  tls: boolean;
  /** The profile file read, if any. */
  configFile?: string;
  /** The profile used from that file, if it had one of that name. */
  profile?: string;
  /** For `Connection.connect` (client, CLI); add `connectTimeout` and the like as needed. */
  clientConnectOptions: ConnectionOptions;
  /** For `NativeConnection.connect` (worker). */
  nativeConnectOptions: NativeConnectionOptions;
  /** One line for logs: address, namespace, where they came from and the TLS setup; never a secret. */
  describe(): string;
}

/** A configuration a process must not start with; the message names the variable or profile key to fix. */
export class TemporalConfigError extends Error {
  override name = 'TemporalConfigError';
}

type Env = Record<string, string | undefined>;

/**
 * Resolves the Temporal connection from the environment (and the profile file it points to), plus overrides.
 * Reads the certificate and key files once, now, and checks they parse.
 * @param env the process environment @default process.env
 * @param overrides explicit choices (CLI flags) that win over everything else
 * @returns connection options for client and worker, the namespace, and a secret-free description
 * @throws TemporalConfigError naming the variable or profile key when something configured is unusable
 */
export function loadTemporalConnection(env: Env = process.env, overrides: TemporalConnectionOverrides = {}): TemporalConnection {
  const cleanEnv = withoutEmptyValues(env);
  const file = resolveConfigFile(cleanEnv, overrides);
  const requestedProfile = overrides.profile ?? cleanEnv[TEMPORAL_ENV.profile];
  const profileSource = overrides.profile !== undefined ? '--profile' : TEMPORAL_ENV.profile;

  let profileName: string | undefined;
  let fileText: string | undefined;
  if (file) {
    try {
      fileText = readFileSync(file.path, 'utf8');
    } catch (err) {
      throw new TemporalConfigError(`${file.source}: cannot read ${file.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let profiles: string[];
    try {
      profiles = Object.keys(loadClientConfig({ configSource: { data: fileText } }).profiles);
    } catch (err) {
      throw new TemporalConfigError(`${file.source} ${file.path} is not a valid profile file: ${(err as Error).message}`);
    }
    if (requestedProfile !== undefined && !profiles.includes(requestedProfile)) {
      throw new TemporalConfigError(
        `${profileSource}: no profile "${requestedProfile}" in ${file.path} (it has: ${profiles.map((p) => `"${p}"`).join(', ') || 'none'})`,
      );
    }
    const name = requestedProfile ?? 'default';
    profileName = profiles.includes(name) ? name : undefined;
  } else if (requestedProfile !== undefined) {
    throw new TemporalConfigError(
      `${profileSource} names profile "${requestedProfile}" but there is no profile file: set ${TEMPORAL_ENV.configFile} or create ${defaultConfigFilePath(cleanEnv) ?? 'temporalio/temporal.toml in your config directory'}`,
    );
  }

  if (envFlag(cleanEnv, TEMPORAL_ENV.disableHostVerification)) {
    throw new TemporalConfigError(
      `${TEMPORAL_ENV.disableHostVerification} is not supported by the TypeScript SDK: set ${TEMPORAL_ENV.serverName} to a name in the server's certificate instead`,
    );
  }

  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({
      ...(fileText !== undefined ? { configSource: { data: fileText }, profile: profileName } : { disableFile: true }),
      overrideEnvVars: cleanEnv as Record<string, string>,
    });
  } catch (err) {
    // e.g. "Cannot specify both client_cert_path and client_cert_data" (a file's path and a variable's data).
    throw new TemporalConfigError(`Temporal configuration${file ? ` (variables and ${file.path})` : ''}: ${(err as Error).message}`);
  }
  const where = (variable: string, key: string) =>
    cleanEnv[variable] !== undefined ? variable : `tls.${key} of profile "${profileName}" in ${file?.path}`;
  const tlsFiles = checkTlsMaterial(profile, where);

  const address = overrides.address ?? profile.address ?? DEFAULT_TEMPORAL_ADDRESS;
  const namespace = overrides.namespace ?? profile.namespace ?? DEFAULT_TEMPORAL_NAMESPACE;
  // envconfig reads the files and turns an API key without TLS settings into TLS with the system's roots.
  const { connectionOptions } = toClientOptions(profile);
  const tls = Boolean(connectionOptions.tls);
  if (profile.apiKey !== undefined && !tls && !isLoopback(address)) {
    throw new TemporalConfigError(
      `an API key is configured but TLS is disabled (${TEMPORAL_ENV.tls}=false or tls.disabled): the key would cross the network in clear text to ${address}`,
    );
  }
  const options = { ...connectionOptions, address };
  if (options.metadata === undefined) delete options.metadata;
  if (options.apiKey === undefined) delete options.apiKey;
  if (options.tls === undefined) delete options.tls;

  const addressFrom =
    overrides.address !== undefined ? '--address' : cleanEnv[TEMPORAL_ENV.address] !== undefined ? TEMPORAL_ENV.address : profile.address !== undefined ? `profile "${profileName}"` : 'default';
  const description = [
    `${address} (${addressFrom}), namespace ${namespace}`,
    ...(file ? [`profile ${profileName ? `"${profileName}"` : 'none'} of ${file.path}`] : []),
    tls ? `TLS${tlsFiles.length > 0 ? ` with ${tlsFiles.join(', ')}` : ' (system roots)'}` : 'plaintext',
    ...(profile.apiKey !== undefined ? ['API key set'] : []),
    ...(profile.grpcMeta && Object.keys(profile.grpcMeta).length > 0 ? [`gRPC headers ${Object.keys(profile.grpcMeta).join(', ')}`] : []),
  ].join('; ');

  return {
    address,
    namespace,
    addressConfigured: addressFrom !== 'default',
    tls,
    ...(file ? { configFile: file.path } : {}),
    ...(profileName ? { profile: profileName } : {}),
    clientConnectOptions: { ...options },
    nativeConnectOptions: { ...options },
    describe: () => description,
  };
}

/**
 * Empty variables count as unset (compose files and shells produce them for "not set"); `TEMPORAL_GRPC_META_*` keep
 * theirs, where empty means "remove this header".
 */
function withoutEmptyValues(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([k, v]) => v !== undefined && (v !== '' || k.startsWith(GRPC_META_PREFIX))));
}

function envFlag(env: Env, name: string): boolean {
  const v = env[name];
  return v === '1' || v === 'true';
}

/** The profile file to read: an explicit one must exist; the user's default one is used only if it exists. */
function resolveConfigFile(env: Env, overrides: TemporalConnectionOverrides): { path: string; source: string } | undefined {
  const explicit = overrides.configFile ?? env[TEMPORAL_ENV.configFile];
  if (explicit !== undefined) {
    const source = overrides.configFile !== undefined ? 'profile file' : TEMPORAL_ENV.configFile;
    if (!existsSync(explicit)) throw new TemporalConfigError(`${source}: no such file ${explicit}`);
    return { path: explicit, source };
  }
  const fallback = defaultConfigFilePath(env);
  return fallback !== undefined && existsSync(fallback) ? { path: fallback, source: 'profile file' } : undefined;
}

/** The per-user profile file, where `@temporalio/envconfig` and the Temporal CLI look for it. */
export function defaultConfigFilePath(env: Env, platform: NodeJS.Platform = os.platform()): string | undefined {
  let dir: string | undefined;
  if (platform === 'win32') dir = env.APPDATA;
  else if (platform === 'darwin') dir = env.HOME && path.join(env.HOME, 'Library', 'Application Support');
  else if (env.XDG_CONFIG_HOME) dir = path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : undefined;
  else dir = env.HOME && path.join(env.HOME, '.config');
  return dir ? path.join(dir, 'temporalio', 'temporal.toml') : undefined;
}

/**
 * Checks the certificates and key a profile names: files exist and parse, a client certificate comes with its key.
 * @returns what to show of them (paths, or "inline" for data), never their content
 */
function checkTlsMaterial(profile: ClientConfigProfile, where: (variable: string, key: string) => string): string[] {
  const tls = profile.tls;
  if (!tls || tls.disabled) return [];
  const cert = tls.clientCert && read(tls.clientCert, where(TEMPORAL_ENV.clientCertPath, 'client_cert_path'), where(TEMPORAL_ENV.clientCertData, 'client_cert_data'));
  const key = tls.clientKey && read(tls.clientKey, where(TEMPORAL_ENV.clientKeyPath, 'client_key_path'), where(TEMPORAL_ENV.clientKeyData, 'client_key_data'));
  const ca = tls.serverCACert && read(tls.serverCACert, where(TEMPORAL_ENV.serverCaCertPath, 'server_ca_cert_path'), where(TEMPORAL_ENV.serverCaCertData, 'server_ca_cert_data'));
  if (cert && !key) {
    throw new TemporalConfigError(`${cert.from} gives a client certificate but no client key is set (${TEMPORAL_ENV.clientKeyPath} or ${TEMPORAL_ENV.clientKeyData})`);
  }
  if (key && !cert) {
    throw new TemporalConfigError(`${key.from} gives a client key but no client certificate is set (${TEMPORAL_ENV.clientCertPath} or ${TEMPORAL_ENV.clientCertData})`);
  }
  const shown: string[] = [];
  if (cert && key) {
    const x509 = parseCertificate(cert.data, cert.from);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(key.data);
    } catch {
      // The parser's message is left out: nothing of a private key goes into an error.
      throw new TemporalConfigError(`${key.from}: not a PEM private key`);
    }
    if (!x509.checkPrivateKey(privateKey)) {
      throw new TemporalConfigError(`${key.from}: this key does not belong to the client certificate of ${cert.from}`);
    }
    shown.push(`client certificate ${cert.label} (${x509.subject.replace(/\n/g, ', ')}, valid until ${x509.validTo})`);
  }
  if (ca) {
    parseCertificate(ca.data, ca.from);
    shown.push(`server CA ${ca.label}`);
  }
  if (tls.serverName) shown.push(`server name ${tls.serverName}`);
  return shown;
}

function read(source: ConfigDataSource, pathFrom: string, dataFrom: string): { data: Buffer; from: string; label: string } {
  if ('path' in source) {
    try {
      return { data: readFileSync(source.path), from: pathFrom, label: source.path };
    } catch (err) {
      throw new TemporalConfigError(`${pathFrom}: cannot read ${source.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return { data: Buffer.from(source.data), from: dataFrom, label: '(inline)' };
}

function parseCertificate(data: Buffer, from: string): X509Certificate {
  try {
    return new X509Certificate(data);
  } catch (err) {
    throw new TemporalConfigError(`${from}: not a PEM certificate (${(err as Error).message})`);
  }
}

function isLoopback(address: string): boolean {
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
