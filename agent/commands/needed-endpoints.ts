import type { HostPort } from '../../hardening/probe.js';
import type { AgentConfig } from '../config.js';

/**
 * The endpoints the agent needs to reach, derived in this one place from the config and
 * the cached assignment: the assigned hub (MQTT over TLS, 8883) once provisioned, and DPS
 * (provisioning.globalEndpoint, 443), which it needs again to re-provision. A hardening
 * change is confirmed only when every one of them answers a TLS handshake; the boot guard
 * keeps a new profile on the same condition; the fail-closed rule set lets them through.
 * An endpoint the agent gains later (a proxy, the hub over WebSocket on 443) is added here.
 */
export function neededEndpoints(config: AgentConfig, assignment: { assignedHub: string } | undefined): HostPort[] {
  return [
    ...(assignment ? [{ host: assignment.assignedHub, port: 8883 }] : []),
    { host: config.provisioning.globalEndpoint, port: 443 },
  ];
}
