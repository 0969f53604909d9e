/**
 * The environment → connection options mapping: what an operator sets (variables, a profile file, CLI flags) and what
 * `Connection.connect` / `NativeConnection.connect` receive. Certificates are generated with openssl per run; every
 * environment here is explicit (no HOME), so that the machine's own Temporal profile file cannot leak in.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { DEFAULT_TEMPORAL_ADDRESS, TemporalConfigError, defaultConfigFilePath, loadTemporalConnection } from '../../src/temporal-connection';

let dir: string;
/** Two self-signed certificate + key pairs (a: the client's, b: another one), as files. */
const files = { certA: '', keyA: '', certB: '', keyB: '' };
const API_KEY = 'tmprl-api-key-VERY-SECRET-0123456789';

function selfSigned(name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'temporal-connection-'));
  const a = selfSigned('client-a');
  const b = selfSigned('client-b');
  Object.assign(files, { certA: a.cert, keyA: a.key, certB: b.cert, keyB: b.key });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tlsOf = (c: ReturnType<typeof loadTemporalConnection>) => c.nativeConnectOptions.tls as TLSConfig;
const bytes = (file: string) => Buffer.from(readFileSync(file));
/** The private key's body, without its PEM armour: what must never show. */
const keyBody = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----')).join('');

describe('address and namespace', () => {
  it('defaults to a local dev server only when nothing is configured', () => {
    const c = loadTemporalConnection({});
    expect(c).toMatchObject({ address: DEFAULT_TEMPORAL_ADDRESS, namespace: 'default', addressConfigured: false, tls: false });
    expect(c.clientConnectOptions).toEqual({ address: DEFAULT_TEMPORAL_ADDRESS });
    expect(c.nativeConnectOptions).toEqual({ address: DEFAULT_TEMPORAL_ADDRESS });
    expect(c.describe()).toBe('127.0.0.1:7233 (default), namespace default; plaintext');
  });

  it('takes TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE', () => {
    const c = loadTemporalConnection({ TEMPORAL_ADDRESS: 'temporal.internal:7233', TEMPORAL_NAMESPACE: 'breakers' });
    expect(c).toMatchObject({ address: 'temporal.internal:7233', namespace: 'breakers', addressConfigured: true, tls: false });
    expect(c.clientConnectOptions).toEqual({ address: 'temporal.internal:7233' });
    expect(c.describe()).toContain('(TEMPORAL_ADDRESS)');
  });

  it('lets explicit overrides (CLI flags) win over the variables', () => {
    const c = loadTemporalConnection({ TEMPORAL_ADDRESS: 'a:1', TEMPORAL_NAMESPACE: 'n1' }, { address: 'b:2', namespace: 'n2' });
    expect(c).toMatchObject({ address: 'b:2', namespace: 'n2', addressConfigured: true });
    expect(c.nativeConnectOptions.address).toBe('b:2');
    expect(c.describe()).toContain('b:2 (--address)');
  });

  it('treats empty variables as unset, as compose files produce them', () => {
    const c = loadTemporalConnection({ TEMPORAL_ADDRESS: '', TEMPORAL_NAMESPACE: '', TEMPORAL_API_KEY: '' });
    expect(c).toMatchObject({ address: DEFAULT_TEMPORAL_ADDRESS, namespace: 'default', addressConfigured: false, tls: false });
  });
});

describe('API keys', () => {
  it('an API key implies TLS with the system roots, and describe() says so without the key', () => {
    const c = loadTemporalConnection({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'ns.acct', TEMPORAL_API_KEY: API_KEY });
    expect(c.tls).toBe(true);
    expect(c.clientConnectOptions).toEqual({ address: 'ns.acct.tmprl.cloud:7233', apiKey: API_KEY, tls: true });
    expect(c.nativeConnectOptions).toEqual({ address: 'ns.acct.tmprl.cloud:7233', apiKey: API_KEY, tls: true });
    expect(c.describe()).toBe('ns.acct.tmprl.cloud:7233 (TEMPORAL_ADDRESS), namespace ns.acct; TLS (system roots); API key set');
    expect(c.describe()).not.toContain('SECRET');
  });

  it('refuses an API key over plaintext to a non-loopback address, and allows it to loopback', () => {
    const plain = { TEMPORAL_API_KEY: API_KEY, TEMPORAL_TLS: 'false' };
    expect(() => loadTemporalConnection({ ...plain, TEMPORAL_ADDRESS: 'temporal.internal:7233' })).toThrow(/TLS is disabled \(TEMPORAL_TLS=false.*clear text to temporal\.internal:7233/);
    expect(() => loadTemporalConnection({ ...plain, TEMPORAL_ADDRESS: 'temporal.internal:7233' })).toThrow(/^(?![\s\S]*SECRET)/);
    const local = loadTemporalConnection({ ...plain, TEMPORAL_ADDRESS: '127.0.0.1:7233' });
    expect(local.tls).toBe(false);
    expect(local.nativeConnectOptions).toEqual({ address: '127.0.0.1:7233', apiKey: API_KEY, tls: false });
  });
});

describe('mTLS', () => {
  const mtlsEnv = () => ({
    TEMPORAL_ADDRESS: 'temporal.internal:7233',
    TEMPORAL_TLS_CLIENT_CERT_PATH: files.certA,
    TEMPORAL_TLS_CLIENT_KEY_PATH: files.keyA,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: files.certB,
    TEMPORAL_TLS_SERVER_NAME: 'frontend.internal',
  });

  it('reads the client certificate, key and server CA files into both connections', () => {
    const c = loadTemporalConnection(mtlsEnv());
    expect(c.tls).toBe(true);
    const tls = tlsOf(c);
    expect(Buffer.from(tls.clientCertPair!.crt)).toEqual(bytes(files.certA));
    expect(Buffer.from(tls.clientCertPair!.key)).toEqual(bytes(files.keyA));
    expect(Buffer.from(tls.serverRootCACertificate!)).toEqual(bytes(files.certB));
    expect(tls.serverNameOverride).toBe('frontend.internal');
    expect(c.clientConnectOptions.tls).toEqual(c.nativeConnectOptions.tls);
    expect(c.clientConnectOptions.apiKey).toBeUndefined();
  });

  it('describes the files by path and subject, never their content', () => {
    const d = loadTemporalConnection(mtlsEnv()).describe();
    expect(d).toContain(`client certificate ${files.certA} (CN=client-a, valid until`);
    expect(d).toContain(`server CA ${files.certB}`);
    expect(d).toContain('server name frontend.internal');
    expect(d).not.toContain(keyBody(files.keyA));
    expect(d).not.toContain('PRIVATE KEY');
  });

  it('takes inline certificate and key data, and shows it as inline', () => {
    const c = loadTemporalConnection({
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_TLS_CLIENT_CERT_DATA: readFileSync(files.certA, 'utf8'),
      TEMPORAL_TLS_CLIENT_KEY_DATA: readFileSync(files.keyA, 'utf8'),
    });
    expect(Buffer.from(tlsOf(c).clientCertPair!.key)).toEqual(bytes(files.keyA));
    expect(c.describe()).toContain('client certificate (inline) (CN=client-a');
    expect(c.describe()).not.toContain(keyBody(files.keyA));
  });

  it.each([
    ['a missing certificate file', { TEMPORAL_TLS_CLIENT_CERT_PATH: '/nonexistent/client.pem' }, 'TEMPORAL_TLS_CLIENT_CERT_PATH: cannot read /nonexistent/client.pem (ENOENT)'],
    ['a missing key file', { TEMPORAL_TLS_CLIENT_KEY_PATH: '/nonexistent/client.key' }, 'TEMPORAL_TLS_CLIENT_KEY_PATH: cannot read /nonexistent/client.key (ENOENT)'],
    ['a missing CA file', { TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/nonexistent/ca.pem' }, 'TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read /nonexistent/ca.pem (ENOENT)'],
    ['a key that is not the certificate\'s', { TEMPORAL_TLS_CLIENT_KEY_PATH: '<keyB>' }, 'TEMPORAL_TLS_CLIENT_KEY_PATH: this key does not belong to the client certificate of TEMPORAL_TLS_CLIENT_CERT_PATH'],
    ['a key file that holds a certificate', { TEMPORAL_TLS_CLIENT_KEY_PATH: '<certB>' }, 'TEMPORAL_TLS_CLIENT_KEY_PATH: not a PEM private key'],
    ['a CA file that holds a key', { TEMPORAL_TLS_SERVER_CA_CERT_PATH: '<keyB>' }, 'TEMPORAL_TLS_SERVER_CA_CERT_PATH: not a PEM certificate'],
    ['a certificate without its key', { TEMPORAL_TLS_CLIENT_KEY_PATH: undefined }, 'TEMPORAL_TLS_CLIENT_CERT_PATH gives a client certificate but no client key is set (TEMPORAL_TLS_CLIENT_KEY_PATH or TEMPORAL_TLS_CLIENT_KEY_DATA)'],
    ['a key without its certificate', { TEMPORAL_TLS_CLIENT_CERT_PATH: undefined }, 'TEMPORAL_TLS_CLIENT_KEY_PATH gives a client key but no client certificate is set'],
    ['host verification switched off', { TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' }, 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported by the TypeScript SDK'],
  ])('refuses %s, naming the variable', (_label, change, message) => {
    const resolved = Object.fromEntries(Object.entries(change).map(([k, v]) => [k, v === '<keyB>' ? files.keyB : v === '<certB>' ? files.certB : v]));
    const attempt = () => loadTemporalConnection({ ...mtlsEnv(), ...resolved });
    expect(attempt).toThrow(TemporalConfigError);
    expect(attempt).toThrow(message);
  });

  it('never puts key material into an error', () => {
    const secretGarbage = 'not-a-key-but-SECRET-material-42';
    const attempt = () => loadTemporalConnection({ ...mtlsEnv(), TEMPORAL_TLS_CLIENT_KEY_PATH: undefined, TEMPORAL_TLS_CLIENT_KEY_DATA: secretGarbage });
    expect(attempt).toThrow('TEMPORAL_TLS_CLIENT_KEY_DATA: not a PEM private key');
    expect(attempt).toThrow(/^(?![\s\S]*SECRET)/);
  });

  it('TEMPORAL_TLS=false turns TLS off even with files configured', () => {
    const c = loadTemporalConnection({ ...mtlsEnv(), TEMPORAL_TLS: 'false', TEMPORAL_TLS_CLIENT_CERT_PATH: '/nonexistent/ignored.pem' });
    expect(c.tls).toBe(false);
    expect(c.describe()).toContain('plaintext');
  });
});

describe('the profile file', () => {
  const writeProfiles = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  const profiles = () =>
    writeProfiles(
      'temporal.toml',
      [
        '[profile.default]',
        'address = "localhost:7233"',
        '',
        '[profile.prod]',
        'address = "prod.internal:7233"',
        'namespace = "breakers-prod"',
        '[profile.prod.tls]',
        `client_cert_path = "${files.certA}"`,
        `client_key_path = "${files.keyA}"`,
        `server_ca_cert_path = "${files.certB}"`,
        '[profile.prod.grpc_meta]',
        'x-tenant = "SECRET-tenant-token"',
        '',
        '[profile.cloud]',
        'address = "ns.acct.tmprl.cloud:7233"',
        'namespace = "ns.acct"',
        `api_key = "${API_KEY}"`,
        '',
        '[profile.broken]',
        'address = "broken.internal:7233"',
        '[profile.broken.tls]',
        'client_cert_path = "/nonexistent/broken.pem"',
        `client_key_path = "${files.keyA}"`,
      ].join('\n'),
    );

  it('uses the profile named by TEMPORAL_PROFILE, with its TLS files and headers', () => {
    const file = profiles();
    const c = loadTemporalConnection({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' });
    expect(c).toMatchObject({ address: 'prod.internal:7233', namespace: 'breakers-prod', addressConfigured: true, tls: true, profile: 'prod', configFile: file });
    expect(Buffer.from(tlsOf(c).clientCertPair!.crt)).toEqual(bytes(files.certA));
    expect(Buffer.from(tlsOf(c).serverRootCACertificate!)).toEqual(bytes(files.certB));
    expect(c.clientConnectOptions.metadata).toEqual({ 'x-tenant': 'SECRET-tenant-token' });
    expect(c.describe()).toContain(`prod.internal:7233 (profile "prod"), namespace breakers-prod; profile "prod" of ${file}; TLS with client certificate ${files.certA}`);
    expect(c.describe()).toContain('gRPC headers x-tenant');
    expect(c.describe()).not.toContain('SECRET');
  });

  it('uses the "default" profile when none is named; variables and overrides win over the file', () => {
    const file = profiles();
    expect(loadTemporalConnection({ TEMPORAL_CONFIG_FILE: file })).toMatchObject({ address: 'localhost:7233', namespace: 'default', profile: 'default', tls: false });
    const c = loadTemporalConnection({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'from-env' }, { profile: 'cloud' });
    expect(c).toMatchObject({ address: 'ns.acct.tmprl.cloud:7233', namespace: 'from-env', profile: 'cloud', tls: true });
    expect(c.nativeConnectOptions).toEqual({ address: 'ns.acct.tmprl.cloud:7233', apiKey: API_KEY, tls: true });
    expect(c.describe()).not.toContain(API_KEY);
  });

  it('finds the per-user file (XDG_CONFIG_HOME/temporalio/temporal.toml) without TEMPORAL_CONFIG_FILE', () => {
    const xdg = path.join(dir, 'xdg');
    mkdirSync(path.join(xdg, 'temporalio'), { recursive: true });
    writeFileSync(path.join(xdg, 'temporalio', 'temporal.toml'), '[profile.default]\naddress = "from-user-file:7233"\n');
    expect(defaultConfigFilePath({ XDG_CONFIG_HOME: xdg }, 'linux')).toBe(path.join(xdg, 'temporalio', 'temporal.toml'));
    expect(defaultConfigFilePath({ HOME: '/home/op' }, 'linux')).toBe('/home/op/.config/temporalio/temporal.toml');
    expect(defaultConfigFilePath({}, 'linux')).toBeUndefined();
    if (os.platform() === 'linux') {
      expect(loadTemporalConnection({ XDG_CONFIG_HOME: xdg })).toMatchObject({ address: 'from-user-file:7233', addressConfigured: true });
    }
  });

  it.each([
    ['a TEMPORAL_CONFIG_FILE that does not exist', { TEMPORAL_CONFIG_FILE: '/nonexistent/temporal.toml' }, {}, 'TEMPORAL_CONFIG_FILE: no such file /nonexistent/temporal.toml'],
    ['a TEMPORAL_PROFILE the file lacks', { TEMPORAL_PROFILE: 'staging' }, {}, 'TEMPORAL_PROFILE: no profile "staging" in <file> (it has: "default", "prod", "cloud", "broken")'],
    ['a --profile the file lacks', {}, { profile: 'staging' }, '--profile: no profile "staging"'],
    ['a profile whose certificate file is missing', { TEMPORAL_PROFILE: 'broken' }, {}, 'tls.client_cert_path of profile "broken" in <file>: cannot read /nonexistent/broken.pem (ENOENT)'],
    ['a certificate both in the file (path) and in a variable (data)', { TEMPORAL_PROFILE: 'prod', TEMPORAL_TLS_CLIENT_CERT_DATA: 'x' }, {}, 'Temporal configuration (variables and <file>): Cannot specify both client_cert_path and client_cert_data'],
    ['a TEMPORAL_CONFIG_FILE that is a directory', { TEMPORAL_CONFIG_FILE: os.tmpdir() }, {}, `TEMPORAL_CONFIG_FILE: cannot read ${os.tmpdir()} (EISDIR)`],
  ])('refuses %s, naming it', (_label, env, overrides, message) => {
    const file = profiles();
    const attempt = () => loadTemporalConnection({ TEMPORAL_CONFIG_FILE: file, ...env }, overrides);
    expect(attempt).toThrow(TemporalConfigError);
    expect(attempt).toThrow(message.replace('<file>', file));
  });

  it('refuses a profile when there is no profile file, and a file that is not TOML', () => {
    expect(() => loadTemporalConnection({ TEMPORAL_PROFILE: 'prod' })).toThrow('TEMPORAL_PROFILE names profile "prod" but there is no profile file: set TEMPORAL_CONFIG_FILE');
    const bad = writeProfiles('bad.toml', '[profile.default\naddress = ');
    expect(() => loadTemporalConnection({ TEMPORAL_CONFIG_FILE: bad })).toThrow(`TEMPORAL_CONFIG_FILE ${bad} is not a valid profile file`);
  });
});
