import { execFileSync } from 'node:child_process';
import { constants, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TpmCommandError } from '../../agent/tpm/tpm-client.js';
import { marshalCommand, PASSWORD, TPM_RS_PW, unmarshalResponse } from '../../agent/tpm/wire/command.js';
import { aesCfb, oaepEncrypt } from '../../agent/tpm/wire/credential.js';
import { kdfa } from '../../agent/tpm/wire/kdfa.js';
import { TpmParseError, TpmReader, tpm2b, u16, u32 } from '../../agent/tpm/wire/tpm-bytes.js';
import { ALG, parseRsaPublic, rsaKeyOf } from '../../agent/tpm/wire/tpm-public.js';

function parseError(read: () => unknown): string {
  try {
    read();
  } catch (err) {
    expect(err).toBeInstanceOf(TpmParseError);
    return (err as Error).message;
  }
  throw new Error('expected a TpmParseError');
}

describe('TPM marshalling', () => {
  it('writes sizes big-endian', () => {
    expect(u16(0x0102).toString('hex')).toBe('0102');
    expect(u32(0x01020304).toString('hex')).toBe('01020304');
  });

  it('writes handles and codes with the top bit set as unsigned', () => {
    expect(u32(0x81000100).toString('hex')).toBe('81000100');
    expect(u32(-1).toString('hex')).toBe('ffffffff');
  });

  it('prefixes a TPM2B with the size of all its parts', () => {
    expect(tpm2b().toString('hex')).toBe('0000');
    expect(tpm2b(Buffer.from('ab', 'hex'), Buffer.from('cdef', 'hex')).toString('hex')).toBe('0003abcdef');
    expect(tpm2b(Buffer.alloc(0xffff)).subarray(0, 2).toString('hex')).toBe('ffff');
  });

  it('refuses a TPM2B over 65535 bytes', () => {
    expect(() => tpm2b(Buffer.alloc(0x8000), Buffer.alloc(0x8000))).toThrow('TPM2B of 65536 bytes is too large');
  });
});

describe('reading TPM structures', () => {
  it('reads sizes, sized buffers and raw bytes in order, keeping track of where it is', () => {
    const r = new TpmReader(Buffer.from('0102' + '03040506' + '0002abcd' + 'ef', 'hex'), 'test');
    expect([r.position, r.remaining]).toEqual([0, 11]);
    expect(r.u16('a')).toBe(0x0102);
    expect(r.u32('b')).toBe(0x03040506);
    expect(r.sized('c').toString('hex')).toBe('abcd');
    expect([r.position, r.remaining]).toEqual([10, 1]);
    expect(r.take(1, 'd').toString('hex')).toBe('ef');
    expect(r.remaining).toBe(0);
    r.end();
  });

  it('reads an unsigned 32-bit value with the top bit set', () => {
    expect(new TpmReader(Buffer.from('ffffffff', 'hex'), 'test').u32('x')).toBe(0xffffffff);
  });

  it('names the structure, the field, the size and the offset of a short read', () => {
    const r = new TpmReader(Buffer.from('000500', 'hex'), 'TPM2B_PUBLIC');
    expect(parseError(() => r.sized('publicArea'))).toBe('TPM2B_PUBLIC: publicArea needs 5 bytes at offset 2, 1 left');
    expect(parseError(() => new TpmReader(Buffer.from('01', 'hex'), 'header').u16('tag'))).toBe('header: tag needs 2 bytes at offset 0, 1 left');
    expect(parseError(() => new TpmReader(Buffer.from('010203', 'hex'), 'header').u32('size'))).toBe('header: size needs 4 bytes at offset 0, 3 left');
    expect(parseError(() => new TpmReader(Buffer.from('00', 'hex'), 'TPM2B_PUBLIC').sized('unique'))).toBe('TPM2B_PUBLIC: unique size needs 2 bytes at offset 0, 1 left');
  });

  it('does not move on after a short read', () => {
    const r = new TpmReader(Buffer.from('0102', 'hex'), 'test');
    expect(() => r.take(3, 'x')).toThrow(TpmParseError);
    expect(r.position).toBe(0);
    expect(r.u16('y')).toBe(0x0102);
  });

  it('refuses bytes left over at the end, saying how many', () => {
    const r = new TpmReader(Buffer.from('010203', 'hex'), 'quote');
    r.take(1, 'x');
    expect(parseError(() => r.end())).toBe('quote: 2 unexpected bytes after the end');
  });
});

interface PublicFields {
  type: number; nameAlg: number; attributes: number; policy: Buffer; symAlg: number; symBits: number; symMode: number;
  scheme: Buffer; keyBits: number; exponent: number; modulus: Buffer;
}

/** A TPMT_PUBLIC of an RSA storage key, field by field (Part 2 §12.2.4), with the Azure SRK's values unless told otherwise. */
function rsaPublicArea(fields: Partial<PublicFields> = {}): Buffer {
  const f: PublicFields = {
    type: ALG.RSA, nameAlg: ALG.SHA256, attributes: 0x00030472, policy: Buffer.alloc(0), symAlg: ALG.AES, symBits: 128, symMode: ALG.CFB,
    scheme: u16(ALG.NULL), keyBits: 2048, exponent: 0, modulus: Buffer.alloc(256, 0xc5), ...fields,
  };
  return Buffer.concat([u16(f.type), u16(f.nameAlg), u32(f.attributes), tpm2b(f.policy), u16(f.symAlg), u16(f.symBits), u16(f.symMode),
    f.scheme, u16(f.keyBits), u32(f.exponent), tpm2b(f.modulus)]);
}

describe('RSA storage key public areas', () => {
  it('reads the fields of an Azure-template key, the default exponent as 65537', () => {
    const area = rsaPublicArea({ attributes: 0x000300b2, policy: Buffer.alloc(32, 7) });
    expect(parseRsaPublic(tpm2b(area))).toEqual({
      tpmtPublic: area, nameAlg: ALG.SHA256, objectAttributes: 0x000300b2, symmetric: { algorithm: ALG.AES, keyBits: 128, mode: ALG.CFB },
      keyBits: 2048, exponent: 65537, modulus: Buffer.alloc(256, 0xc5),
    });
  });

  it('takes AES-256-CFB, a scheme with its hash, and an explicit exponent', () => {
    const area = parseRsaPublic(tpm2b(rsaPublicArea({ symBits: 256, scheme: Buffer.concat([u16(0x0014), u16(ALG.SHA256)]), exponent: 3 })));
    expect(area).toMatchObject({ symmetric: { keyBits: 256 }, keyBits: 2048, exponent: 3 });
  });

  it.each([
    ['an ECC key', { type: 0x0023 }, 'TPM2B_PUBLIC: type 0x23 is not RSA'],
    ['a SHA-1 name', { nameAlg: 0x0004 }, 'TPM2B_PUBLIC: nameAlg 0x4 is not SHA-256'],
    ['a signing key', { symAlg: ALG.NULL }, 'TPM2B_PUBLIC: symmetric algorithm 0x10 is not AES (not a storage key)'],
    ['AES-192', { symBits: 192 }, 'TPM2B_PUBLIC: symmetric AES-192 mode 0x43 is not AES-128/256-CFB'],
    ['AES-128 in CBC mode', { symMode: 0x0042 }, 'TPM2B_PUBLIC: symmetric AES-128 mode 0x42 is not AES-128/256-CFB'],
    ['RSA-1024', { keyBits: 1024, modulus: Buffer.alloc(128, 1) }, 'TPM2B_PUBLIC: RSA-1024 with a 128-byte modulus is not RSA-2048'],
    ['a modulus shorter than its key size', { modulus: Buffer.alloc(255, 1) }, 'TPM2B_PUBLIC: RSA-2048 with a 255-byte modulus is not RSA-2048'],
  ])('refuses %s, saying what it found', (_what, fields, message) => {
    expect(parseError(() => parseRsaPublic(tpm2b(rsaPublicArea(fields))))).toBe(message);
  });

  it('names the key it reads in its errors', () => {
    expect(parseError(() => parseRsaPublic(tpm2b(rsaPublicArea({ type: 0x0008 })), 'endorsement key'))).toBe('endorsement key: type 0x8 is not RSA');
  });

  it.each([
    [0, 'publicArea size'], [2, 'publicArea'],
  ])('names the size field of a TPM2B_PUBLIC cut at %i bytes', (cut, field) => {
    const whole = tpm2b(rsaPublicArea());
    expect(parseError(() => parseRsaPublic(whole.subarray(0, cut)))).toMatch(new RegExp(`^TPM2B_PUBLIC: ${field} needs`));
  });

  it.each([
    [1, 'type'], [3, 'nameAlg'], [7, 'objectAttributes'], [9, 'authPolicy size'], [11, 'symmetric.algorithm'], [13, 'symmetric.keyBits'],
    [15, 'symmetric.mode'], [17, 'scheme'], [19, 'keyBits'], [23, 'exponent'], [25, 'unique size'], [100, 'unique'],
  ])('names the field a public area cut at %i bytes ends in', (cut, field) => {
    const area = rsaPublicArea();
    expect(parseError(() => parseRsaPublic(tpm2b(area.subarray(0, cut))))).toMatch(new RegExp(`^TPM2B_PUBLIC: ${field} needs`));
  });

  it('names the scheme hash of an RSA scheme cut short', () => {
    const area = rsaPublicArea({ scheme: u16(0x0014) });
    expect(parseError(() => parseRsaPublic(tpm2b(area.subarray(0, 19))))).toMatch(/^TPM2B_PUBLIC: scheme.hashAlg needs/);
  });

  it('refuses bytes after the public area, inside and outside its TPM2B', () => {
    expect(parseError(() => parseRsaPublic(Buffer.concat([tpm2b(rsaPublicArea()), Buffer.from([0])])))).toBe('TPM2B_PUBLIC: 1 unexpected bytes after the end');
    expect(parseError(() => parseRsaPublic(tpm2b(rsaPublicArea(), Buffer.from([0, 0]))))).toBe('TPM2B_PUBLIC: 2 unexpected bytes after the end');
  });

  it.each([65537, 3])('gives the key to encrypt to, with exponent %i', (publicExponent) => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent });
    const n = Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url');
    const area = parseRsaPublic(tpm2b(rsaPublicArea({ modulus: n, exponent: publicExponent === 65537 ? 0 : publicExponent })));
    expect(rsaKeyOf(area).export({ format: 'jwk' })).toEqual(publicKey.export({ format: 'jwk' }));
    const secret = randomBytes(32);
    const sealed = oaepEncrypt(rsaKeyOf(area), secret, 'IDENTITY');
    expect(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0') }, sealed)).toEqual(secret);
  });
});

/** OpenSSL's AES-CFB with a zero IV: an independent implementation of what TPM protected storage uses. */
function opensslAesCfb(key: Buffer, data: Buffer): Buffer {
  return execFileSync('openssl', ['enc', `-aes-${key.length * 8}-cfb`, '-K', key.toString('hex'), '-iv', '00'.repeat(16), '-nosalt'], { input: data });
}

describe('protected storage ciphers', () => {
  it.each([16, 32])('encrypts with AES-CFB and a zero IV as OpenSSL does, for a %i-byte key', (keyBytes) => {
    const key = randomBytes(keyBytes);
    const data = randomBytes(50);
    expect(aesCfb(key, data)).toEqual(opensslAesCfb(key, data));
  });
});

describe('KDFa arguments', () => {
  it.each([0, -8, 12, 1.5])('refuses %s bits, which is no whole number of bytes', (bits) => {
    expect(() => kdfa(Buffer.alloc(32), 'STORAGE', Buffer.alloc(0), Buffer.alloc(0), bits)).toThrow(`KDFa needs a positive whole number of bytes, not ${bits} bits`);
  });

  it('derives any whole number of bytes, one HMAC block after another', () => {
    const key = randomBytes(32);
    const long = kdfa(key, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 8 * 40);
    expect(long).toHaveLength(40);
    expect(kdfa(key, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 8)).toHaveLength(1);
  });
});

describe('TPM command marshalling', () => {
  it('marshals a command without sessions: tag 0x8001, size, code, handles, parameters', () => {
    const command = { name: 'FlushContext', code: 0x165, parameters: [u32(0x80000001)] };
    expect(marshalCommand(command).toString('hex')).toBe('8001' + '0000000e' + '00000165' + '80000001');
    expect(marshalCommand({ name: 'ReadPublic', code: 0x173, handles: [0x81010001] }).toString('hex')).toBe('8001' + '0000000e' + '00000173' + '81010001');
  });

  it('marshals one session per authorised handle: the password with its value, a policy session that ends after the command', () => {
    const command = {
      name: 'ActivateCredential', code: 0x147, handles: [0x81010100, 0x81010001],
      sessions: [{ handle: TPM_RS_PW, hmac: Buffer.from('pw') }, { handle: 0x03000000, continueSession: false }],
      parameters: [tpm2b(Buffer.from('id')), tpm2b(Buffer.from('s'))],
    };
    const bytes = marshalCommand(command);
    expect(bytes.toString('hex')).toBe('8002' + (10 + 8 + 4 + 11 + 9 + 4 + 3).toString(16).padStart(8, '0') + '00000147' + '8101010081010001'
      + '00000014' + '40000009' + '0000' + '01' + '00027077' + '03000000' + '0000' + '00' + '0000'
      + '00026964' + '000173');
    expect(PASSWORD).toEqual({ handle: 0x40000009 });
  });

  it('reads the handles a response carries before its parameters, and cuts off the authorisation area', () => {
    const command = { name: 'CreatePrimary', code: 0x131, handles: [0x4000000b], sessions: [PASSWORD], responseHandles: 1 };
    const response = Buffer.from('8002' + '0000001d' + '00000000' + '80000002' + '00000003' + 'aabbcc' + '0000010000', 'hex');
    const { handles, parameters } = unmarshalResponse(command, response, 'swtpm');
    expect(handles).toEqual([0x80000002]);
    expect(parameters.take(parameters.remaining, 'all').toString('hex')).toBe('aabbcc');
  });

  it('takes the rest of a response without sessions as its parameters', () => {
    const command = { name: 'ReadClock', code: 0x181 };
    const { handles, parameters } = unmarshalResponse(command, Buffer.from('8001' + '0000000d' + '00000000' + 'aabbcc', 'hex'), 'swtpm');
    expect(handles).toEqual([]);
    expect(parameters.remaining).toBe(3);
  });

  it('turns a response code into a TpmCommandError naming the command, the transport and the code in words', () => {
    let error: unknown;
    try {
      unmarshalResponse({ name: 'Quote', code: 0x158 }, Buffer.from('80010000000a00000921', 'hex'), 'swtpm 127.0.0.1:2321');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TpmCommandError);
    expect(error).toMatchObject({ command: 'Quote', responseCode: 0x921 });
    expect((error as Error).message).toMatch(/^TPM2_Quote failed on swtpm 127\.0\.0\.1:2321: TPM_RC_LOCKOUT \(0x921\)/);
  });

  it.each([
    ['80', 'tag'], ['800100', 'responseSize'], ['80010000000a0000', 'responseCode'],
  ])('names the header field a response %s ends in', (hex, field) => {
    expect(parseError(() => unmarshalResponse({ name: 'ReadClock', code: 0x181 }, Buffer.from(hex, 'hex'), 'swtpm')))
      .toMatch(new RegExp(`^TPM2_ReadClock response: ${field} needs`));
  });

  it('names the handle, the parameter size or the parameters a response with sessions ends in', () => {
    const command = { name: 'StartAuthSession', code: 0x176, responseHandles: 1 };
    const cut = (hex: string) => parseError(() => unmarshalResponse(command, Buffer.from(`8002${'00000010'}${'00000000'}${hex}`, 'hex'), 'swtpm'));
    expect(cut('0300')).toMatch(/^TPM2_StartAuthSession response: handle 0 needs 4 bytes/);
    expect(cut('030000000000')).toMatch(/^TPM2_StartAuthSession response: parameterSize needs 4 bytes/);
    expect(cut('0300000000000005ab')).toMatch(/^TPM2_StartAuthSession response: parameters needs 5 bytes/);
  });

  it('names the command in errors about its parameters', () => {
    const { parameters } = unmarshalResponse({ name: 'ReadClock', code: 0x181 }, Buffer.from('80010000000a00000000', 'hex'), 'swtpm');
    expect(parseError(() => parameters.u32('time'))).toMatch(/^TPM2_ReadClock parameters: time needs 4 bytes/);
    const withSessions = unmarshalResponse({ name: 'Quote', code: 0x158 }, Buffer.from('80020000000e0000000000000000', 'hex'), 'swtpm');
    expect(parseError(() => withSessions.parameters.u16('quoted size'))).toMatch(/^TPM2_Quote parameters: quoted size needs 2 bytes/);
  });
});
