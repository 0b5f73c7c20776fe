import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { AgentError, ExitCode } from '../../agent/lib/errors.js';
import { checkRegistrationId } from '../../agent/config/registration-id-check.js';
import { base32Lower, registrationIdFromEndorsementKey } from '../../agent/tpm/registration-id.js';

/** The encoder the Azure SDK uses, as an independent reference. */
function sdkBase32(data: Buffer): string {
  const base32Encode = createRequire(import.meta.url)('base32-encode') as (data: Buffer, variant: string) => string;
  return base32Encode(data, 'RFC4648').toLowerCase().replace(/=/g, '');
}

describe('registration id', () => {
  it('matches the RFC 4648 test vectors in lowercase without padding', () => {
    const vectors: [string, string][] = [['', ''], ['f', 'my'], ['fo', 'mzxq'], ['foo', 'mzxw6'], ['foob', 'mzxw6yq'],
      ['fooba', 'mzxw6ytb'], ['foobar', 'mzxw6ytboi']];
    for (const [input, output] of vectors) expect(base32Lower(Buffer.from(input))).toBe(output);
  });

  it('agrees with the SDK base32 encoder on random input', () => {
    for (let i = 0; i < 200; i++) {
      const data = randomBytes(i % 40);
      expect(base32Lower(data)).toBe(sdkBase32(data));
    }
  });

  it('hashes the EK TPM2B_PUBLIC with SHA-256', () => {
    const ek = randomBytes(314);
    const digest = createHash('sha256').update(ek).digest();
    expect(registrationIdFromEndorsementKey(ek)).toBe(base32Lower(digest));
    expect(registrationIdFromEndorsementKey(ek)).toHaveLength(52);
  });

  it.each(['device-01', 'a', 'x.y_z:1-0', 'a'.repeat(128)])('accepts the configured id %j', (id) => {
    expect(checkRegistrationId(id)).toBe(id);
  });

  const invalid = ['', 'Device', 'with space', 'ends.', 'ends_', 'ends-', 'ends:', '-starts', '.starts', '_starts', ':starts', '-',
    'a'.repeat(129), 'ümlaut', 'semi;colon'];
  it.each(invalid)('rejects the configured id %j (no special character at the start or the end)', (id) => {
    expect(() => checkRegistrationId(id)).toThrow(/invalid registration id/);
  });

  it('says what a registration id may hold, as a usage error', () => {
    let error: unknown;
    try {
      checkRegistrationId('Board 7');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AgentError);
    expect(error).toMatchObject({
      message: 'invalid registration id "Board 7"',
      hint: "use 1 to 128 characters of a-z, 0-9, '-', '.', '_', ':', starting and ending with a letter or digit",
      exitCode: ExitCode.usage,
    });
  });
});
