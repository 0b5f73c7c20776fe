import { createHmac } from 'node:crypto';
import { u32 } from './tpm-bytes.js';

/**
 * KDFa with HMAC-SHA256 (TPM 2.0 Part 1 §11.4.10.2, SP 800-108 counter mode):
 * the concatenation of HMAC(key, u32(i) ‖ label ‖ 0x00 ‖ contextU ‖ contextV ‖ u32(bits))
 * for i = 1, 2, …, cut to `bits`. The label is given without its terminating zero.
 */
export function kdfa(key: Buffer, label: string, contextU: Buffer, contextV: Buffer, bits: number): Buffer {
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0) throw new RangeError(`KDFa needs a positive whole number of bytes, not ${bits} bits`);
  const bytes = bits / 8;
  const blocks: Buffer[] = [];
  const fixed = Buffer.concat([Buffer.from(label, 'latin1'), Buffer.from([0]), contextU, contextV, u32(bits)]);
  for (let counter = 1, produced = 0; produced < bytes; counter++, produced += 32) {
    blocks.push(createHmac('sha256', key).update(u32(counter)).update(fixed).digest());
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}
