import { TpmCommandError } from '../tpm/tpm-client.js';
import { CommandFailure, defineCommand } from './command.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `activateAttestationKey { credentialBlob, encryptedSecret }` (base64 TPM2B_ID_OBJECT and
 * TPM2B_ENCRYPTED_SECRET, as TPM2_MakeCredential makes them): ActivateCredential for the AK
 * with the EK. The secret comes back only when this TPM holds the EK the verifier made the
 * credential for, and the AK has the name it was made for.
 */
export const activateAttestationKey = defineCommand({
  name: 'activateAttestationKey',
  args: {
    credentialBlob: { type: 'string', pattern: BASE64, maxLength: 1024, expected: 'base64 of a TPM2B_ID_OBJECT' },
    encryptedSecret: { type: 'string', pattern: BASE64, maxLength: 2048, expected: 'base64 of a TPM2B_ENCRYPTED_SECRET' },
  },
  run: async ({ credentialBlob, encryptedSecret }, context) => {
    try {
      const secret = await context.attestation.activate(Buffer.from(credentialBlob, 'base64'), Buffer.from(encryptedSecret, 'base64'));
      return { status: 200, payload: { secret: secret.toString('base64') } };
    } catch (err) {
      // Refused by the TPM: a credential for another TPM or key, or a malformed one. The verifier's answer, not a fault here.
      if (err instanceof TpmCommandError) throw new CommandFailure(400, `the TPM refused the credential: ${err.message}`);
      throw err;
    }
  },
});
