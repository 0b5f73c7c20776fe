import { constants, createDecipheriv, createHash, createHmac, generateKeyPairSync, privateDecrypt, timingSafeEqual, type KeyObject } from 'node:crypto';
import { identityKeyPublic } from './activation-blob.js';
import { kdfa } from '../../../agent/tpm/wire/kdfa.js';
import { TpmReader, tpm2b, u16, u32 } from '../../../agent/tpm/wire/tpm-bytes.js';
import { ALG, nameOf } from '../../../agent/tpm/wire/tpm-public.js';

/**
 * The two TPM operations a DPS registration needs (ActivateCredential then Import, and
 * HMAC with the imported key), done in software with RSA keys made by node:crypto.
 * For the benchmark (so the TPM is not the bottleneck) and as a second, independent
 * reading of the activation blob. Not a TPM: no policy, no hierarchy, no persistence.
 */
export class SoftwareTpm {
  readonly endorsementKey: Buffer;
  readonly storageRootKey: Buffer;
  private readonly srkName: Buffer;
  private identityKey: Buffer | undefined;

  private constructor(private readonly ek: KeyObject, private readonly srk: KeyObject, ekPublic: Buffer, srkPublic: Buffer) {
    this.endorsementKey = tpm2b(ekPublic);
    this.storageRootKey = tpm2b(srkPublic);
    this.srkName = nameOf(srkPublic);
  }

  static create(): SoftwareTpm {
    const ek = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const srk = generateKeyPairSync('rsa', { modulusLength: 2048 });
    return new SoftwareTpm(ek.privateKey, srk.privateKey, storageKeyPublic(ek.publicKey, EK_ATTRIBUTES, EK_POLICY), storageKeyPublic(srk.publicKey, SRK_ATTRIBUTES, Buffer.alloc(0)));
  }

  /** ActivateCredential + Import: returns the identity key and keeps it for sign(). Throws when any check fails. */
  activate(blob: Buffer): Buffer {
    const r = new TpmReader(blob, 'activation blob');
    const idObject = new TpmReader(r.sized('TPM2B_ID_OBJECT'), 'TPMS_ID_OBJECT');
    const integrity = idObject.sized('integrityHMAC');
    const encIdentity = idObject.take(idObject.remaining, 'encIdentity');
    const encCredSeed = r.sized('credential seed');
    const priv = new TpmReader(r.sized('TPM2B_PRIVATE'), 'TPM2B_PRIVATE');
    const outerHmac = priv.sized('outer HMAC');
    const duplicate = priv.take(priv.remaining, 'duplicate');
    const encDupSeed = r.sized('duplication seed');
    const idPublic = r.sized('identity key public');
    r.sized('encUriData');
    r.end();

    const credSeed = oaepDecrypt(this.ek, encCredSeed, 'IDENTITY');
    check(createHmac('sha256', kdfa(credSeed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256)).update(encIdentity).update(this.srkName).digest(), integrity, 'credential integrity');
    const innerKey = new TpmReader(aesCfbDecrypt(kdfa(credSeed, 'STORAGE', this.srkName, Buffer.alloc(0), 128), encIdentity), 'credential').sized('credential');

    const idName = nameOf(Buffer.from(idPublic));
    const dupSeed = oaepDecrypt(this.srk, encDupSeed, 'DUPLICATE');
    check(createHmac('sha256', kdfa(dupSeed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256)).update(duplicate).update(idName).digest(), outerHmac, 'outer integrity');
    const inner = new TpmReader(aesCfbDecrypt(innerKey, aesCfbDecrypt(kdfa(dupSeed, 'STORAGE', idName, Buffer.alloc(0), 128), duplicate)), 'inner wrapper');
    const innerIntegrity = inner.sized('inner integrity');
    const sensitiveBytes = inner.take(inner.remaining, 'sensitive');
    check(createHash('sha256').update(sensitiveBytes).update(idName).digest(), innerIntegrity, 'inner integrity');
    const sensitive = new TpmReader(new TpmReader(sensitiveBytes, 'TPM2B_SENSITIVE').sized('TPMT_SENSITIVE'), 'TPMT_SENSITIVE');
    if (sensitive.u16('sensitiveType') !== ALG.KEYEDHASH) throw new Error('activation blob: the identity key is not a KEYEDHASH key');
    sensitive.sized('authValue');
    const seedValue = sensitive.sized('seedValue');
    const key = Buffer.from(sensitive.sized('sensitive'));
    check(identityKeyPublic(seedValue, key), idPublic, 'identity key public area');
    this.identityKey = key;
    return key;
  }

  /** TPM2_HMAC with the activated identity key, as signWithIdentity does. */
  sign(data: Buffer): Buffer {
    if (!this.identityKey) throw new Error('no identity key: activate a blob first');
    return createHmac('sha256', this.identityKey).update(data).digest();
  }
}

// The Azure SDK's EK and SRK templates (agent/tpm/key-templates.ts), so the public areas look like a real TPM's.
const EK_POLICY = Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex');
const STORAGE = (1 << 16) | (1 << 17) | (1 << 1) | (1 << 4) | (1 << 5); // restricted | decrypt | fixedTPM | fixedParent | sensitiveDataOrigin
const EK_ATTRIBUTES = STORAGE | (1 << 7); // adminWithPolicy
const SRK_ATTRIBUTES = STORAGE | (1 << 10) | (1 << 6); // noDA | userWithAuth

function storageKeyPublic(key: KeyObject, attributes: number, policy: Buffer): Buffer {
  const modulus = Buffer.from(key.export({ format: 'jwk' }).n ?? '', 'base64url');
  return Buffer.concat([u16(ALG.RSA), u16(ALG.SHA256), u32(attributes), tpm2b(policy),
    u16(ALG.AES), u16(128), u16(ALG.CFB), u16(ALG.NULL), u16(2048), u32(0), tpm2b(modulus)]);
}

function oaepDecrypt(key: KeyObject, data: Buffer, label: string): Buffer {
  return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from(`${label}\0`, 'latin1') }, data);
}

function aesCfbDecrypt(key: Buffer, data: Buffer): Buffer {
  const decipher = createDecipheriv(key.length === 16 ? 'aes-128-cfb' : 'aes-256-cfb', key, Buffer.alloc(16));
  return Buffer.concat([decipher.update(data), decipher.final()]);
}

function check(expected: Buffer, actual: Buffer, what: string): void {
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw new Error(`activation blob: ${what} check failed`);
}
