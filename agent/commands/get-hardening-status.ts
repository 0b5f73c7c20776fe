import { defineCommand } from './command.js';

/** `getHardeningStatus`: the applied profile, its hash, and drift of the live state from it. */
export const getHardeningStatus = defineCommand({
  name: 'getHardeningStatus',
  args: {},
  run: async (_args, context) => ({ status: 200, payload: await context.hardening.status() }),
});
