import type { Duplex } from 'node:stream';
import { requireCopy } from '../lib/require-copy.js';

/*
 * The very copies of modules the Azure SDKs load, which the agent patches or warms up:
 * azure-iot-mqtt-base bundles its own mqtt.js (with its own ws and mqtt-packet), and
 * azure-iot-provisioning-device its own azure-iot-common. Each is required along the
 * chain of packages agent/lib/module-copies.ts lists, so the module graph is the same as the SDK's.
 */

export interface WsModule {
  createWebSocketStream(socket: unknown, options?: object): Duplex;
}

/** The ws that the SDK's mqtt.js uses for MqttWs. */
export function sdkWs(): WsModule {
  return requireCopy(import.meta.url, 'ws') as WsModule;
}

/** The SDK's mqtt.js: what azure-iot-mqtt-base connects with unless it is handed another. */
export interface MqttModule {
  connect(uri: string, options: Record<string, unknown>): unknown;
}

export function sdkMqtt(): MqttModule {
  return requireCopy(import.meta.url, 'mqtt') as MqttModule;
}

/** The MqttBase that azure-iot-device-mqtt's transports are built on (their constructors take one). */
export interface MqttBaseModule {
  MqttBase: new (mqttProvider?: MqttModule) => object;
}

export function sdkMqttBase(): MqttBaseModule {
  return requireCopy(import.meta.url, 'azure-iot-mqtt-base') as MqttBaseModule;
}

/** mqtt-packet's writer, whose number cache agent/hub/session.ts turns off. */
export interface MqttPacketModule {
  writeToStream: { cacheNumbers: boolean };
}

/** Loads the SDK's mqtt.js now and returns the mqtt-packet it writes with. */
export function sdkMqttPacket(): MqttPacketModule {
  requireCopy(import.meta.url, 'mqtt');
  return requireCopy(import.meta.url, 'mqtt-packet') as MqttPacketModule;
}

/** azure-iot-common's SAS expiry helper, as azure-iot-provisioning-device loads it. */
export interface CommonAuthorization {
  anHourFromNow(): number;
}

/** The copy of azure-iot-common that azure-iot-provisioning-device loads. */
export function provisioningCommon(): CommonAuthorization {
  return requireCopy(import.meta.url, 'azure-iot-common') as CommonAuthorization;
}
