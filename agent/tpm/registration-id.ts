import { createHash } from 'node:crypto';
import { AgentError, ExitCode } from '../errors.js';

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

/**
 * DPS accepts up to 128 characters: lowercase letters, digits and - . _ :, with no special
 * character at the start or the end (DPS REST reference, Register Device).
 */
export function checkRegistrationId(id: string): string {
  if (!/^[a-z0-9]([a-z0-9\-._:]{0,126}[a-z0-9])?$/.test(id)) {
    throw new AgentError(`invalid registration id ${JSON.stringify(id)}`, {
      hint: "use 1 to 128 characters of a-z, 0-9, '-', '.', '_', ':', starting and ending with a letter or digit",
      exitCode: ExitCode.usage,
    });
  }
  return id;
}
