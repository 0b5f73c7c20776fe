import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AK_HANDLE, attestationKeyTemplate, parseAttestationKey } from '../../agent/attestation/attestation-key.js';
import { marshalSelection } from '../../agent/attestation/pcr-selection.js';
import { parseQuote, verifyQuoteSignature } from '../../agent/attestation/quote.js';
import { TpmParseError, tpm2b, u16, u32 } from '../../agent/tpm/wire/tpm-bytes.js';
import { nameOf } from '../../agent/tpm/wire/tpm-public.js';

const ECC = 0x0023;
const RSA = 0x0001;
const SHA1 = 0x0004;
const SHA256 = 0x000b;
const SHA384 = 0x000c;
const NULL = 0x0010;
const ECDSA = 0x0018;
const RSASSA = 0x0014;
const RSAPSS = 0x0016;
const NIST_P256 = 0x0003;
/** fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | restricted | sign */
const AK_ATTRIBUTES = 0x00050472;

interface AreaFields {
  type: number; nameAlg: number; attributes: number; symmetric: number; scheme: Buffer;
  /** ECC: curve, kdf, x, y; RSA: keyBits, exponent, modulus. */
  rest: Buffer;
}

function eccPoint(publicKey: KeyObject): { x: Buffer; y: Buffer } {
  const jwk = publicKey.export({ format: 'jwk' });
  return { x: Buffer.from(jwk.x!, 'base64url'), y: Buffer.from(jwk.y!, 'base64url') };
}

function eccRest(x: Buffer, y: Buffer, curve = NIST_P256, kdf = NULL): Buffer {
  return Buffer.concat([u16(curve), u16(kdf), tpm2b(x), tpm2b(y)]);
}

function rsaRest(publicKey: KeyObject, exponent = 0, keyBits = 2048): Buffer {
  return Buffer.concat([u16(keyBits), u32(exponent), tpm2b(Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url'))]);
}

/** TPM2B_PUBLIC of a signing key, field by field (Part 2 §12.2.4). */
function publicArea(f: AreaFields): Buffer {
  return tpm2b(Buffer.concat([u16(f.type), u16(f.nameAlg), u32(f.attributes), tpm2b(), u16(f.symmetric), f.scheme, f.rest]));
}

function eccAk(fields: Partial<AreaFields> = {}): { area: Buffer; privateKey: KeyObject; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { x, y } = eccPoint(publicKey);
  const area = publicArea({ type: ECC, nameAlg: SHA256, attributes: AK_ATTRIBUTES, symmetric: NULL, scheme: Buffer.concat([u16(ECDSA), u16(SHA256)]), rest: eccRest(x, y), ...fields });
  return { area, privateKey, publicKey };
}

let rsaKeys: { privateKey: KeyObject; publicKey: KeyObject } | undefined;
/** One RSA-2048 key pair per file: generating them is slow. */
function rsaKeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  rsaKeys ??= generateKeyPairSync('rsa', { modulusLength: 2048 });
  return rsaKeys;
}

function rsaAk(fields: Partial<AreaFields> = {}): { area: Buffer; privateKey: KeyObject; publicKey: KeyObject } {
  const { privateKey, publicKey } = rsaKeyPair();
  const area = publicArea({ type: RSA, nameAlg: SHA256, attributes: AK_ATTRIBUTES, symmetric: NULL, scheme: Buffer.concat([u16(RSASSA), u16(SHA256)]), rest: rsaRest(publicKey), ...fields });
  return { area, privateKey, publicKey };
}

function parseError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(TpmParseError);
    return (err as Error).message;
  }
  throw new Error('expected a TpmParseError');
}

/** A TPMS_ATTEST of type quote (Part 2 §10.12.12) with the given qualifying data and digest. */
function attest(nonce: Buffer, options: { magic?: number; type?: number; pcrs?: number[] } = {}): Buffer {
  const clock = Buffer.alloc(8);
  clock.writeBigUInt64BE(0x0102030405060708n);
  const firmware = Buffer.alloc(8);
  firmware.writeBigUInt64BE(0xfedcba9876543210n);
  return Buffer.concat([
    u32(options.magic ?? 0xff544347), u16(options.type ?? 0x8018), tpm2b(Buffer.from('signer')), tpm2b(nonce),
    clock, u32(7), u32(3), Buffer.from([0]), firmware, marshalSelection(options.pcrs ?? [0, 13]), tpm2b(Buffer.alloc(32, 9)),
  ]);
}

function ecdsaSignature(r: Buffer, s: Buffer, hash = SHA256): Buffer {
  return Buffer.concat([u16(ECDSA), u16(hash), tpm2b(r), tpm2b(s)]);
}

describe('the attestation key template', () => {
  it('is a restricted ECDSA-SHA256 P-256 signing key of the endorsement hierarchy, persisted next to the EK block', () => {
    expect(attestationKeyTemplate().toString('hex')).toBe('0023' + '000b' + '00050472' + '0000' + '0010' + '0018000b' + '0003' + '0010' + '0000' + '0000');
    expect(AK_HANDLE).toBe(0x81010100);
  });
});

describe('attestation key public areas', () => {
  it('read an ECC P-256 AK: its name as the TPM computes it and a key that verifies its signatures', () => {
    const { area, publicKey } = eccAk();
    const ak = parseAttestationKey(area);
    expect(ak.algorithm).toBe('ecdsa-p256-sha256');
    expect(ak.name).toEqual(nameOf(area.subarray(2)));
    expect(ak.tpm2bPublic).toEqual(area);
    expect(ak.key.export({ format: 'jwk' })).toEqual(publicKey.export({ format: 'jwk' }));
  });

  it('read an RSA-2048 RSASSA-SHA256 AK, with the default or an explicit exponent', () => {
    const { area, publicKey } = rsaAk();
    const ak = parseAttestationKey(area);
    expect(ak.algorithm).toBe('rsassa-2048-sha256');
    expect(ak.key.export({ format: 'jwk' })).toEqual(publicKey.export({ format: 'jwk' }));
    const explicit = parseAttestationKey(rsaAk({ rest: rsaRest(publicKey, 65537) }).area);
    expect(explicit.key.export({ format: 'jwk' })).toEqual(publicKey.export({ format: 'jwk' }));
    expect(parseAttestationKey(rsaAk({ rest: rsaRest(publicKey, 3) }).area).key.export({ format: 'jwk' }).e).toBe('Aw');
  });

  it.each<[string, () => Buffer, string]>([
    ['a SHA-1 name', () => eccAk({ nameAlg: SHA1 }).area, 'attestation key: its name algorithm is not SHA-256'],
    ['a key that may decrypt', () => eccAk({ attributes: AK_ATTRIBUTES | (1 << 17) }).area, 'attestation key: attributes 0x70472 are not those of a restricted signing key generated in and bound to its TPM'],
    ['a key that signs anything', () => eccAk({ attributes: AK_ATTRIBUTES & ~(1 << 16) }).area, 'attestation key: attributes 0x40472 are not those of a restricted signing key generated in and bound to its TPM'],
    ['a key with a symmetric algorithm', () => eccAk({ symmetric: 0x0006 }).area, 'attestation key: a signing key has no symmetric algorithm'],
    ['an ECC key without a scheme', () => eccAk({ scheme: u16(NULL), rest: Buffer.alloc(0) }).area, 'attestation key: ECC key without the ECDSA-SHA256 scheme'],
    ['an ECC key signing with SHA-384', () => eccAk({ scheme: Buffer.concat([u16(ECDSA), u16(SHA384)]) }).area, 'attestation key: ECC key without the ECDSA-SHA256 scheme'],
    ['an ECC key on another curve', () => eccAk({ rest: eccRest(Buffer.alloc(32, 1), Buffer.alloc(32, 1), 0x0004) }).area, 'attestation key: curve is not NIST P-256'],
    ['an ECC key with a KDF', () => eccAk({ rest: eccRest(Buffer.alloc(32, 1), Buffer.alloc(32, 1), NIST_P256, 0x0020) }).area, 'attestation key: unexpected KDF'],
    ['a short x coordinate', () => eccAk({ rest: eccRest(Buffer.alloc(31, 1), Buffer.alloc(32, 1)) }).area, 'attestation key: a P-256 point has 32-byte coordinates'],
    ['a long y coordinate', () => eccAk({ rest: eccRest(Buffer.alloc(32, 1), Buffer.alloc(33, 1)) }).area, 'attestation key: a P-256 point has 32-byte coordinates'],
    ['a point not on the curve', () => eccAk({ rest: eccRest(Buffer.alloc(32, 1), Buffer.alloc(32, 1)) }).area, 'attestation key: not a valid public key'],
    ['an RSA key with RSA-PSS', () => rsaAk({ scheme: Buffer.concat([u16(RSAPSS), u16(SHA256)]) }).area, 'attestation key: RSA key without the RSASSA-SHA256 scheme'],
    ['an RSA key signing with SHA-1', () => rsaAk({ scheme: Buffer.concat([u16(RSASSA), u16(SHA1)]) }).area, 'attestation key: RSA key without the RSASSA-SHA256 scheme'],
    ['an RSA key without a scheme', () => rsaAk({ scheme: u16(NULL) }).area, 'attestation key: RSA key without the RSASSA-SHA256 scheme'],
    ['RSA-1024', () => rsaAk({ rest: Buffer.concat([u16(1024), u32(0), tpm2b(Buffer.alloc(128, 1))]) }).area, 'attestation key: RSA-1024 is not RSA-2048'],
    ['an RSA-2048 key with a short modulus', () => rsaAk({ rest: Buffer.concat([u16(2048), u32(0), tpm2b(Buffer.alloc(255, 1))]) }).area, 'attestation key: RSA-2048 is not RSA-2048'],
    ['a keyed-hash key', () => eccAk({ type: 0x0008 }).area, 'attestation key: type 0x8 is neither ECC nor RSA'],
    ['bytes after the area', () => tpm2b(Buffer.concat([eccAk().area.subarray(2), Buffer.from([0])])), 'attestation key: 1 unexpected bytes after the end'],
  ])('refuse %s, saying why', (_what, area, message) => {
    expect(parseError(() => parseAttestationKey(area()))).toContain(message);
  });

  it.each([
    [1, 'type'], [3, 'nameAlg'], [7, 'objectAttributes'], [9, 'authPolicy size'], [11, 'symmetric'], [13, 'scheme'], [15, 'scheme.hashAlg'],
    [17, 'curveID'], [19, 'kdf'], [21, 'unique.x size'], [40, 'unique.x'], [55, 'unique.y size'], [80, 'unique.y'],
  ])('name the field an ECC area cut at %i bytes ends in', (cut, field) => {
    const area = eccAk().area.subarray(2);
    expect(parseError(() => parseAttestationKey(tpm2b(area.subarray(0, cut))))).toMatch(new RegExp(`^attestation key: ${field.replace('.', '\\.')} needs`));
  });

  it.each([[17, 'keyBits'], [21, 'exponent'], [23, 'unique size'], [100, 'unique']])('name the field an RSA area cut at %i bytes ends in', (cut, field) => {
    const area = rsaAk().area.subarray(2);
    expect(parseError(() => parseAttestationKey(tpm2b(area.subarray(0, cut))))).toMatch(new RegExp(`^attestation key: ${field} needs`));
  });

  it('names the size of a TPM2B_PUBLIC cut short', () => {
    expect(parseError(() => parseAttestationKey(Buffer.from([0])))).toMatch(/^attestation key: publicArea size needs/);
  });
});

describe('quotes', () => {
  it('read every field of a TPMS_ATTEST, 64-bit values whole', () => {
    const nonce = randomBytes(32);
    expect(parseQuote(attest(nonce))).toEqual({
      qualifiedSigner: Buffer.from('signer'), extraData: nonce,
      clockInfo: { clock: 0x0102030405060708n, resetCount: 7, restartCount: 3, safe: false },
      firmwareVersion: 0xfedcba9876543210n, pcrs: [0, 13], pcrDigest: Buffer.alloc(32, 9),
    });
  });

  it('refuse what the TPM did not make, or is not a quote, saying so', () => {
    expect(parseError(() => parseQuote(attest(Buffer.alloc(0), { magic: 0xff544346 })))).toBe('quote: magic 0xff544346 is not TPM_GENERATED_VALUE');
    expect(parseError(() => parseQuote(attest(Buffer.alloc(0), { type: 0x8017 })))).toBe('quote: structure type 0x8017 is not a quote');
  });

  it.each([
    [3, 'magic'], [5, 'type'], [7, 'qualifiedSigner size'], [10, 'qualifiedSigner'], [15, 'extraData size'], [18, 'extraData'], [25, 'clock'],
    [30, 'resetCount'], [34, 'restartCount'], [36, 'safe'], [40, 'firmwareVersion'], [47, 'pcrSelections.count'], [56, 'pcrDigest size'], [70, 'pcrDigest'],
  ])('name the field a quote cut at %i bytes ends in', (cut, field) => {
    const whole = attest(Buffer.alloc(4, 1));
    expect(parseError(() => parseQuote(whole.subarray(0, cut)))).toMatch(new RegExp(`^quote: ${field.replace('.', '\\.')} needs`));
  });
});

describe('quote signatures', () => {
  it('verify an ECDSA signature of the AK, and no other', () => {
    const { area, privateKey } = eccAk();
    const ak = parseAttestationKey(area);
    const quote = attest(randomBytes(32));
    const raw = sign('sha256', quote, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifyQuoteSignature(ak, quote, ecdsaSignature(raw.subarray(0, 32), raw.subarray(32)))).toBe(true);
    expect(verifyQuoteSignature(ak, attest(randomBytes(32)), ecdsaSignature(raw.subarray(0, 32), raw.subarray(32)))).toBe(false);
    expect(verifyQuoteSignature(parseAttestationKey(eccAk().area), quote, ecdsaSignature(raw.subarray(0, 32), raw.subarray(32)))).toBe(false);
  });

  it('verify an ECDSA signature whose r the TPM gave without its leading zero', () => {
    const { area, privateKey } = eccAk();
    const ak = parseAttestationKey(area);
    for (let i = 0; i < 5_000; i++) {
      const quote = attest(randomBytes(32));
      const raw = sign('sha256', quote, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      if (raw[0] !== 0) continue;
      expect(verifyQuoteSignature(ak, quote, ecdsaSignature(raw.subarray(1, 32), raw.subarray(32)))).toBe(true);
      return;
    }
    throw new Error('no signature with a leading zero in 5000 tries');
  });

  it('refuse, without throwing, ECDSA values longer than the curve, another hash or trailing bytes', () => {
    const { area, privateKey } = eccAk();
    const ak = parseAttestationKey(area);
    const quote = attest(randomBytes(32));
    const raw = sign('sha256', quote, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const [r, s] = [raw.subarray(0, 32), raw.subarray(32)];
    expect(verifyQuoteSignature(ak, quote, ecdsaSignature(Buffer.concat([Buffer.alloc(1), r]), s))).toBe(false);
    expect(verifyQuoteSignature(ak, quote, ecdsaSignature(r, Buffer.concat([Buffer.alloc(1), s])))).toBe(false);
    expect(verifyQuoteSignature(ak, quote, ecdsaSignature(r, s, SHA384))).toBe(false);
    expect(verifyQuoteSignature(ak, quote, Buffer.concat([ecdsaSignature(r, s), Buffer.from([0])]))).toBe(false);
    expect(verifyQuoteSignature(ak, quote, Buffer.concat([u16(RSASSA), u16(SHA256), tpm2b(raw)]))).toBe(false);
  });

  it('verify an RSASSA signature of an RSA AK, and refuse an ECDSA one or trailing bytes', () => {
    const { area, privateKey } = rsaAk();
    const ak = parseAttestationKey(area);
    const quote = attest(randomBytes(32));
    const sig = sign('sha256', quote, privateKey);
    expect(verifyQuoteSignature(ak, quote, Buffer.concat([u16(RSASSA), u16(SHA256), tpm2b(sig)]))).toBe(true);
    expect(verifyQuoteSignature(ak, attest(randomBytes(32)), Buffer.concat([u16(RSASSA), u16(SHA256), tpm2b(sig)]))).toBe(false);
    expect(verifyQuoteSignature(ak, quote, Buffer.concat([u16(RSASSA), u16(SHA256), tpm2b(sig), Buffer.from([0])]))).toBe(false);
    expect(verifyQuoteSignature(ak, quote, ecdsaSignature(sig.subarray(0, 32), sig.subarray(32, 64)))).toBe(false);
  });
});
