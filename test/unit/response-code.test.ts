import { describe, expect, it } from 'vitest';
import { describeResponseCode } from '../../agent/tpm/response-code.js';

describe('TPM response codes in words', () => {
  it.each([
    [0x000, 'TPM_RC_SUCCESS (0x0)'],
    [0x100, 'TPM_RC_INITIALIZE (0x100): TPM2_Startup has not been run'],
    [0x101, 'TPM_RC_FAILURE (0x101): the TPM is in failure mode'],
    [0x18b, 'TPM_RC_HANDLE (0x18b): the handle is not correct for the use'],
    [0x98e, 'TPM_RC_AUTH_FAIL (0x98e): the authorisation HMAC check failed and the DA counter was incremented (session 1)'],
    [0x2c4, 'TPM_RC_VALUE (0x2c4): value is out of range or is not correct for the context (parameter 2)'],
    [0x28b, 'TPM_RC_HANDLE (0x28b): the handle is not correct for the use (for a persistent handle: nothing is stored there) (handle 2)'],
    [0x921, 'TPM_RC_LOCKOUT (0x921): authorisations for objects subject to DA protection are not allowed'],
    [0x922, 'TPM_RC_RETRY (0x922)'],
    [0x80280400, 'response code 0x80280400 from a TSS layer, not from the TPM'],
    [0x17e, 'unknown TPM error (0x17e)'],
    [0x01e, 'TPM 1.2 or vendor response code 0x1e'],
  ])('describes 0x%s', (rc, words) => {
    expect(describeResponseCode(rc)).toContain(words);
  });
});
