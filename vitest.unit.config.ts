import { defineConfig } from 'vitest/config';

/**
 * The unit tests alone: no build, loopback only, about two minutes; root only for the local
 * hub's service API on 443. The TPM transports and the CLI's measurements run against a swtpm
 * each test starts (scripts/setup.sh installs it).
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
