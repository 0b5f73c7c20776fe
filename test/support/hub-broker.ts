import type { LocalHub } from '../cloud/hub/hub.js';

/** The keep-alive the hub's broker holds the device's connection to (aedes: 1.5 times the CONNECT's, in ms, plus 1). */
export function keepAliveSeenByHub(hub: LocalHub, deviceId: string): number | undefined {
  const online = (hub.core.broker as unknown as { online: Map<string, { _keepaliveInterval: number }> }).online;
  return online.get(deviceId)?._keepaliveInterval;
}
