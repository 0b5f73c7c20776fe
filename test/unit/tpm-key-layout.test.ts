import securityTpm from 'azure-iot-security-tpm';
import { describe, expect, it } from 'vitest';
import { IDENTITY_KEY_HANDLE } from '../../agent/tpm/identity.js';
import { isIdentityKeySlot, stagingSlot } from '../../agent/tpm/key-slots.js';
import { endorsementKeyTemplate, storageRootKeyTemplate } from '../../agent/tpm/key-templates.js';

/** The Azure SDK's own templates, which a device provisioned by its samples was made with. */
function sdkTemplates(): { ek: Buffer; srk: Buffer } {
  const sdk = securityTpm.TpmSecurityClient as unknown as { _ekTemplate: { toBytes(): Buffer }; _srkTemplate: { toBytes(): Buffer } };
  return { ek: sdk._ekTemplate.toBytes(), srk: sdk._srkTemplate.toBytes() };
}

describe('identity key slots', () => {
  it('writes a first registration\'s key to the SDK\'s handle 0x81000100', () => {
    expect(IDENTITY_KEY_HANDLE).toBe(0x81000100);
    expect(stagingSlot(undefined)).toBe(0x81000100);
  });

  it('writes a re-provisioning\'s key to the slot the assignment in force does not use', () => {
    expect(stagingSlot(0x81000100)).toBe(0x81000101);
    expect(stagingSlot(0x81000101)).toBe(0x81000100);
  });

  it('knows its two slots and nothing else', () => {
    expect([0x81000100, 0x81000101].map(isIdentityKeySlot)).toEqual([true, true]);
    expect([0x810000ff, 0x81000102, 0x81010001, 0x81000001, 0].map(isIdentityKeySlot)).toEqual([false, false, false, false, false]);
  });
});

describe('EK and SRK templates', () => {
  it('make the Azure SDK\'s EK: RSA-2048, AES-128-CFB, the standard EK policy, adminWithPolicy, and an empty unique', () => {
    const ek = endorsementKeyTemplate().toBytes();
    expect(ek.toString('hex')).toBe('0001000b000300b2' + '0020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa'
      + '000600800043' + '0010' + '0800' + '00000000' + '0000');
    expect(ek).toEqual(sdkTemplates().ek);
  });

  it('make the Azure SDK\'s SRK: RSA-2048, AES-128-CFB, no policy, noDA and userWithAuth', () => {
    const srk = storageRootKeyTemplate().toBytes();
    expect(srk.toString('hex')).toBe('0001000b00030472' + '0000' + '000600800043' + '0010' + '0800' + '00000000' + '0000');
    expect(srk).toEqual(sdkTemplates().srk);
  });
});
