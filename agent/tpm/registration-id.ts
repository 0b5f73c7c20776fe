import { createHash } from 'node:crypto';

const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32, lowercase, without '=' padding. */
export function base32Lower(data: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The registration id the Azure SDK derives for a TPM device: base32 of SHA-256 over the
 * EK's TPM2B_PUBLIC bytes (size prefix included), lowercase, padding removed.
 */
export function registrationIdFromEndorsementKey(ekTpm2bPublic: Buffer): string {
  return base32Lower(createHash('sha256').update(ekTpm2bPublic).digest());
}
