import { execFileSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ActivationBlobError, buildActivationBlob, identityKeyPublic } from '../cloud/dps/activation-blob.js';
import { kdfa } from '../../agent/tpm/wire/kdfa.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { TpmParseError, tpm2b } from '../../agent/tpm/wire/tpm-bytes.js';
import { nameOf, parseRsaPublic } from '../../agent/tpm/wire/tpm-public.js';

/** OpenSSL's KBKDF in counter mode with HMAC-SHA256 is SP 800-108, the same construction as KDFa: an independent implementation. */
function opensslKbkdf(key: Buffer, label: string, context: Buffer, bits: number): Buffer {
  const args = ['kdf', '-keylen', String(bits / 8), '-kdfopt', 'mac:HMAC', '-kdfopt', 'digest:SHA256',
    '-kdfopt', `hexkey:${key.toString('hex')}`, '-kdfopt', `hexsalt:${Buffer.from(label).toString('hex')}`];
  if (context.length) args.push('-kdfopt', `hexinfo:${context.toString('hex')}`);
  args.push('KBKDF');
  return Buffer.from(execFileSync('openssl', args, { encoding: 'utf8' }).trim().replace(/:/g, ''), 'hex');
}

describe('KDFa', () => {
  const key = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');

  it.each([128, 256, 384])('matches OpenSSL KBKDF (SP 800-108 counter mode) for %i bits', (bits) => {
    const context = Buffer.from('000b' + 'ab'.repeat(32), 'hex');
    expect(kdfa(key, 'STORAGE', context, Buffer.alloc(0), bits).toString('hex')).toBe(opensslKbkdf(key, 'STORAGE', context, bits).toString('hex'));
  });

  it('derives the INTEGRITY key with empty contexts as OpenSSL does', () => {
    expect(kdfa(key, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256)).toEqual(opensslKbkdf(key, 'INTEGRITY', Buffer.alloc(0), 256));
  });

  it('refuses a size that is not whole bytes', () => {
    expect(() => kdfa(key, 'STORAGE', Buffer.alloc(0), Buffer.alloc(0), 12)).toThrow(RangeError);
    expect(() => kdfa(key, 'STORAGE', Buffer.alloc(0), Buffer.alloc(0), 0)).toThrow(RangeError);
  });
});

let sharedTpm: SoftwareTpm | undefined;
/** One software TPM for the parsing tests (RSA key generation is slow), made inside the first test that needs it. */
function softwareTpm(): SoftwareTpm {
  sharedTpm ??= SoftwareTpm.create();
  return sharedTpm;
}

describe('TPM2B_PUBLIC parsing', () => {
  it('reads an Azure-template EK: RSA-2048, SHA-256, AES-128-CFB, default exponent', () => {
    const tpm = softwareTpm();
    const area = parseRsaPublic(tpm.endorsementKey);
    expect(area).toMatchObject({ keyBits: 2048, exponent: 65537, symmetric: { keyBits: 128 } });
    expect(area.modulus).toHaveLength(256);
    expect(nameOf(area.tpmtPublic)).toEqual(Buffer.concat([Buffer.from('000b', 'hex'), createHash('sha256').update(tpm.endorsementKey.subarray(2)).digest()]));
  });

  it.each([
    ['empty input', Buffer.alloc(0)],
    ['a size larger than the bytes', (b: Buffer) => b.subarray(0, b.length - 1)],
    ['trailing bytes', (b: Buffer) => Buffer.concat([b, Buffer.from([0])])],
    ['a truncated public area', (b: Buffer) => tpm2b(b.subarray(2, 40))],
    ['an ECC key', (b: Buffer) => patch(b, 2, '0023')],
    ['a SHA-1 name algorithm', (b: Buffer) => patch(b, 4, '0004')],
    ['a non-storage key (no symmetric algorithm)', (b: Buffer) => patch(b, 12 + 32, '0010')],
    ['a 1024-bit key', (b: Buffer) => patch(b, b.length - 264, '0400')],
  ])('refuses %s with a TpmParseError', (_name, mutate) => {
    const tpm = softwareTpm();
    const input = typeof mutate === 'function' ? mutate(tpm.endorsementKey) : mutate;
    expect(() => parseRsaPublic(input)).toThrow(TpmParseError);
  });
});

describe('activation blob', () => {
  it('imports in a software TPM and yields the HMAC key it was built with', () => {
    const device = SoftwareTpm.create();
    const key = randomBytes(32);
    expect(device.activate(buildActivationBlob(device.endorsementKey, device.storageRootKey, key))).toEqual(key);
    const data = Buffer.from('scope/registrations/id\n1700000000');
    expect(device.sign(data)).toEqual(createHmac('sha256', key).update(data).digest());
  });

  it('describes the identity key as an HMAC-SHA256 signing key bound to its seed and key', () => {
    const seed = Buffer.alloc(32, 1);
    const key = Buffer.alloc(32, 2);
    const pub = identityKeyPublic(seed, key);
    // type KEYEDHASH, nameAlg SHA-256, sign|noDA|userWithAuth, empty policy, scheme HMAC(SHA-256), unique size 32
    expect(pub.subarray(0, 16).toString('hex')).toBe('0008' + '000b' + '00040440' + '0000' + '0005' + '000b' + '0020');
    expect(pub.subarray(16)).toEqual(createHash('sha256').update(seed).update(key).digest());
  });

  it('cannot be activated with a different EK', () => {
    const device = SoftwareTpm.create();
    const other = SoftwareTpm.create();
    const blob = buildActivationBlob(other.endorsementKey, device.storageRootKey, randomBytes(32));
    expect(() => device.activate(blob)).toThrow();
  });

  it('is fresh every time: same inputs, different bytes', () => {
    const device = SoftwareTpm.create();
    const key = randomBytes(32);
    expect(buildActivationBlob(device.endorsementKey, device.storageRootKey, key)).not.toEqual(buildActivationBlob(device.endorsementKey, device.storageRootKey, key));
  });

  it('refuses a key that is not 32 bytes and an EK that is not an RSA storage key', () => {
    const device = SoftwareTpm.create();
    expect(() => buildActivationBlob(device.endorsementKey, device.storageRootKey, randomBytes(16))).toThrow(ActivationBlobError);
    expect(() => buildActivationBlob(Buffer.from('not a key'), device.storageRootKey, randomBytes(32))).toThrow(/endorsement key/);
  });
});

function patch(bytes: Buffer, offset: number, hex: string): Buffer {
  const out = Buffer.from(bytes);
  Buffer.from(hex, 'hex').copy(out, offset);
  return out;
}
