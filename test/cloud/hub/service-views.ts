import type { DeviceRecord } from './registry.js';
import { identityEtag } from './registry.js';
import { twinEtag, type JsonObject } from './twin.js';

/**
 * The JSON shapes IoT Hub's service API returns for a device identity and a twin
 * (the fields azure-iothub's Device and Twin classes read).
 */
export interface Presence {
  connected: boolean;
  since: string;
  lastActivityTime: string;
  c2dPending: number;
}

export function deviceView(device: DeviceRecord, presence: Presence): JsonObject {
  return {
    deviceId: device.deviceId,
    generationId: device.generationId,
    etag: identityEtag(device),
    connectionState: presence.connected ? 'Connected' : 'Disconnected',
    status: device.status,
    statusReason: device.statusReason ?? null,
    connectionStateUpdatedTime: presence.since,
    statusUpdatedTime: device.createdTime,
    lastActivityTime: presence.lastActivityTime,
    cloudToDeviceMessageCount: presence.c2dPending,
    authentication: {
      symmetricKey: { primaryKey: device.primaryKey, secondaryKey: device.secondaryKey },
      x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
      type: 'sas',
    },
    capabilities: { iotEdge: false },
  };
}

export function twinView(device: DeviceRecord, presence: Presence): JsonObject {
  const { twin } = device;
  const lastUpdated = new Date().toISOString();
  return {
    deviceId: device.deviceId,
    etag: twinEtag(twin),
    deviceEtag: identityEtag(device),
    status: device.status,
    statusUpdateTime: device.createdTime,
    connectionState: presence.connected ? 'Connected' : 'Disconnected',
    lastActivityTime: presence.lastActivityTime,
    cloudToDeviceMessageCount: presence.c2dPending,
    authenticationType: 'sas',
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    modelId: '',
    version: twin.version,
    tags: twin.tags,
    properties: {
      desired: { ...twin.desired, $metadata: { $lastUpdated: lastUpdated }, $version: twin.desiredVersion },
      reported: { ...twin.reported, $metadata: { $lastUpdated: lastUpdated }, $version: twin.reportedVersion },
    },
    capabilities: { iotEdge: false },
  };
}
