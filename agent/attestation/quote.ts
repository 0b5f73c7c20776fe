import { verify } from 'node:crypto';
import { TpmParseError, TpmReader } from '../tpm/wire/tpm-bytes.js';
import { ALG_ID, type AttestationKeyPublic } from './attestation-key.js';
import { readSelection } from './pcr-selection.js';

/** TPM_GENERATED_VALUE: every structure the TPM signs with a restricted key starts with it (Part 2 §6.2). */
const TPM_GENERATED_VALUE = 0xff544347;
const TPM_ST_ATTEST_QUOTE = 0x8018;

/** TPMS_CLOCK_INFO (Part 2 §10.11.1): resetCount grows at every TPM Reset, restartCount at every Restart or Resume. */
export interface ClockInfo {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
}

export function readClockInfo(r: TpmReader): ClockInfo {
  const clock = r.take(8, 'clock').readBigUInt64BE(0);
  return { clock, resetCount: r.u32('resetCount'), restartCount: r.u32('restartCount'), safe: r.take(1, 'safe')[0] === 1 };
}

/** A TPMS_ATTEST of type quote (Part 2 §10.12.12), as the verifier reads it. */
export interface QuoteInfo {
  qualifiedSigner: Buffer;
  /** The caller's qualifying data: the verifier's nonce. */
  extraData: Buffer;
  clockInfo: ClockInfo;
  firmwareVersion: bigint;
  pcrs: number[];
  pcrDigest: Buffer;
}

/** Parses the quoted TPMS_ATTEST; anything that is not a TPM-generated quote is a TpmParseError. */
export function parseQuote(attest: Buffer): QuoteInfo {
  const r = new TpmReader(attest, 'quote');
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) throw new TpmParseError(`quote: magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE`);
  const type = r.u16('type');
  if (type !== TPM_ST_ATTEST_QUOTE) throw new TpmParseError(`quote: structure type 0x${type.toString(16)} is not a quote`);
  const qualifiedSigner = Buffer.from(r.sized('qualifiedSigner'));
  const extraData = Buffer.from(r.sized('extraData'));
  const clockInfo = readClockInfo(r);
  const firmwareVersion = r.take(8, 'firmwareVersion').readBigUInt64BE(0);
  const pcrs = readSelection(r);
  const pcrDigest = Buffer.from(r.sized('pcrDigest'));
  r.end();
  return { qualifiedSigner, extraData, clockInfo, firmwareVersion, pcrs, pcrDigest };
}

/**
 * Whether `signature` (TPMT_SIGNATURE) is the AK's signature over `attest`. A malformed
 * signature, or one with another algorithm or hash than the AK's scheme, is not valid.
 */
export function verifyQuoteSignature(ak: AttestationKeyPublic, attest: Buffer, signature: Buffer): boolean {
  try {
    const r = new TpmReader(signature, 'signature');
    const sigAlg = r.u16('sigAlg');
    if (r.u16('hash') !== ALG_ID.SHA256) return false;
    if (ak.algorithm === 'ecdsa-p256-sha256' && sigAlg === ALG_ID.ECDSA) {
      const rValue = r.sized('signatureR');
      const sValue = r.sized('signatureS');
      r.end();
      if (rValue.length > 32 || sValue.length > 32) return false;
      const raw = Buffer.concat([leftPad(rValue, 32), leftPad(sValue, 32)]);
      return verify('sha256', attest, { key: ak.key, dsaEncoding: 'ieee-p1363' }, raw);
    }
    if (ak.algorithm === 'rsassa-2048-sha256' && sigAlg === ALG_ID.RSASSA) {
      const sig = r.sized('sig');
      r.end();
      return verify('sha256', attest, ak.key, sig);
    }
    return false;
  } catch (err) {
    if (err instanceof TpmParseError) return false;
    throw err;
  }
}

function leftPad(value: Buffer, size: number): Buffer {
  return value.length === size ? value : Buffer.concat([Buffer.alloc(size - value.length), value]);
}
