import { AgentError, describeError } from '../lib/errors.js';
import { EK_HANDLE, IDENTITY_KEY_HANDLE, readPersistent, SRK_HANDLE } from './identity.js';
import { registrationIdFromEndorsementKey } from './registration-id.js';
import { TpmCommandError, type TpmClient } from './tpm-client.js';
import { readTpmFacts, type TpmFacts } from './tpm-facts.js';
import { TPM_ALG_ID } from './tss-lib.js';

/** One read from the TPM: its value, or what went wrong in words that survive a JSON round trip. */
export type Reading<T> =
  | { ok: true; value: T }
  | { ok: false; error: string; /** The TPM answered and refused (a response code), rather than not answering. */ refused: boolean; hint?: string };

/**
 * What the TPM holds, read without changing anything (no key is created): the public parts
 * of the EK, SRK and identity key at the Azure SDK's handles, and the fixed properties.
 * Nothing private: a TPM never hands out private keys. Plain data, so the daemon can send
 * it to the CLI over its control socket.
 */
export interface TpmReport {
  /** The transport string, e.g. swtpm:host=127.0.0.1,port=2321. */
  transport: string;
  /** base64 of the EK's TPM2B_PUBLIC, null when the handle is empty. */
  endorsementKey: Reading<string | null>;
  storageRootKey: Reading<string | null>;
  /** The identity key's algorithm (KEYEDHASH for the HMAC key DPS issues), null when absent. */
  identityKey: Reading<{ type: string } | null>;
  facts: Reading<TpmFacts>;
}

/**
 * Reads the report one command at a time. When the TPM does not answer the first read, the
 * others are not tried: each would wait out the same deadline.
 */
export async function readTpmReport(client: TpmClient, transport: string): Promise<TpmReport> {
  const endorsementKey = await reading(async () => (await readPersistent(client, EK_HANDLE))?.asTpm2B().toString('base64') ?? null);
  if (!endorsementKey.ok && !endorsementKey.refused) {
    const skipped = { ok: false as const, error: 'not read: the TPM did not answer (see the endorsement key)', refused: false };
    return { transport, endorsementKey, storageRootKey: skipped, identityKey: skipped, facts: skipped };
  }
  const storageRootKey = await reading(async () => (await readPersistent(client, SRK_HANDLE))?.asTpm2B().toString('base64') ?? null);
  const identityKey = await reading(async () => {
    const key = await readPersistent(client, IDENTITY_KEY_HANDLE);
    // tss.js parses only the key types it names (it refuses the public area of any other).
    return key === undefined ? null : { type: TPM_ALG_ID[key.type] };
  });
  const facts = await reading(() => readTpmFacts(client));
  return { transport, endorsementKey, storageRootKey, identityKey, facts };
}

/** The registration id the report's EK gives, unless one is configured. */
export function reportRegistrationId(report: TpmReport, configured: string | undefined): string | undefined {
  if (configured !== undefined) return configured;
  const ek = report.endorsementKey;
  return ek.ok && ek.value !== null ? registrationIdFromEndorsementKey(Buffer.from(ek.value, 'base64')) : undefined;
}

async function reading<T>(read: () => Promise<T>): Promise<Reading<T>> {
  try {
    return { ok: true, value: await read() };
  } catch (err) {
    // The TPM client fails with its own errors, which carry their hints themselves.
    return { ok: false, error: describeError(err), refused: err instanceof TpmCommandError, hint: err instanceof AgentError ? err.hint : undefined };
  }
}
