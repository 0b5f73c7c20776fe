import { describe, expect, it } from 'vitest';
import { identityKeyHandleInUse } from '../../agent/azure-sdk/identity-key-handle.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { registerWithDps } from '../../agent/provisioning/register.js';
import { IDENTITY_KEY_HANDLE } from '../../agent/tpm/identity.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { parseTransport } from '../../agent/tpm/transport-spec.js';
import { freePort } from '../support/ports.js';

/** A TPM client for a swtpm port where nothing listens: every command fails below the TPM. */
async function absentTpm(): Promise<TpmClient> {
  return new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));
}

describe('one registration with DPS, when the TPM is gone', () => {
  it('blames the TPM, asks nobody, and tries again later', async () => {
    const tpm = await absentTpm();
    const steps: string[] = [];
    try {
      const failure = await registerWithDps({
        tpm, registrationId: 'r1', idScope: '0ne1', globalEndpoint: '127.0.0.1', identityKeyHandle: 0x81000101,
        onStep: (step) => steps.push(step),
      }).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(DpsError);
      expect(failure).toMatchObject({
        message: 'TPM failed during registration with DPS 127.0.0.1 (ID scope 0ne1, registration r1)', retryable: true, operatorMustAct: false,
        httpStatus: undefined,
      });
      expect(steps).toEqual([]);
    } finally {
      await tpm.close();
    }
  });

  it('puts the SDK back on the identity key handle it had, whatever happened', async () => {
    const tpm = await absentTpm();
    const before = identityKeyHandleInUse();
    try {
      await registerWithDps({ tpm, registrationId: 'r1', idScope: '0ne1', globalEndpoint: '127.0.0.1', identityKeyHandle: 0x81000101 }).catch(() => undefined);
      expect(identityKeyHandleInUse()).toBe(before);
      expect(before).toBe(IDENTITY_KEY_HANDLE);
    } finally {
      await tpm.close();
    }
  });
});
