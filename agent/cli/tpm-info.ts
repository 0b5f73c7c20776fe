import { loadConfig } from '../config.js';
import { AgentError, ExitCode } from '../lib/errors.js';
import { readSharedTpm } from '../control/shared-tpm.js';
import { DAEMON_LOCK_OWNER, TpmLock } from '../tpm/tpm-lock.js';
import type { RuntimeOverrides } from '../runtime-overrides.js';
import { ensureIdentity } from '../tpm/identity.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { readTpmFacts, type TpmFacts } from '../tpm/tpm-facts.js';
import { reportRegistrationId, type Reading } from '../tpm/tpm-report.js';
import { checkRegistrationId } from '../config/registration-id-check.js';
import { formatTransport, parseTransport, type TransportSpec } from '../config/transport-spec.js';

export interface TpmInfoOptions {
  config?: string;
  tpm?: string;
  registrationId?: string;
  json?: boolean;
}

interface TpmInfo extends TpmFacts {
  transport: string;
  registrationId: string;
  endorsementKey: string;
  storageRootKey: string;
  identityKeyPresent: boolean;
  keysCreated: string[];
  /** The daemon's pid when it read the TPM for us, null when this command opened it. */
  viaDaemonPid: number | null;
}

/**
 * `iot-agent tpm info`: what a technician needs to enroll the device, and what TPM it has.
 * While the daemon holds the TPM it reads it for us; otherwise the TPM is opened here, and
 * a missing EK or SRK is created and persisted (what enrolling needs).
 */
export async function tpmInfo(options: TpmInfoOptions, overrides: RuntimeOverrides): Promise<void> {
  const config = await loadConfig(options.config);
  const spec = parseTransport(options.tpm ?? overrides.tpmTransport ?? config.tpm.transport);
  const registrationId = options.registrationId ?? config.provisioning.registrationId;
  const holder = await TpmLock.holder(config.runtimeDir);
  const info = holder?.owner === DAEMON_LOCK_OWNER
    ? await viaDaemon(config.runtimeDir, spec, registrationId) ?? await directly(spec, registrationId)
    : await directly(spec, registrationId);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return;
  }
  const rows: [string, string][] = [
    ['TPM', `${info.manufacturerName} (${info.manufacturer})${info.vendorString ? ` ${info.vendorString}` : ''}, firmware ${info.firmwareVersion}`],
    ['Spec', info.specLevel],
    ['Transport', `${info.transport}${info.viaDaemonPid === null ? '' : `, via the running daemon (pid ${info.viaDaemonPid})`}`],
    ['Registration id', info.registrationId],
    ['Identity key', info.identityKeyPresent ? 'present (0x81000100)' : 'absent: the device has not been provisioned'],
    ...(info.keysCreated.length ? [['Created now', `${info.keysCreated.join(' and ')} (persisted)`] as [string, string]] : []),
    ['Endorsement key', info.endorsementKey],
    ['Storage root key', info.storageRootKey],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join(''));
}

async function directly(spec: TransportSpec, registrationId: string | undefined): Promise<TpmInfo> {
  const client = new TpmClient(openTransport(spec));
  try {
    const identity = await ensureIdentity(client, { registrationId });
    const facts = await readTpmFacts(client);
    return {
      transport: formatTransport(spec),
      registrationId: identity.registrationId,
      endorsementKey: identity.endorsementKey.toString('base64'),
      storageRootKey: identity.storageRootKey.toString('base64'),
      identityKeyPresent: identity.identityKeyPresent,
      keysCreated: identity.created,
      viaDaemonPid: null,
      ...facts,
    };
  } finally {
    await client.close();
  }
}

/** The daemon's reading, or undefined when it reads another transport than the one asked for. */
async function viaDaemon(runtimeDir: string, spec: TransportSpec, registrationId: string | undefined): Promise<TpmInfo | undefined> {
  const { report, via } = await readSharedTpm({ runtimeDir, spec });
  if (via === 'direct') return undefined;
  const value = <T>(what: string, reading: Reading<T>): T => {
    if (reading.ok) return reading.value;
    throw new AgentError(`the running daemon (pid ${via.daemonPid}) could not read the ${what}: ${reading.error}`, {
      hint: reading.hint, exitCode: reading.refused ? ExitCode.failure : ExitCode.tpmUnavailable,
    });
  };
  const endorsementKey = value('endorsement key', report.endorsementKey);
  const storageRootKey = value('storage root key', report.storageRootKey);
  if (endorsementKey === null || storageRootKey === null) {
    // The daemon persists both before anything else; a gap means someone removed them under it.
    throw new AgentError(`the TPM has no ${endorsementKey === null ? 'EK' : 'SRK'} although the daemon holds it`, {
      hint: 'restart the iot-agent service: it creates the keys again',
    });
  }
  return {
    transport: report.transport,
    registrationId: checkRegistrationId(reportRegistrationId(report, registrationId)!),
    endorsementKey,
    storageRootKey,
    identityKeyPresent: value('identity key', report.identityKey) !== null,
    keysCreated: [],
    viaDaemonPid: via.daemonPid,
    ...value('TPM properties', report.facts),
  };
}
