import type { Backend } from '../../hardening/backend.js';
import type { HostPort } from '../../hardening/probe.js';

/**
 * Where the engine works. Production: the real root and network namespace, confirming
 * against every endpoint the agent needs (needed-endpoints.ts). Tests (IOT_AGENT_HARDENING_TEST,
 * agent/runtime-overrides.ts) name a namespace and a temporary root they created, and the
 * endpoints reachable from it.
 */
export interface HardeningSite {
  root: string;
  stateDir?: string;
  netns?: string;
  backend: Backend;
  /** Fixed confirm targets; otherwise the hub and DPS of the moment. */
  confirmTargets?: HostPort[];
}

export const PRODUCTION_SITE: HardeningSite = { root: '/', backend: 'auto' };

/**
 * Whether profiles are applied by this process (root: tests, QA, a technician's run) or
 * through the root oneshot iot-agent-harden-apply@.service (the packaged, unprivileged agent).
 */
export function appliesInProcess(site: HardeningSite, uid: number | undefined = process.getuid?.()): boolean {
  return site.netns !== undefined || uid === 0;
}
