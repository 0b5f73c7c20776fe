import { readFile } from 'node:fs/promises';
import type { ProvisioningServiceClient } from 'azure-iot-provisioning-service';
import { describeError } from '../agent/lib/errors.js';
import { VerifierError } from './errors.js';

/**
 * The enrolled EK, from a trusted source (never from the board itself): the DPS individual
 * enrollment, or a file the operator keeps, holding the EK in base64 (TPM2B_PUBLIC) or the
 * JSON `iot-agent tpm info --json` printed when the board was enrolled.
 */
export function parseEndorsementKeyText(text: string, source: string): Buffer {
  const trimmed = text.trim();
  let encoded: unknown = trimmed;
  if (trimmed.startsWith('{')) {
    try {
      encoded = (JSON.parse(trimmed) as { endorsementKey?: unknown }).endorsementKey;
    } catch {
      throw new VerifierError(`${source}: not JSON`, { usage: true });
    }
  }
  if (typeof encoded !== 'string' || !/^[A-Za-z0-9+/]{100,2000}={0,2}$/.test(encoded)) {
    throw new VerifierError(`${source}: no endorsement key (base64 TPM2B_PUBLIC) in it`, { usage: true, hint: 'the file `iot-agent tpm info --json` prints, or the base64 EK of the DPS enrollment' });
  }
  return Buffer.from(encoded, 'base64');
}

export async function endorsementKeyFromFile(file: string): Promise<Buffer> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new VerifierError(`cannot read the endorsement key file ${file}`, { cause: err, usage: true });
  }
  return parseEndorsementKeyText(text, file);
}

/**
 * The EK of the DPS individual enrollment `registrationId`, which must be the enrollment of
 * `deviceId` (its deviceId, or its registration id when it names none).
 */
export async function endorsementKeyFromDps(dps: ProvisioningServiceClient, registrationId: string, deviceId: string): Promise<Buffer> {
  let enrollment;
  try {
    enrollment = (await dps.getIndividualEnrollment(registrationId)).responseBody;
  } catch (err) {
    throw new VerifierError(`cannot read the DPS enrollment ${registrationId}: ${describeError(err)}`, { cause: err });
  }
  const owner = enrollment.deviceId || enrollment.registrationId;
  if (owner !== deviceId) throw new VerifierError(`the DPS enrollment ${registrationId} is for device ${owner}, not ${deviceId}`, { hint: 'give --registration-id' });
  const ek = enrollment.attestation?.tpm?.endorsementKey;
  if (!ek) throw new VerifierError(`the DPS enrollment ${registrationId} has no TPM endorsement key`);
  return parseEndorsementKeyText(ek, `DPS enrollment ${registrationId}`);
}
