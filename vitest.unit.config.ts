import { defineConfig } from 'vitest/config';

/**
 * The unit tests alone: pure logic, no root, no swtpm, no network, a few seconds.
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
