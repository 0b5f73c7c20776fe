import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { describeResponseCode, responseCodeOf, TPM_RC_FAILURE, TPM_RC_INITIALIZE } from '../../agent/tpm/response-code.js';

/**
 * The TPM 2.0 response codes as tss.js (an independent implementation of Part 2 §6.6) names
 * them: format zero (0x100-0x17f), format one (0x080-0x0bf) and warnings (0x900-0x97f),
 * without tss.js's range markers.
 */
function tssResponseCodes(): [string, number][] {
  const codes = (createRequire(import.meta.url)('tss.js') as { TPM_RC: Record<string, unknown> }).TPM_RC;
  return Object.entries(codes).flatMap(([name, value]): [string, number][] => {
    if (typeof value !== 'number' || /^(RC_|_|NOT_USED|N_MASK)/.test(name)) return [];
    const formatZero = value >= 0x100 && value < 0x180;
    const formatOne = value >= 0x080 && value < 0x0c0;
    const warning = value > 0x900 && value < 0x980;
    return formatZero || formatOne || warning ? [[name, value]] : [];
  });
}

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

  it('names every TPM 2.0 response code as tss.js does, and says what it means', () => {
    const codes = tssResponseCodes();
    expect(codes.length).toBeGreaterThan(80);
    for (const [name, rc] of codes) {
      expect(describeResponseCode(rc)).toMatch(new RegExp(`^TPM_RC_${name} \\(0x${rc.toString(16)}\\): [a-zA-Z_(]\\S* \\S`));
    }
  });

  it('names the parameter, handle or session a format-one code blames, and nothing when it blames none', () => {
    expect(describeResponseCode(0x08b)).toBe('TPM_RC_HANDLE (0x8b): the handle is not correct for the use (for a persistent handle: nothing is stored there)');
    expect(describeResponseCode(0x1c4)).toMatch(/\(parameter 1\)$/);
    expect(describeResponseCode(0xfc4)).toMatch(/\(parameter 15\)$/);
    expect(describeResponseCode(0x78b)).toMatch(/\(handle 7\)$/);
    expect(describeResponseCode(0xf8e)).toMatch(/\(session 7\)$/);
  });

  it('says which handle or session names an object or session that is not loaded', () => {
    // What a TPM answers to ReadPublic of a transient handle that is not loaded: no mystery code.
    expect(describeResponseCode(0x910)).toBe('TPM_RC_REFERENCE_H0 (0x910): the 1st handle in the handle area references a transient object or session that is not loaded');
    expect(describeResponseCode(0x916)).toBe('TPM_RC_REFERENCE_H6 (0x916): the 7th handle in the handle area references a transient object or session that is not loaded');
    expect(describeResponseCode(0x918)).toBe('TPM_RC_REFERENCE_S0 (0x918): the 1st authorisation session handle references a session that is not loaded');
    expect(describeResponseCode(0x91e)).toBe('TPM_RC_REFERENCE_S6 (0x91e): the 7th authorisation session handle references a session that is not loaded');
  });

  it('says so for a warning or error it does not know', () => {
    expect(describeResponseCode(0x90b)).toBe('unknown TPM warning (0x90b)');
    expect(describeResponseCode(0x917)).toBe('unknown TPM warning (0x917)');
    expect(describeResponseCode(0x91f)).toBe('unknown TPM warning (0x91f)');
    expect(describeResponseCode(0x0bf)).toBe('unknown TPM error (0xbf)');
  });

  it('takes a negative code (no response at all) as the TSS layer\'s', () => {
    expect(describeResponseCode(-1)).toBe('response code 0xffffffff from a TSS layer, not from the TPM');
    expect(describeResponseCode(0x802804c4)).toBe('response code 0x802804c4 from a TSS layer, not from the TPM');
  });
});

describe('the response code of a TPM response', () => {
  it('is read from the header', () => {
    expect(responseCodeOf(Buffer.from('80010000000a00000000', 'hex'))).toBe(0);
    expect(responseCodeOf(Buffer.from('80010000000a00000101', 'hex'))).toBe(TPM_RC_FAILURE);
    expect(responseCodeOf(Buffer.from('80010000000c00000100ffff', 'hex'))).toBe(TPM_RC_INITIALIZE);
  });

  it('is -1 for a response shorter than a header', () => {
    expect(responseCodeOf(Buffer.from('80010000000a000001', 'hex'))).toBe(-1);
    expect(responseCodeOf(Buffer.alloc(0))).toBe(-1);
  });
});
