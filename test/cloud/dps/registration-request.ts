import { dpsErrors } from '../errors.js';
import { asObject } from '../http.js';

/** The body of PUT /{idScope}/registrations/{id}/register for a TPM device. */
export interface TpmRegistrationRequest {
  registrationId: string;
  endorsementKey: Buffer;
  storageRootKey: Buffer;
  payload?: unknown;
}

const MAX_KEY_BYTES = 1024; // a TPM2B_PUBLIC of an RSA-2048 key is ~ 300 bytes

/** Validates the device's registration body; anything malformed is DPS's 400. */
export function parseRegistrationRequest(body: unknown, idFromPath: string): TpmRegistrationRequest {
  const o = asObject(body);
  if (!o) throw dpsErrors.badRequest('the registration request must be a JSON object');
  if (typeof o.registrationId !== 'string') throw dpsErrors.badRequest('registrationId is required');
  if (o.registrationId !== idFromPath) throw dpsErrors.badRequest(`registrationId ${o.registrationId} does not match the URL's ${idFromPath}`);
  const tpm = asObject(o.tpm);
  if (!tpm) throw dpsErrors.badRequest('tpm (endorsementKey, storageRootKey) is required for TPM attestation');
  return {
    registrationId: o.registrationId,
    endorsementKey: base64Field(tpm.endorsementKey, 'tpm.endorsementKey'),
    storageRootKey: base64Field(tpm.storageRootKey, 'tpm.storageRootKey'),
    ...(o.payload !== undefined ? { payload: o.payload } : {}),
  };
}

function base64Field(value: unknown, field: string): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) throw dpsErrors.badRequest(`${field} must be a base64 string`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length > MAX_KEY_BYTES) throw dpsErrors.badRequest(`${field} is too long for a TPM2B_PUBLIC`);
  return bytes;
}
