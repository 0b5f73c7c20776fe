import { randomBytes, timingSafeEqual } from 'node:crypto';
import { parseAttestationKey } from '../agent/attestation/attestation-key.js';
import { makeCredential } from '../agent/tpm/wire/credential.js';
import { TpmParseError } from '../agent/tpm/wire/tpm-bytes.js';
import { nameOf, parseRsaPublic } from '../agent/tpm/wire/tpm-public.js';
import { messageOf, type DeviceChannel } from './channel.js';
import { VerifierError } from './errors.js';

/** An AK the verifier has proven to live in the enrolled TPM. */
export interface Binding {
  deviceId: string;
  /** TPM2B_PUBLIC of the AK, base64. */
  akPublic: string;
  akName: string;
  /** Name of the EK it was bound through (hex). */
  ekName: string;
  boundAt: string;
}

/**
 * Binds the board's AK to its enrolled EK, the way DPS proves a TPM: asks for the AK
 * (`attestationKey`), checks that it is a restricted signing key born in its TPM, makes a
 * credential for its name to the enrolled EK (TPM2_MakeCredential in software) and
 * asks the board to activate it (`activateAttestationKey`). Only a TPM that holds the EK's
 * private key, with that very AK loaded, can return the secret.
 */
export async function bindAttestationKey(channel: DeviceChannel, endorsementKey: Buffer, now = new Date()): Promise<Binding> {
  let ek;
  try {
    ek = parseRsaPublic(endorsementKey, 'endorsement key');
  } catch (err) {
    throw new VerifierError(`the enrolled endorsement key is not usable: ${(err as Error).message}`, { usage: true, hint: 'give the EK from the DPS enrollment or `iot-agent tpm info --json`' });
  }
  const key = await channel.invoke('attestationKey', {});
  if (key.status !== 200) throw new VerifierError(`attestationKey answered ${key.status}: ${messageOf(key.payload)}`);
  const { akPublic, akName } = (key.payload ?? {}) as { akPublic?: unknown; akName?: unknown };
  if (typeof akPublic !== 'string' || typeof akName !== 'string') throw new VerifierError('attestationKey answered without akPublic and akName');
  let ak;
  try {
    ak = parseAttestationKey(Buffer.from(akPublic, 'base64'));
  } catch (err) {
    if (err instanceof TpmParseError) throw new VerifierError(`the board's attestation key is refused: ${err.message}`);
    throw err;
  }
  if (ak.name.toString('hex') !== akName) throw new VerifierError("the board's akName is not the name of the key it sent");

  const secret = randomBytes(32);
  const credential = makeCredential(ek, ak.name, secret);
  const activated = await channel.invoke('activateAttestationKey', {
    credentialBlob: credential.idObject.toString('base64'), encryptedSecret: credential.encryptedSecret.toString('base64'),
  });
  const returned = activated.status === 200 ? (activated.payload as { secret?: unknown } | null)?.secret : undefined;
  const answer = typeof returned === 'string' ? Buffer.from(returned, 'base64') : Buffer.alloc(0);
  if (activated.status !== 200 || answer.length !== secret.length || !timingSafeEqual(answer, secret)) {
    throw new VerifierError(`the attestation key is not bound to the enrolled EK: the board could not activate the credential (${activated.status}: ${messageOf(activated.payload)})`, {
      hint: "the board's TPM is not the enrolled one, or its attestation key is not in that TPM",
    });
  }
  return { deviceId: channel.deviceId, akPublic, akName, ekName: nameOf(ek.tpmtPublic).toString('hex'), boundAt: now.toISOString() };
}
