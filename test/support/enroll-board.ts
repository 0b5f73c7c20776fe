import { ensureIdentity } from '../../agent/tpm/identity.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import type { Dps } from '../cloud/dps/dps.js';
import type { EnrollmentRequest } from '../cloud/dps/enrollment.js';
import { writeAgentConfig, type AgentFiles } from './agent-process.js';
import { clientFor } from './tpm.js';

/** What a DPS enrollment needs of a board, as `iot-agent tpm info --json` prints it. */
export interface BoardIdentity {
  registrationId: string;
  /** Base64 of the EK's TPM2B_PUBLIC. */
  endorsementKey: string;
}

/**
 * A DPS a board enrolls with: the local one (a `Dps`), or one reached through the
 * provisioning service SDK (an `enroll` that calls it, for a cloud in another process).
 */
export type EnrollTarget = Pick<Dps, 'idScope' | 'host' | 'caCertPath'> & { enroll(enrollment: EnrollmentRequest): unknown };

/** The config's own settings; DPS's ID scope, host and CA come from the target. */
export type BoardConfig = Omit<Parameters<typeof writeAgentConfig>[1], 'idScope' | 'globalEndpoint' | 'caFile' | 'transport'>;

export interface EnrolledBoard extends BoardIdentity {
  /** An agent config in `dir` for this board: its transport, the target's DPS and CA, and `settings`. */
  writeConfig(dir: string, settings?: BoardConfig): AgentFiles;
}

/** The identity through an open client, which stays open for the caller. */
export async function readBoardIdentity(tpm: TpmClient): Promise<BoardIdentity> {
  const identity = await ensureIdentity(tpm);
  return { registrationId: identity.registrationId, endorsementKey: identity.endorsementKey.toString('base64') };
}

/**
 * Enrolls a board's TPM with `target` as an individual enrollment for `deviceId`. The EK is
 * read through `transport` on a client of its own (closed again: swtpm serves one connection
 * at a time) unless `identity` gives it.
 */
export async function enrollBoard(target: EnrollTarget, options: {
  deviceId: string;
  /** The board's TPM transport string, e.g. `swtpm:host=…,port=…` or `device:/dev/pts/3`. */
  transport: string;
  /** The enrollment's IoT hub; without one, DPS allocates among its linked hubs. */
  hub?: string;
  /** The identity as already read (an open client through readBoardIdentity, or `tpm info`). */
  identity?: BoardIdentity;
}): Promise<EnrolledBoard> {
  const identity = options.identity ?? await readOwnClient(options.transport);
  await target.enroll({
    registrationId: identity.registrationId, deviceId: options.deviceId, ...(options.hub ? { iotHubs: [options.hub] } : {}),
    attestation: { type: 'tpm', tpm: { endorsementKey: identity.endorsementKey } },
  });
  return {
    ...identity,
    writeConfig: (dir, settings = {}) => writeAgentConfig(dir, {
      idScope: target.idScope, globalEndpoint: target.host, transport: options.transport, caFile: target.caCertPath, ...settings,
    }),
  };
}

async function readOwnClient(transport: string): Promise<BoardIdentity> {
  const tpm = clientFor(transport);
  return readBoardIdentity(tpm).finally(() => tpm.close());
}
