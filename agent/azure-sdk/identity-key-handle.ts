import securityTpm from 'azure-iot-security-tpm';

const { TpmSecurityClient } = securityTpm;

/** azure-iot-security-tpm persists and signs with one static handle for the whole process. */
interface HandleStatics {
  _idKeyPersistentHandle: { handle: number };
}

/**
 * Points the SDK's TPM security client at the identity key in `handle`. The SDK's default
 * (0x81000100) holds the key of the first assignment; a re-provisioning writes its new
 * key to the other slot, so the key of the assignment in force stays until DPS has
 * issued its replacement (agent/tpm/key-slots.ts).
 */
export function useIdentityKeyHandle(handle: number): void {
  const statics = TpmSecurityClient as unknown as HandleStatics;
  // The SDK's own tss.js TPM_HANDLE class, whichever copy of tss.js it loaded.
  const TpmHandle = statics._idKeyPersistentHandle.constructor as new (handle: number) => { handle: number };
  statics._idKeyPersistentHandle = new TpmHandle(handle);
}

export function identityKeyHandleInUse(): number {
  return (TpmSecurityClient as unknown as HandleStatics)._idKeyPersistentHandle.handle;
}
