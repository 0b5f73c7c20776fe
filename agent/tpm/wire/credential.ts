import { constants, createCipheriv, createHmac, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { kdfa } from './kdfa.js';
import { tpm2b } from './tpm-bytes.js';
import { rsaKeyOf, type RsaPublicArea } from './tpm-public.js';

export type RandomSource = (size: number) => Buffer;

/** The digest size of the EK's name algorithm (SHA-256): the size of the seed it protects. */
const SEED_BYTES = 32;

/** What TPM2_MakeCredential returns: the two arguments of TPM2_ActivateCredential, with their size prefixes. */
export interface Credential {
  /** TPM2B_ID_OBJECT: integrity HMAC and the encrypted credential. */
  idObject: Buffer;
  /** TPM2B_ENCRYPTED_SECRET: the seed, RSA-OAEP encrypted to the EK. */
  encryptedSecret: Buffer;
}

/**
 * TPM2_MakeCredential in software (TPM 2.0 Part 1 §24, Part 3 §12.6): protects `credential`
 * so that only the TPM holding `ek`'s private key can recover it with ActivateCredential,
 * and only for a loaded object whose name is `objectName`. A seed encrypted to the EK
 * (RSA-OAEP-SHA256, label "IDENTITY") derives the AES key (KDFa "STORAGE", bound to the
 * name) and the HMAC key (KDFa "INTEGRITY") that protect the credential.
 */
export function makeCredential(ek: RsaPublicArea, objectName: Buffer, credential: Buffer, random: RandomSource = randomBytes): Credential {
  const seed = random(SEED_BYTES);
  const encryptedSeed = oaepEncrypt(rsaKeyOf(ek), seed, 'IDENTITY');
  const encIdentity = aesCfb(kdfa(seed, 'STORAGE', objectName, Buffer.alloc(0), ek.symmetric.keyBits), tpm2b(credential));
  const integrity = createHmac('sha256', kdfa(seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256)).update(encIdentity).update(objectName).digest();
  return { idObject: tpm2b(tpm2b(integrity), encIdentity), encryptedSecret: tpm2b(encryptedSeed) };
}

/** AES-CFB with a zero IV, as TPM 2.0 uses it for protected storage (Part 1 §22-24); 128 or 256-bit keys. */
export function aesCfb(key: Buffer, data: Buffer): Buffer {
  const cipher = createCipheriv(key.length === 16 ? 'aes-128-cfb' : 'aes-256-cfb', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** RSA-OAEP with SHA-256; the TPM's label includes the terminating zero (Part 1 Annex B.10.3). */
export function oaepEncrypt(key: KeyObject, data: Buffer, label: string): Buffer {
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from(`${label}\0`, 'latin1') }, data);
}
