/**
 * docker-compose.yml cannot run here (no Docker engine), so it is checked statically against the code it deploys.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTE_DEFINITIONS } from '../../src/api/contract';
import { credentialsFor, loadVenueSpecs } from '../../src/exchanges/venues';
import { anchorVenueProblems, loadTrustAnchor } from '../../src/trust/anchor';
import { TEMPORAL_CLI_WHEEL } from '../../tooling/temporal/binaries';

const ROOT = path.resolve(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  env_file?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  healthcheck?: { test: string[]; interval: string; retries: number };
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service>; volumes: Record<string, unknown> };

describe('docker-compose.yml', () => {
  const { temporal, worker } = compose.services;

  it('has a Temporal server and a worker', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['temporal', 'worker']);
  });

  it('pins the Temporal image to the CLI version the project tests with', () => {
    expect(temporal!.image).toBe(`temporalio/temporal:${TEMPORAL_CLI_WHEEL.version}`);
  });

  it('registers exactly the search attributes of the public contract', () => {
    const command = temporal!.command!;
    const registered = command.flatMap((arg, i) => (command[i - 1] === '--search-attribute' ? [arg] : []));
    expect(registered.sort()).toEqual(Object.entries(SEARCH_ATTRIBUTE_DEFINITIONS).map(([k, t]) => `${k}=${t}`).sort());
    expect(command.slice(0, 2)).toEqual(['server', 'start-dev']);
    expect(command).toContain('--db-filename');
    const volume = temporal!.volumes![0]!.split(':')[0]!;
    expect(Object.keys(compose.volumes)).toContain(volume);
  });

  it('points the worker at the server and reads credentials only from a git-ignored env file', () => {
    expect(worker!.environment!.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(worker!.depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    for (const key of Object.keys(worker!.environment!)) expect(key).not.toMatch(/KEY|SECRET|PASSWORD/i);
    expect(worker!.env_file).toEqual(['.env']);
    expect(read('.gitignore').split('\n')).toEqual(expect.arrayContaining(['.env', 'config/venues.json']));
  });

  it('mounts a venues file whose example parses with the worker\'s own loader', () => {
    const [hostDir, containerDir] = worker!.volumes![0]!.split(':');
    expect(worker!.environment!.BREAKER_VENUES_FILE!.startsWith(`${containerDir}/`)).toBe(true);
    const example = path.join(ROOT, hostDir!, 'venues.example.json');
    const specs = loadVenueSpecs({ BREAKER_VENUES_FILE: example });
    expect(specs.map((s) => s.id)).toEqual(['binance-spot', 'binance-usdm']);
  });

  it('mounts a trust anchor whose example parses and binds the example venues, and keeps the audit log on a volume', () => {
    const [hostDir, containerDir] = worker!.volumes![0]!.split(':');
    expect(worker!.environment!.BREAKER_TRUST_FILE!.startsWith(`${containerDir}/`)).toBe(true);
    const anchor = loadTrustAnchor({ BREAKER_TRUST_FILE: path.join(ROOT, hostDir!, 'trust.example.json') });
    expect(anchor.accounts()).toEqual(['acct-1']);
    expect(anchorVenueProblems(anchor, loadVenueSpecs({ BREAKER_VENUES_FILE: path.join(ROOT, hostDir!, 'venues.example.json') }))).toEqual([]);
    const audit = worker!.volumes!.find((v) => v.split(':')[1] === worker!.environment!.BREAKER_AUDIT_DIR);
    expect(audit).toBeDefined();
    expect(Object.keys(compose.volumes)).toContain(audit!.split(':')[0]);
    // A new named volume takes the image directory's owner: the worker runs as node and must be able to write there.
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toContain(`chown node:node ${worker!.environment!.BREAKER_AUDIT_DIR}`);
    expect(dockerfile.indexOf('chown node:node')).toBeLessThan(dockerfile.indexOf('USER node'));
  });

  it('publishes the unauthenticated dev server and Web UI on loopback unless told otherwise', () => {
    // Before: "7233:7233" and "8233:8233", i.e. on every interface of the host.
    expect(temporal!.ports).toEqual(['${BREAKER_PUBLISH_IP:-127.0.0.1}:7233:7233', '${BREAKER_PUBLISH_IP:-127.0.0.1}:8233:8233']);
    for (const service of Object.values(compose.services)) {
      for (const port of service.ports ?? []) expect(port).toMatch(/^\$\{BREAKER_PUBLISH_IP:-127\.0\.0\.1\}:\d+:\d+$/);
    }
  });

  it('checks the health of the server and of the worker', () => {
    expect(temporal!.healthcheck!.test).toEqual(['CMD', 'temporal', 'operator', 'cluster', 'health', '--address', '127.0.0.1:7233']);
    // The worker's check reads the file src/worker.ts touches while it polls (BREAKER_HEALTH_FILE).
    expect(worker!.environment!.BREAKER_HEALTH_FILE).toBeDefined();
    expect(worker!.healthcheck!.test.join(' ')).toContain('BREAKER_HEALTH_FILE');
    expect(read('src/worker.ts')).toContain('process.env.BREAKER_HEALTH_FILE');
  });

  it('keeps secrets, venue files, databases and the rehearsal tooling out of the image', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['.env', '.env.*', 'config/', '*.db', '.temporal/', '.git/', 'node_modules/', 'test/', 'tooling/', 'bench/']));
    // And the Dockerfile copies the runtime code only.
    const copies = read('Dockerfile').split('\n').filter((l) => l.startsWith('COPY')).map((l) => l.split(/\s+/).slice(1, -1).join(' '));
    expect(copies).toEqual(['package.json package-lock.json', 'tsconfig.json', 'src']);
  });

  it('builds a worker image whose command is the worker entrypoint', () => {
    const dockerfile = read('Dockerfile');
    expect(worker!.build).toBe('.');
    expect(dockerfile).toMatch(/^FROM node:20/m);
    expect(dockerfile).toContain('src/worker.ts');
    expect(dockerfile).not.toMatch(/API_KEY|SECRET/);
  });
});

describe('worker venue configuration', () => {
  it.each([
    [{}, 'No venues configured'],
    [{ BREAKER_VENUES: 'not json' }, 'not valid JSON'],
    [{ BREAKER_VENUES: '[{"id":"x","exchange":"kraken"}]' }, 'venues.0.exchange'],
    [{ BREAKER_VENUES: '[{"id":"a","exchange":"binance"},{"id":"a","exchange":"binanceusdm"}]' }, 'venue id "a" appears twice'],
    [{ BREAKER_VENUES: '[{"id":"a","exchange":"binance","apiKey":"literal"}]' }, 'apiKey'],
  ])('rejects %p clearly', (env, message) => {
    expect(() => loadVenueSpecs(env)).toThrow(message);
  });
});

describe('credentials', () => {
  const spec = loadVenueSpecs({ BREAKER_VENUES: '[{"id":"binance-spot","exchange":"binance","account":"acct-1"}]' })[0]!;

  it('reads them from the environment variables the spec names, by default <ID>_API_KEY and <ID>_SECRET', () => {
    expect(credentialsFor(spec, { BINANCE_SPOT_API_KEY: 'k', BINANCE_SPOT_SECRET: 's' })).toEqual({ apiKey: 'k', secret: 's' });
  });

  it('names the missing variables, never a value', () => {
    expect(() => credentialsFor(spec, { BINANCE_SPOT_API_KEY: 'visible-key' })).toThrow('Venue "binance-spot": environment variable(s) BINANCE_SPOT_SECRET not set');
    try {
      credentialsFor(spec, { BINANCE_SPOT_API_KEY: 'visible-key' });
    } catch (err) {
      expect((err as Error).message).not.toContain('visible-key');
    }
  });
});
