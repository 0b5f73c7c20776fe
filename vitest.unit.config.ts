import { defineConfig } from 'vitest/config';

/**
 * The unit tests alone: loopback only, about three minutes; root for the local cloud's DPS and
 * hub service API on 443, and a build for the provisioning helper (`npm run test:unit` builds
 * first). The TPM transports, the CLI and the daemon run against a swtpm each test starts
 * (scripts/setup.sh installs it).
 * `npm run test:unit` runs them; mutation testing (`npm run mutation`) runs them per mutant.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
  },
});
