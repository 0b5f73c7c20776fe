import type { AgentConfig } from '../config.js';
import type { Assignment, StoredAssignment } from '../state/assignment-store.js';

export type StartupDecision =
  | { action: 'useCached'; assignment: Assignment }
  | { action: 'provision'; reason: string };

/**
 * Whether a start can use the cached assignment or must ask DPS. A cache from another
 * DPS (ID scope or endpoint changed), or for another registration id, is never used:
 * silently connecting to the old hub is the failure technicians complain of most.
 */
export function decideAtStartup(config: AgentConfig, idScope: string, registrationId: string, stored: StoredAssignment): StartupDecision {
  if (stored.status === 'absent') return { action: 'provision', reason: 'not provisioned yet' };
  if (stored.status === 'invalid') return { action: 'provision', reason: `the state file is unusable: ${stored.reason}` };
  const cached = stored.assignment;
  if (cached.idScope !== idScope) return { action: 'provision', reason: `ID scope changed from ${cached.idScope} to ${idScope}` };
  if (cached.globalEndpoint !== config.provisioning.globalEndpoint) {
    return { action: 'provision', reason: `provisioning endpoint changed from ${cached.globalEndpoint} to ${config.provisioning.globalEndpoint}` };
  }
  if (cached.registrationId !== registrationId) {
    return { action: 'provision', reason: `registration id changed from ${cached.registrationId} to ${registrationId}` };
  }
  if (config.provisioning.reprovision === 'alwaysOnStartup') return { action: 'provision', reason: 'reprovision is alwaysOnStartup' };
  return { action: 'useCached', assignment: cached };
}

/** Whether the hub refusing the device should send it back to DPS. */
export function reprovisionOnRejection(config: AgentConfig): boolean {
  return config.provisioning.reprovision !== 'never';
}
