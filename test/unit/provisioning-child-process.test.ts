import { describe, expect, it } from 'vitest';
import { parseTransport } from '../../agent/config/transport-spec.js';
import { registerInChild } from '../../agent/provisioning/child-process.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { TPM_HANDLE } from '../../agent/tpm/tss-lib.js';
import { freePort } from '../support/ports.js';

/**
 * registerInChild without a DPS or a TPM: the helper either is not built (unit runs from the
 * sources) or starts and finds no TPM. Either way the caller gets what the connection policy
 * needs. The helper's own work is test/integration/provisioning-child.test.ts's part.
 */
describe('registration in a helper process that cannot register', () => {
  it('fails as a retryable DpsError that no operator needs to act on, with the TPM lent to it and given back', async () => {
    const tpm = new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));
    try {
      const err = await registerInChild({ tpm, registrationId: 'r1', idScope: '0ne1', globalEndpoint: 'dps.example', timeoutMs: 30_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DpsError);
      expect(err).toMatchObject({ retryable: true, operatorMustAct: false });
      // Lent and given back: the client's own commands run again (and fail below the TPM, which is absent).
      await expect(tpm.readPublic(new TPM_HANDLE(0x81010001))).rejects.toThrow(/swtpm/);
    } finally {
      await tpm.close();
    }
  });
});
