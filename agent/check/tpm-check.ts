import { AgentError, describeError } from '../lib/errors.js';
import { readSharedTpm, type SharedTpmReport } from '../control/shared-tpm.js';
import { EK_HANDLE, IDENTITY_KEY_HANDLE } from '../tpm/identity.js';
import { registrationIdFromEndorsementKey } from '../tpm/registration-id.js';
import type { TpmReport } from '../tpm/tpm-report.js';
import { formatTransport, parseTransport } from '../config/transport-spec.js';
import { fail, pass, warn, type CheckResult } from './result.js';

export interface TpmCheckOptions {
  /** The transport string, from IOT_AGENT_TPM or the config. */
  transport: string;
  /** Where the transport string came from, for the message. */
  origin: 'tpm.transport' | 'IOT_AGENT_TPM';
  /** Deadline per TPM command: the check reads a few handles, one after the other. */
  commandTimeoutMs: number;
  registrationId: string | undefined;
  /** Where a running daemon keeps its lock and control socket. */
  runtimeDir: string;
  /** How the report is read; the daemon reads its own TPM in-process. Default: readSharedTpm. */
  read?: (spec: ReturnType<typeof parseTransport>) => Promise<SharedTpmReport>;
}

export type TpmCheckResults = [tpm: CheckResult, identity: CheckResult];

const hex = (handle: number) => `0x${handle.toString(16)}`;

/**
 * Looks at the TPM without changing it: reads the EK and the identity key at their
 * persistent handles. Unlike `tpm info`, it never creates a key: a check must not write
 * to a TPM a technician is diagnosing. While the daemon holds the TPM, it reads them for
 * the check (swtpm serves one connection at a time), and the message says so.
 */
export async function checkTpm(options: TpmCheckOptions): Promise<TpmCheckResults> {
  let spec;
  try {
    spec = parseTransport(options.transport);
  } catch (err) {
    return [
      fail('tpm', `${describeError(err)} (from ${options.origin})`, err instanceof AgentError ? err.hint : undefined),
      notChecked('the TPM transport is invalid'),
    ];
  }
  // Say where the transport came from when it is not the config: an exported variable is easy to forget.
  const name = options.origin === 'tpm.transport' ? formatTransport(spec) : `${formatTransport(spec)} from ${options.origin}`;
  const read = options.read ?? ((s) => readSharedTpm({ runtimeDir: options.runtimeDir, spec: s, commandTimeoutMs: options.commandTimeoutMs }));
  let shared: SharedTpmReport;
  try {
    shared = await read(spec);
  } catch (err) {
    // Only the daemon's answer can fail as a whole: a direct read records each failure.
    const tpm = fail('tpm', `TPM unreachable (${name}, via the running daemon): ${describeError(err)}`,
      'the daemon could not read its TPM: `iot-agent status` shows why');
    return [tpm, notChecked('the TPM could not be read (see tpm)')];
  }
  return describeReport(shared.via === 'direct' ? name : `${name}, via the running daemon, pid ${shared.via.daemonPid}`,
    shared.report, options.registrationId, options.origin);
}

export function describeReport(transport: string, report: TpmReport, registrationId: string | undefined,
  origin: TpmCheckOptions['origin'] = 'tpm.transport'): TpmCheckResults {
  const ek = report.endorsementKey;
  const tpm = ek.ok ? describeEndorsementKey(transport, ek.value, registrationId) : describeTpmError(transport, ek, origin);
  if (tpm.status === 'fail') return [tpm, notChecked('the TPM could not be read (see tpm)')];
  const key = report.identityKey;
  const identity = key.ok ? describeIdentityKey(key.value)
    : fail('identity', `cannot read ${hex(IDENTITY_KEY_HANDLE)}: ${key.error}`, key.hint);
  return [tpm, identity];
}

/** `ek`: base64 of the EK's TPM2B_PUBLIC, null when the handle is empty. */
export function describeEndorsementKey(transport: string, ek: string | null, registrationId: string | undefined): CheckResult {
  if (ek === null) {
    return warn('tpm', `TPM reachable (${transport}), but no EK at ${hex(EK_HANDLE)}`,
      'run `iot-agent tpm info` (it creates and persists the EK and SRK) or provision the device');
  }
  const id = registrationId !== undefined ? `${registrationId} (configured)` : registrationIdFromEndorsementKey(Buffer.from(ek, 'base64'));
  return pass('tpm', `TPM reachable (${transport}): EK present at ${hex(EK_HANDLE)}, registration id ${id}`);
}

export function describeIdentityKey(key: { type: string } | null): CheckResult {
  if (key === null) {
    return warn('identity', `no identity key at ${hex(IDENTITY_KEY_HANDLE)}: not provisioned yet`,
      'the agent provisions at its first start (needs provisioning.idScope and a DPS enrollment), or run `iot-agent provision`');
  }
  // DPS hands out an HMAC key: anything else at this handle was put there by other software.
  if (key.type !== 'KEYEDHASH') {
    return warn('identity', `the key at ${hex(IDENTITY_KEY_HANDLE)} is not an HMAC key (${key.type}): not one DPS issued`,
      'another program uses this handle; re-provisioning replaces the key');
  }
  return pass('identity', `identity key present at ${hex(IDENTITY_KEY_HANDLE)}`);
}

export function describeTpmError(transport: string, failure: { error: string; refused: boolean; hint?: string },
  origin: TpmCheckOptions['origin'] = 'tpm.transport'): CheckResult {
  if (failure.refused) {
    return fail('tpm', `TPM at ${transport} answers but refused to read ${hex(EK_HANDLE)}: ${failure.error}`,
      'the TPM may be in lockout or failure mode; `iot-agent tpm info` shows more');
  }
  return fail('tpm', `TPM unreachable (${transport}): ${failure.error}`,
    failure.hint ?? `check ${origin === 'tpm.transport' ? 'tpm.transport in the config' : origin} and that the TPM (or swtpm) runs`);
}

function notChecked(why: string): CheckResult {
  return fail('identity', `not checked: ${why}`, 'fix the tpm check first');
}
