import { createPublicKey, type KeyObject } from 'node:crypto';
import { TpmParseError, TpmReader, tpm2b, u16, u32 } from '../tpm/wire/tpm-bytes.js';
import { nameOf } from '../tpm/wire/tpm-public.js';

/**
 * The attestation key (AK): a restricted signing key, so the TPM signs with it only what it
 * produced itself (quotes, certifications), never an arbitrary digest that merely looks
 * like one. ECC NIST P-256 with ECDSA-SHA256: fast to create and to sign with on real TPMs.
 *
 * A primary key of the endorsement hierarchy, like the EK: the same template gives the
 * same key again until the endorsement seed changes (TPM2_Clear does not change it), and
 * a quote signed by it shows the TPM's real reset and restart counters (keys of the owner
 * hierarchy get them obfuscated, Part 1 §36.7). Persisted beside the Azure SDK's keys
 * (identity.ts): EK 0x81010001, SRK 0x81000001, identity key 0x81000100, AK 0x81010100,
 * the first endorsement-hierarchy handle after the block the TCG handle registry keeps for
 * EKs (0x81010000-0x810100FF); the Azure SDKs and aziot-tpmd use none of it.
 */
export const AK_HANDLE = 0x81010100;

export const ALG_ID = { RSA: 0x0001, SHA256: 0x000b, NULL: 0x0010, RSASSA: 0x0014, ECDSA: 0x0018, ECC: 0x0023 } as const;
const ECC_NIST_P256 = 0x0003;

/** TPMA_OBJECT bits (Part 2 §8.3). */
const FIXED_TPM = 1 << 1;
const FIXED_PARENT = 1 << 4;
const SENSITIVE_DATA_ORIGIN = 1 << 5;
const USER_WITH_AUTH = 1 << 6;
const NO_DA = 1 << 10;
const RESTRICTED = 1 << 16;
const DECRYPT = 1 << 17;
const SIGN = 1 << 18;
/** What makes a key an attestation key: born in this TPM, never leaving it, signing only TPM-made structures. */
const REQUIRED = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN;

/** TPMT_PUBLIC of the AK as created: empty unique, filled in by the TPM. */
export function attestationKeyTemplate(): Buffer {
  return Buffer.concat([
    u16(ALG_ID.ECC), u16(ALG_ID.SHA256), u32(REQUIRED | USER_WITH_AUTH | NO_DA), tpm2b(),
    u16(ALG_ID.NULL), // symmetric: none (a signing key)
    u16(ALG_ID.ECDSA), u16(ALG_ID.SHA256), // scheme
    u16(ECC_NIST_P256), u16(ALG_ID.NULL), // curve, kdf
    tpm2b(), tpm2b(), // unique: x, y
  ]);
}

/** A public AK as a verifier needs it: its name (what a credential is bound to) and a key to verify with. */
export interface AttestationKeyPublic {
  /** TPM2B_PUBLIC, as the TPM returned it. */
  tpm2bPublic: Buffer;
  /** nameAlg ‖ SHA-256(TPMT_PUBLIC). */
  name: Buffer;
  algorithm: 'ecdsa-p256-sha256' | 'rsassa-2048-sha256';
  key: KeyObject;
}

/**
 * Parses and checks a TPM2B_PUBLIC claimed to be an AK. Refused (TpmParseError) unless it
 * is a restricted, non-decrypting signing key that was generated in its TPM and cannot leave
 * it (fixedTPM, fixedParent, sensitiveDataOrigin), with SHA-256 names and a SHA-256 scheme:
 * ECDSA on P-256 or RSASSA with RSA-2048. Binding through the EK proves only that the key
 * is in that TPM; these attributes are what make its signature mean "the TPM made this".
 */
export function parseAttestationKey(tpm2bPublic: Buffer): AttestationKeyPublic {
  const what = 'attestation key';
  const outer = new TpmReader(tpm2bPublic, what);
  const tpmtPublic = outer.sized('publicArea');
  outer.end();
  const r = new TpmReader(tpmtPublic, what);
  const type = r.u16('type');
  if (r.u16('nameAlg') !== ALG_ID.SHA256) throw new TpmParseError(`${what}: its name algorithm is not SHA-256`);
  const attributes = r.u32('objectAttributes');
  if ((attributes & REQUIRED) !== REQUIRED || (attributes & DECRYPT) !== 0) {
    throw new TpmParseError(`${what}: attributes 0x${attributes.toString(16)} are not those of a restricted signing key generated in and bound to its TPM`);
  }
  r.sized('authPolicy');
  if (r.u16('symmetric') !== ALG_ID.NULL) throw new TpmParseError(`${what}: a signing key has no symmetric algorithm`);
  const scheme = r.u16('scheme');
  const schemeHash = scheme === ALG_ID.NULL ? 0 : r.u16('scheme.hashAlg');
  let key: KeyObject;
  let algorithm: AttestationKeyPublic['algorithm'];
  if (type === ALG_ID.ECC) {
    if (scheme !== ALG_ID.ECDSA || schemeHash !== ALG_ID.SHA256) throw new TpmParseError(`${what}: ECC key without the ECDSA-SHA256 scheme`);
    if (r.u16('curveID') !== ECC_NIST_P256) throw new TpmParseError(`${what}: curve is not NIST P-256`);
    if (r.u16('kdf') !== ALG_ID.NULL) throw new TpmParseError(`${what}: unexpected KDF`);
    const x = r.sized('unique.x');
    const y = r.sized('unique.y');
    if (x.length !== 32 || y.length !== 32) throw new TpmParseError(`${what}: a P-256 point has 32-byte coordinates`);
    key = checkedKey(() => createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: x.toString('base64url'), y: y.toString('base64url') }, format: 'jwk' }), what);
    algorithm = 'ecdsa-p256-sha256';
  } else if (type === ALG_ID.RSA) {
    if (scheme !== ALG_ID.RSASSA || schemeHash !== ALG_ID.SHA256) throw new TpmParseError(`${what}: RSA key without the RSASSA-SHA256 scheme`);
    const bits = r.u16('keyBits');
    const exponent = r.u32('exponent') || 65537;
    const modulus = r.sized('unique');
    if (bits !== 2048 || modulus.length !== 256) throw new TpmParseError(`${what}: RSA-${bits} is not RSA-2048`);
    key = checkedKey(() => createPublicKey({ key: { kty: 'RSA', n: modulus.toString('base64url'), e: exponentBytes(exponent).toString('base64url') }, format: 'jwk' }), what);
    algorithm = 'rsassa-2048-sha256';
  } else {
    throw new TpmParseError(`${what}: type 0x${type.toString(16)} is neither ECC nor RSA`);
  }
  r.end();
  return { tpm2bPublic: Buffer.from(tpm2bPublic), name: nameOf(Buffer.from(tpmtPublic)), algorithm, key };
}

function exponentBytes(exponent: number): Buffer {
  const e = u32(exponent);
  let start = 0;
  while (start < 3 && e[start] === 0) start++;
  return e.subarray(start);
}

function checkedKey(make: () => KeyObject, what: string): KeyObject {
  try {
    return make();
  } catch (err) {
    throw new TpmParseError(`${what}: not a valid public key (${(err as Error).message})`);
  }
}
