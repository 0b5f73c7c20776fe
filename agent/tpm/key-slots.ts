import { IDENTITY_KEY_HANDLE } from './identity.js';

/**
 * Two persistent handles for the key DPS issues. The Azure SDK's own (0x81000100) holds the
 * key of a first registration, as on a device provisioned by the SDK's samples; each
 * re-provisioning writes the new key to the slot the assignment in force does not use.
 * Until DPS has completed the new registration, the old hub's key is untouched, so a
 * failed re-provisioning can go back to the old hub.
 */
export const IDENTITY_KEY_SLOTS = [IDENTITY_KEY_HANDLE, IDENTITY_KEY_HANDLE + 1] as const;

/** The slot a new registration writes to, given the key handle of the assignment in force (if any). */
export function stagingSlot(current: number | undefined): number {
  return current === IDENTITY_KEY_SLOTS[0] ? IDENTITY_KEY_SLOTS[1] : IDENTITY_KEY_SLOTS[0];
}

export function isIdentityKeySlot(handle: number): boolean {
  return (IDENTITY_KEY_SLOTS as readonly number[]).includes(handle);
}
