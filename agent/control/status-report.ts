import path from 'node:path';
import type { AgentConfig } from '../config.js';
import { readAssignment } from '../state/assignment-store.js';
import { inspectQueue, queueFacts } from '../telemetry/disk-queue.js';
import { askDaemon, DaemonAbsentError, payloadOf } from './client.js';
import type { DaemonStatus } from './protocol.js';

/** `status --json`: the daemon's status while it runs; what the state files say otherwise. */
export type StatusReport = { daemon: 'running' } & DaemonStatus
  | {
    daemon: 'not running';
    state: 'stopped';
    reason: string | undefined;
    since: string | undefined;
    registrationId: string | undefined;
    deviceId: string | undefined;
    assignedHub: string | undefined;
    idScope: string | undefined;
    /** Nothing is in use, tried or measured while the daemon does not run. */
    hubProtocol: null;
    hubProtocolReason: null;
    proxy: null;
    lastError: null;
    consecutiveFailures: null;
    nextRetryAt: null;
    dpsHeldOffUntil: null;
    operatorMustAct: null;
    telemetryQueue: DaemonStatus['telemetryQueue'];
    clockOffsetMs: null;
  };

/** The daemon's status while it runs (asked over its control socket); what the state files say otherwise. */
export async function statusReport(config: AgentConfig): Promise<StatusReport> {
  try {
    return { ...payloadOf(await askDaemon(config.runtimeDir, { op: 'status' }, 'status')), daemon: 'running' };
  } catch (err) {
    if (!(err instanceof DaemonAbsentError)) throw err;
  }
  const [stored, queue] = await Promise.all([
    readAssignment(config.stateDir),
    inspectQueue(path.join(config.stateDir, 'telemetry')).catch(() => null),
  ]);
  const assignment = stored.status === 'valid' ? stored.assignment : undefined;
  return {
    daemon: 'not running',
    state: 'stopped',
    reason: stored.status === 'invalid' ? `state file unusable: ${stored.reason}` : stored.status === 'absent' ? 'not provisioned' : undefined,
    since: assignment?.assignedAt,
    registrationId: assignment?.registrationId ?? config.provisioning.registrationId,
    deviceId: assignment?.deviceId,
    assignedHub: assignment?.assignedHub,
    idScope: assignment?.idScope ?? config.provisioning.idScope,
    hubProtocol: null,
    hubProtocolReason: null,
    proxy: null,
    lastError: null,
    consecutiveFailures: null,
    nextRetryAt: null,
    dpsHeldOffUntil: null,
    operatorMustAct: null,
    telemetryQueue: queue ? queueFacts(queue) : null,
    clockOffsetMs: null,
  };
}
