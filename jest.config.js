/**
 * @swc/jest transpiles TypeScript (types are checked by `tsc --noEmit` in `npm test`) and the ESM-only packages
 * ccxt depends on (@noble, @scure), which jest's CommonJS runtime cannot load as they are.
 * @type {import('jest').Config}
 */
const swc = ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }];
const common = {
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: ['/node_modules/(?!(@noble|@scure)/)'],
};
/**
 * The integration and workflow tiers share one Temporal dev server and one prebuilt workflow bundle. Jest runs each
 * distinct globalSetup/globalTeardown module path once per run (it collects them in a Set), so both projects name the
 * same modules: a run of both tiers starts one server, and a unit-only run starts none.
 */
const temporalServer = {
  globalSetup: '<rootDir>/test/integration/global-setup.ts',
  globalTeardown: '<rootDir>/test/integration/global-teardown.ts',
};
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      ...temporalServer,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      slowTestThreshold: 60,
    },
    // The real guard workflow on the real server, with stubbed activities (test/workflow/harness.ts).
    { ...common, ...temporalServer, displayName: 'workflow', testMatch: ['<rootDir>/test/workflow/**/*.test.ts'], slowTestThreshold: 30 },
  ],
  testTimeout: 120000,
};
