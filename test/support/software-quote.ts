import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { parseAttestationKey, type AttestationKeyPublic } from '../../agent/attestation/attestation-key.js';
import { appendEvent, emptyLog, sha256Hex, type EventLog } from '../../agent/attestation/event-log.js';
import { extendPcr, marshalSelection, pcrDigest } from '../../agent/attestation/pcr-selection.js';
import { tpm2b, u16, u32 } from '../../agent/tpm/wire/tpm-bytes.js';

/**
 * Quotes made in software, for unit tests of the verifier's checks: an ECC P-256 key with the
 * AK's public area, and TPMS_ATTEST structures laid out as TPM 2.0 Part 2 §10.12 has them,
 * signed the way a TPM signs with ECDSA-SHA256. Tests that need a real TPM use swtpm.
 */
export class SoftwareAttestationKey {
  readonly public: AttestationKeyPublic;

  private constructor(private readonly privateKey: KeyObject, tpm2bPublic: Buffer) {
    this.public = parseAttestationKey(tpm2bPublic);
  }

  static create(): SoftwareAttestationKey {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const point = (c: string | undefined) => tpm2b(Buffer.from(c ?? '', 'base64url'));
    const tpmtPublic = Buffer.concat([
      u16(0x0023), u16(0x000b), u32(0x00050472), tpm2b(), u16(0x0010), u16(0x0018), u16(0x000b), u16(0x0003), u16(0x0010), point(jwk.x), point(jwk.y),
    ]);
    return new SoftwareAttestationKey(privateKey, tpm2b(tpmtPublic));
  }

  /** A TPMS_ATTEST of type quote and its TPMT_SIGNATURE. */
  quote(options: { nonce: Buffer; pcrs: readonly number[]; values: ReadonlyMap<number, Buffer>; resetCount?: number }): { attest: Buffer; signature: Buffer } {
    const clock = Buffer.alloc(8);
    clock.writeBigUInt64BE(123456n);
    const firmware = Buffer.alloc(8);
    firmware.writeBigUInt64BE(0x2019102300163636n);
    const attest = Buffer.concat([
      u32(0xff544347), u16(0x8018), tpm2b(this.public.name), tpm2b(options.nonce),
      clock, u32(options.resetCount ?? 1), u32(0), Buffer.from([1]), firmware,
      marshalSelection(options.pcrs), tpm2b(pcrDigest(options.pcrs.map((pcr) => options.values.get(pcr)!))),
    ]);
    const raw = sign('sha256', attest, { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    return { attest, signature: Buffer.concat([u16(0x0018), u16(0x000b), tpm2b(raw.subarray(0, 32)), tpm2b(raw.subarray(32))]) };
  }
}

/** An event log of extended events (and gaps, for `gaps` indices) and the PCR value it replays to. */
export function logOf(datas: readonly string[], options: { pcr?: number; resetCount?: number; gaps?: number[] } = {}): { log: EventLog; pcr: Buffer } {
  let log = emptyLog(options.pcr ?? 13, 'boot-id', options.resetCount ?? 1);
  let pcr: Buffer = Buffer.alloc(32);
  datas.forEach((data, i) => {
    if (options.gaps?.includes(i)) {
      log = appendEvent(log, { at: '2024-01-01T00:00:00.000Z', extended: false, reason: 'TPM unavailable: test', data });
    } else {
      log = appendEvent(log, { at: '2024-01-01T00:00:00.000Z', extended: true, sha256: sha256Hex(data), data });
      pcr = extendPcr(pcr, Buffer.from(sha256Hex(data), 'hex'));
    }
  });
  return { log, pcr };
}
