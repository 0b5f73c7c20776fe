import { defineCommand } from './command.js';

/** `attestationKey`: the AK's public area and name, created in the TPM on first use (bound later through the EK). */
export const attestationKey = defineCommand({
  name: 'attestationKey',
  args: {},
  run: async (_args, context) => ({ status: 200, payload: await context.attestation.key() }),
});
