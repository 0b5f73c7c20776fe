import { AgentError, describeError } from '../errors.js';
import { EK_HANDLE, IDENTITY_KEY_HANDLE, readPersistent } from '../tpm/identity.js';
import { openTransport } from '../tpm/open-transport.js';
import { registrationIdFromEndorsementKey } from '../tpm/registration-id.js';
import { TpmCommandError, TpmClient } from '../tpm/tpm-client.js';
import { formatTransport, parseTransport } from '../tpm/transport-spec.js';
import { TPM_ALG_ID, type TPMT_PUBLIC } from '../tpm/tss-lib.js';
import { fail, pass, warn, type CheckResult } from './result.js';

export interface TpmCheckOptions {
  /** The transport string, from IOT_AGENT_TPM or the config. */
  transport: string;
  /** Where the transport string came from, for the message. */
  origin: 'tpm.transport' | 'IOT_AGENT_TPM';
  /** Deadline per TPM command: the check reads two handles, one after the other. */
  commandTimeoutMs: number;
  registrationId: string | undefined;
}

export type TpmCheckResults = [tpm: CheckResult, identity: CheckResult];

const hex = (handle: number) => `0x${handle.toString(16)}`;

/**
 * Looks at the TPM without changing it: reads the EK and the identity key at their
 * persistent handles. Unlike `tpm info`, it never creates a key: a check must not write
 * to a TPM a technician is diagnosing.
 */
export async function checkTpm(options: TpmCheckOptions): Promise<TpmCheckResults> {
  let spec;
  try {
    spec = parseTransport(options.transport);
  } catch (err) {
    return [
      fail('tpm', `${describeError(err)} (from ${options.origin})`, hintOf(err)),
      notChecked('the TPM transport is invalid'),
    ];
  }
  // Say where the transport came from when it is not the config: an exported variable is easy to forget.
  const name = options.origin === 'tpm.transport' ? formatTransport(spec) : `${formatTransport(spec)} from ${options.origin}`;
  const client = new TpmClient(openTransport(spec, { commandTimeoutMs: options.commandTimeoutMs }));
  try {
    const tpm = await readPersistent(client, EK_HANDLE).then(
      (ek) => describeEndorsementKey(name, ek, options.registrationId),
      (err: unknown) => describeTpmError(name, err, options.origin),
    );
    if (tpm.status === 'fail') return [tpm, notChecked('the TPM could not be read (see tpm)')];
    const identity = await readPersistent(client, IDENTITY_KEY_HANDLE).then(describeIdentityKey, (err: unknown) =>
      fail('identity', `cannot read ${hex(IDENTITY_KEY_HANDLE)}: ${describeError(err)}`, hintOf(err)));
    return [tpm, identity];
  } finally {
    await client.close().catch(() => undefined);
  }
}

export function describeEndorsementKey(transport: string, ek: TPMT_PUBLIC | undefined, registrationId: string | undefined): CheckResult {
  if (ek === undefined) {
    return warn('tpm', `TPM reachable (${transport}), but no EK at ${hex(EK_HANDLE)}`,
      'run `iot-agent tpm info` (it creates and persists the EK and SRK) or provision the device');
  }
  const id = registrationId !== undefined ? `${registrationId} (configured)` : registrationIdFromEndorsementKey(ek.asTpm2B());
  return pass('tpm', `TPM reachable (${transport}): EK present at ${hex(EK_HANDLE)}, registration id ${id}`);
}

export function describeIdentityKey(key: TPMT_PUBLIC | undefined): CheckResult {
  if (key === undefined) {
    return warn('identity', `no identity key at ${hex(IDENTITY_KEY_HANDLE)}: not provisioned yet`,
      'the agent provisions at its first start (needs provisioning.idScope and a DPS enrollment), or run `iot-agent provision`');
  }
  // DPS hands out an HMAC key: anything else at this handle was put there by other software.
  if (key.type !== TPM_ALG_ID.KEYEDHASH) {
    return warn('identity', `the key at ${hex(IDENTITY_KEY_HANDLE)} is not an HMAC key (${TPM_ALG_ID[key.type] ?? key.type}): not one DPS issued`,
      'another program uses this handle; re-provisioning replaces the key');
  }
  return pass('identity', `identity key present at ${hex(IDENTITY_KEY_HANDLE)}`);
}

export function describeTpmError(transport: string, err: unknown, origin: TpmCheckOptions['origin'] = 'tpm.transport'): CheckResult {
  if (err instanceof TpmCommandError) {
    return fail('tpm', `TPM at ${transport} answers but refused to read ${hex(EK_HANDLE)}: ${err.message}`,
      'the TPM may be in lockout or failure mode; `iot-agent tpm info` shows more');
  }
  return fail('tpm', `TPM unreachable (${transport}): ${describeError(err)}`,
    hintOf(err) ?? `check ${origin === 'tpm.transport' ? 'tpm.transport in the config' : origin} and that the TPM (or swtpm) runs`);
}

function notChecked(why: string): CheckResult {
  return fail('identity', `not checked: ${why}`, 'fix the tpm check first');
}

function hintOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof AgentError && e.hint) return e.hint;
  }
  return undefined;
}
