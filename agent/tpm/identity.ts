import { type CreatePrimaryResponse, Endorsement, NullPwSession, Owner, TPM_HANDLE, TPMS_SENSITIVE_CREATE, type TPMT_PUBLIC } from './tss-lib.js';
import { endorsementKeyTemplate, storageRootKeyTemplate } from './key-templates.js';
import { checkRegistrationId } from '../config/registration-id-check.js';
import { registrationIdFromEndorsementKey } from './registration-id.js';
import { TpmCommandError, type TpmClient } from './tpm-client.js';

/** Persistent handles of the Azure IoT SDKs; keeping them lets devices move between the SDK and the agent. */
export const EK_HANDLE = 0x81010001;
export const SRK_HANDLE = 0x81000001;
export const IDENTITY_KEY_HANDLE = 0x81000100;

/** TPM_RC_HANDLE, a format-one code: bits 8-11 say which handle, and are masked off. */
const TPM_RC_HANDLE = 0x08b;

export interface DeviceIdentity {
  registrationId: string;
  /** TPM2B_PUBLIC of the EK: what a DPS individual enrollment holds. */
  endorsementKey: Buffer;
  storageRootKey: Buffer;
  identityKeyPresent: boolean;
  /** Keys this call had to create and persist, e.g. ['EK', 'SRK'] on a fresh TPM. */
  created: string[];
}

export interface IdentityOptions {
  /** Overrides the registration id derived from the EK. */
  registrationId?: string;
}

/** Reads the device's keys, creating and persisting the EK and SRK when they are missing. */
export async function ensureIdentity(client: TpmClient, options: IdentityOptions = {}): Promise<DeviceIdentity> {
  const created: string[] = [];
  const ek = await ensurePersistentPrimary(client, Endorsement, EK_HANDLE, endorsementKeyTemplate(), () => created.push('EK'));
  const srk = await ensurePersistentPrimary(client, Owner, SRK_HANDLE, storageRootKeyTemplate(), () => created.push('SRK'));
  const identityKey = await readPersistent(client, IDENTITY_KEY_HANDLE);
  const endorsementKey = ek.asTpm2B();
  return {
    registrationId: options.registrationId !== undefined
      ? checkRegistrationId(options.registrationId)
      : registrationIdFromEndorsementKey(endorsementKey),
    endorsementKey,
    storageRootKey: srk.asTpm2B(),
    identityKeyPresent: identityKey !== undefined,
    created,
  };
}

/** The public area stored at a persistent handle, or undefined when the handle is empty. */
export async function readPersistent(client: TpmClient, handle: number): Promise<TPMT_PUBLIC | undefined> {
  try {
    return (await client.readPublic(new TPM_HANDLE(handle))).outPublic;
  } catch (err) {
    if (err instanceof TpmCommandError && (err.responseCode & 0xbf) === TPM_RC_HANDLE) return undefined;
    throw err;
  }
}

async function ensurePersistentPrimary(
  client: TpmClient,
  hierarchy: TPM_HANDLE,
  handle: number,
  template: TPMT_PUBLIC,
  onCreate: () => void,
): Promise<TPMT_PUBLIC> {
  const existing = await readPersistent(client, handle);
  if (existing) return existing;
  const primary = await client.run<CreatePrimaryResponse>('CreatePrimary', (tpm, done) =>
    tpm.withSession(NullPwSession).CreatePrimary(hierarchy, new TPMS_SENSITIVE_CREATE(), template, Buffer.alloc(0), [], done));
  try {
    await client.run<void>('EvictControl', (tpm, done) =>
      tpm.withSession(NullPwSession).EvictControl(Owner, primary.handle, new TPM_HANDLE(handle), done));
  } finally {
    await client.run<void>('FlushContext', (tpm, done) => tpm.FlushContext(primary.handle, done));
  }
  onCreate();
  return primary.outPublic;
}
