import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';

/**
 * The very copies of modules the Azure SDKs load, which the agent patches or warms up:
 * azure-iot-mqtt-base bundles its own mqtt.js (with its own ws and mqtt-packet), and
 * azure-iot-provisioning-device its own azure-iot-common. A plain import would reach
 * another copy, or none. Each is reached by a require function rooted in the package
 * that loads it, so the module graph is the same as the SDK's.
 */
const fromMqttBase = createRequire(createRequire(import.meta.url).resolve('azure-iot-mqtt-base'));
const fromMqtt = createRequire(fromMqttBase.resolve('mqtt'));

export interface WsModule {
  createWebSocketStream(socket: unknown, options?: object): Duplex;
}

/** The ws that the SDK's mqtt.js uses for MqttWs. */
export function sdkWs(): WsModule {
  return fromMqtt('ws') as WsModule;
}

/** mqtt-packet's writer, whose number cache agent/hub/session.ts turns off. */
export interface MqttPacketModule {
  writeToStream: { cacheNumbers: boolean };
}

/** Loads the SDK's mqtt.js now and returns the mqtt-packet it writes with. */
export function sdkMqttPacket(): MqttPacketModule {
  fromMqttBase('mqtt');
  return fromMqtt('mqtt-packet') as MqttPacketModule;
}

/** azure-iot-common's SAS expiry helper, as azure-iot-provisioning-device loads it. */
export interface CommonAuthorization {
  anHourFromNow(): number;
}

/** The copy of azure-iot-common that azure-iot-provisioning-device loads. */
export function provisioningCommon(): CommonAuthorization {
  const fromProvisioning = createRequire(createRequire(import.meta.url).resolve('azure-iot-provisioning-device'));
  return fromProvisioning('azure-iot-common') as CommonAuthorization;
}
