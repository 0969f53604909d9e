// @ts-check
import tseslint from 'typescript-eslint';

/** Node built-ins and I/O packages that must never reach the pure core or the workflow sandbox. */
const ioModules = ['node:*', 'fs', 'fs/*', 'path', 'http', 'https', 'net', 'child_process', 'os', 'crypto', 'ccxt',
  'fastify', 'undici', '@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing'];

/** src/ is what a deployed worker, client and CLI run; rehearsal tooling (paper exchange, dev server, demo, crash
 * harness) lives in tooling/ and must never be imported by it. */
const toolingBan = { group: ['**/tooling', '**/tooling/**'], message: 'src/ must not import rehearsal tooling (tooling/).' };

export default tseslint.config(
  { ignores: ['lib/**', 'node_modules/**', '.temporal/**', '.cache/**', 'coverage/**', 'bench/results/**', '*.js', '*.mjs'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [toolingBan] }] },
  },
  {
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [toolingBan, { group: [...ioModules, '@temporalio/*'], message: 'src/domain is pure: no Node, no I/O, no Temporal.' }] }],
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        toolingBan,
        { group: ioModules, message: 'Workflow code runs in the deterministic sandbox: no Node built-ins or I/O.' },
        { group: ['../activities/*', '../exchanges/*'], allowTypeImports: true, message: 'Only types may cross from activities into workflow code.' },
      ] }],
    },
  },
);
