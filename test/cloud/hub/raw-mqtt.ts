import mqtt from 'mqtt';
import { createSas } from '../sas.js';
import { servernameFor } from '../tls.js';

/**
 * A bare MQTT 3.1.1 client (mqtt.js) for what the device SDK will not do on purpose:
 * expired or tampered tokens, other devices' topics, oversized packets.
 */
export interface RawTarget {
  address: string;
  hostName: string;
  ca: string;
}

export function deviceToken(target: RawTarget, deviceId: string, key: Buffer, expiry = Math.floor(Date.now() / 1000) + 600): string {
  return createSas(key, `${target.hostName}/devices/${deviceId}`, expiry);
}

export function deviceUsername(target: RawTarget, deviceId: string): string {
  return `${target.hostName}/${deviceId}/?api-version=2021-04-12`;
}

/** Resolves with the connected client, or with the CONNACK refusal code; rejects when the hub cuts the connection without a CONNACK. */
export function rawConnect(target: RawTarget, clientId: string, password: string, username = deviceUsername(target, clientId)):
  Promise<{ client: mqtt.MqttClient; sessionPresent: boolean } | { refused: number }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtts://${target.address}:8883`, {
      clientId, username, password, protocolVersion: 4, clean: false, ca: target.ca, reconnectPeriod: 0, connectTimeout: 5_000,
      // The hub's name goes in SNI, as the SDK sends it; mqtt.js would name the address.
      ...servernameFor(target.hostName),
    });
    client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent }));
    client.once('error', (err) => {
      client.end(true);
      const code = (err as Error & { code?: number }).code;
      if (typeof code === 'number') resolve({ refused: code });
      else reject(err);
    });
    client.once('close', () => {
      client.end(true);
      reject(new Error('the hub closed the connection before CONNACK'));
    });
  });
}

/** Resolves once the broker closed the connection (what IoT Hub does to a misbehaving device). */
export function closedByHub(client: mqtt.MqttClient, ms = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
    client.stream.once('close', () => {
      clearTimeout(timer);
      client.end(true);
      resolve();
    });
  });
}
