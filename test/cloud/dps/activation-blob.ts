import { createHash, createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { aesCfb, makeCredential, oaepEncrypt, type RandomSource } from '../../../agent/tpm/wire/credential.js';
import { kdfa } from '../../../agent/tpm/wire/kdfa.js';
import { TpmParseError, tpm2b, u16, u32 } from '../../../agent/tpm/wire/tpm-bytes.js';
import { ALG, nameOf, parseRsaPublic, rsaKeyOf, type RsaPublicArea } from '../../../agent/tpm/wire/tpm-public.js';

/**
 * The authenticationKey blob DPS sends a TPM device, built in software: a credential for
 * the EK (TPM2_MakeCredential) whose secret is the inner wrapper key of a duplicated
 * HMAC key for the SRK (TPM2_Duplicate with inner and outer wrappers). The device's
 * TPM runs ActivateCredential, Import and Load, and then holds `hmacKey` as its
 * identity key. TPM 2.0 Part 1 §22 (credential protection), §23 (duplication), §24
 * (protected storage); layout as azure-iot-security-tpm unmarshals it.
 */

/** sign | noDA | userWithAuth (Part 2 §8.3): an HMAC key usable with an empty password. */
const ID_KEY_ATTRIBUTES = (1 << 18) | (1 << 10) | (1 << 6);
const INNER_KEY_BYTES = 16; // AES-128: the SDK sizes the inner symmetric key by this length
const SEED_BYTES = 32; // the digest size of the parents' nameAlg (SHA-256)

export type { RandomSource };

export class ActivationBlobError extends Error {}

export function buildActivationBlob(endorsementKey: Buffer, storageRootKey: Buffer, hmacKey: Buffer, random: RandomSource = randomBytes): Buffer {
  if (hmacKey.length !== 32) throw new ActivationBlobError(`the identity key must be 32 bytes, not ${hmacKey.length}`);
  const ek = parseKey(endorsementKey, 'endorsement key');
  const srk = parseKey(storageRootKey, 'storage root key');

  const seedValue = random(32);
  const idPublic = identityKeyPublic(seedValue, hmacKey);
  const idName = nameOf(idPublic);

  // Inner wrapper (Part 1 §23.3.2.3): integrity over the sensitive area and the name, under a random AES key.
  const sensitive = tpm2b(u16(ALG.KEYEDHASH), tpm2b(), tpm2b(seedValue), tpm2b(hmacKey));
  const innerKey = random(INNER_KEY_BYTES);
  const innerIntegrity = createHash('sha256').update(sensitive).update(idName).digest();
  const encSensitive = aesCfb(innerKey, Buffer.concat([tpm2b(innerIntegrity), sensitive]));

  // Outer wrapper (§23.3.2.4): a seed only the SRK can decrypt derives the cipher and HMAC keys.
  const dupSeed = random(SEED_BYTES);
  const encDupSeed = oaepEncrypt(srk.key, dupSeed, 'DUPLICATE');
  const duplicate = aesCfb(kdfa(dupSeed, 'STORAGE', idName, Buffer.alloc(0), srk.area.symmetric.keyBits), encSensitive);
  const outerHmac = createHmac('sha256', kdfa(dupSeed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256)).update(duplicate).update(idName).digest();
  const tpm2bPrivate = tpm2b(tpm2b(outerHmac), duplicate);

  // Credential (§24): the inner key, readable only by the EK and only for an object named like the SRK.
  const credential = makeCredential(ek.area, srk.name, innerKey, random);

  return Buffer.concat([credential.idObject, credential.encryptedSecret, tpm2bPrivate, tpm2b(encDupSeed), tpm2b(idPublic), tpm2b()]);
}

/** TPMT_PUBLIC of the identity key: KEYEDHASH, HMAC-SHA256, unique = SHA-256(seedValue ‖ key). */
export function identityKeyPublic(seedValue: Buffer, hmacKey: Buffer): Buffer {
  const unique = createHash('sha256').update(seedValue).update(hmacKey).digest();
  return Buffer.concat([u16(ALG.KEYEDHASH), u16(ALG.SHA256), u32(ID_KEY_ATTRIBUTES), tpm2b(), u16(ALG.HMAC), u16(ALG.SHA256), tpm2b(unique)]);
}

interface ParsedKey {
  area: RsaPublicArea;
  name: Buffer;
  key: KeyObject;
}

function parseKey(tpm2bPublic: Buffer, what: string): ParsedKey {
  try {
    const area = parseRsaPublic(tpm2bPublic, what);
    return { area, name: nameOf(area.tpmtPublic), key: rsaKeyOf(area) };
  } catch (err) {
    if (err instanceof TpmParseError) throw new ActivationBlobError(err.message, { cause: err });
    throw new ActivationBlobError(`${what}: not a usable RSA public key`, { cause: err });
  }
}
