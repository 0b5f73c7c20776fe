import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TpmParseError, TpmReader, u16 } from './tpm-bytes.js';

/** Algorithm ids from TPM 2.0 Part 2 §6.3 (TPM_ALG_ID), only those the agent and its stand-ins use. */
export const ALG = { RSA: 0x0001, KEYEDHASH: 0x0008, SHA256: 0x000b, AES: 0x0006, NULL: 0x0010, HMAC: 0x0005, CFB: 0x0043 } as const;

/** An RSA storage key's public area (the EK or the SRK), as far as the blob needs it. */
export interface RsaPublicArea {
  /** The TPMT_PUBLIC bytes (without the TPM2B size): what the name hashes. */
  tpmtPublic: Buffer;
  nameAlg: number;
  objectAttributes: number;
  /** The key's symmetric algorithm: its key size sizes the KDFa "STORAGE" key. */
  symmetric: { algorithm: number; keyBits: number; mode: number };
  keyBits: number;
  exponent: number;
  modulus: Buffer;
}

/**
 * Parses a TPM2B_PUBLIC holding an RSA-2048 storage key with nameAlg SHA-256 and an
 * AES-CFB symmetric definition (the Azure EK and SRK templates). Anything else is a
 * TpmParseError that says what was found: DPS refuses such keys the same way.
 */
export function parseRsaPublic(tpm2bPublic: Buffer, what = 'TPM2B_PUBLIC'): RsaPublicArea {
  const outer = new TpmReader(tpm2bPublic, what);
  const tpmtPublic = outer.sized('publicArea');
  outer.end();
  const r = new TpmReader(tpmtPublic, what);
  const type = r.u16('type');
  if (type !== ALG.RSA) throw new TpmParseError(`${what}: type 0x${type.toString(16)} is not RSA`);
  const nameAlg = r.u16('nameAlg');
  if (nameAlg !== ALG.SHA256) throw new TpmParseError(`${what}: nameAlg 0x${nameAlg.toString(16)} is not SHA-256`);
  const objectAttributes = r.u32('objectAttributes');
  r.sized('authPolicy');
  const algorithm = r.u16('symmetric.algorithm');
  if (algorithm !== ALG.AES) throw new TpmParseError(`${what}: symmetric algorithm 0x${algorithm.toString(16)} is not AES (not a storage key)`);
  const symKeyBits = r.u16('symmetric.keyBits');
  const mode = r.u16('symmetric.mode');
  if (mode !== ALG.CFB || ![128, 256].includes(symKeyBits)) {
    throw new TpmParseError(`${what}: symmetric AES-${symKeyBits} mode 0x${mode.toString(16)} is not AES-128/256-CFB`);
  }
  const scheme = r.u16('scheme');
  if (scheme !== ALG.NULL) r.u16('scheme.hashAlg'); // every RSA scheme but NULL carries a hash
  const keyBits = r.u16('keyBits');
  const exponent = r.u32('exponent') || 65537; // 0 means the default exponent (Part 2 §12.2.3.5)
  const modulus = r.sized('unique');
  r.end();
  if (keyBits !== 2048 || modulus.length !== 256) {
    throw new TpmParseError(`${what}: RSA-${keyBits} with a ${modulus.length}-byte modulus is not RSA-2048`);
  }
  return { tpmtPublic: Buffer.from(tpmtPublic), nameAlg, objectAttributes, symmetric: { algorithm, keyBits: symKeyBits, mode }, keyBits, exponent, modulus: Buffer.from(modulus) };
}

/** The TPM name of a SHA-256 object: nameAlg ‖ SHA-256(TPMT_PUBLIC). */
export function nameOf(tpmtPublic: Buffer): Buffer {
  return Buffer.concat([u16(ALG.SHA256), createHash('sha256').update(tpmtPublic).digest()]);
}

export function rsaKeyOf(area: RsaPublicArea): KeyObject {
  const e = Buffer.alloc(4);
  e.writeUInt32BE(area.exponent);
  let start = 0;
  while (start < 3 && e[start] === 0) start++;
  return createPublicKey({ key: { kty: 'RSA', n: area.modulus.toString('base64url'), e: e.subarray(start).toString('base64url') }, format: 'jwk' });
}
