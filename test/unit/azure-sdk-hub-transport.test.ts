import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import deviceMqtt from 'azure-iot-device-mqtt';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { hubTransport } from '../../agent/azure-sdk/hub-transport.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { tpmProvider } from '../support/azure-sdk.js';
import { tlsContextsBuilt } from '../support/tls-contexts.js';

/**
 * The transports hubTransport hands the device SDK, connecting through the SDK's own
 * MqttBase and mqtt.js to a stand-in hub on loopback whose certificate a private CA issued:
 * it answers each MQTT CONNECT with a CONNACK, over TLS or over WebSockets.
 */
let made: Promise<ServerCredentials> | undefined;
/** A private test CA and a certificate for 127.0.0.1, made once per file (openssl). */
let credentialsDir: string | undefined;
const credentials = () => (made ??= ensureServerCredentials(credentialsDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-hub-transport-')), ['127.0.0.1']));
afterAll(() => {
  if (credentialsDir) rmSync(credentialsDir, { recursive: true, force: true });
});

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A hub over MQTT on TLS: counts the handshakes that succeeded. */
async function tlsHub(): Promise<{ uri: string; handshakes: () => number }> {
  const { key, cert } = await credentials();
  let handshakes = 0;
  const server = tls.createServer({ key, cert }, (socket) => {
    handshakes++;
    socket.once('data', () => socket.write(CONNACK));
    socket.on('error', () => undefined);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => server.close());
  return { uri: `mqtts://127.0.0.1:${(server.address() as AddressInfo).port}`, handshakes: () => handshakes };
}

/** A hub over MQTT on WebSockets (wss, the path IoT Hub uses): counts the upgrades that succeeded. */
async function webSocketHub(): Promise<{ uri: string; handshakes: () => number }> {
  const { key, cert } = await credentials();
  let handshakes = 0;
  const server = https.createServer({ key, cert });
  server.on('tlsClientError', () => undefined);
  const wss = new WebSocketServer({ server, path: '/$iothub/websocket' });
  wss.on('connection', (socket) => {
    handshakes++;
    socket.once('message', () => socket.send(CONNACK));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.closeAllConnections();
    server.close();
  });
  return { uri: `wss://127.0.0.1:${(server.address() as AddressInfo).port}/$iothub/websocket`, handshakes: () => handshakes };
}

/** The SDK's MqttBase inside a transport (its `_mqtt`, pinned by azure-sdk-contract.test.ts). */
interface MqttBase {
  connect(config: object, done: (err?: Error) => void): void;
  disconnect(done: (err?: Error) => void): void;
}
const baseOf = (transport: object) => (transport as { _mqtt: MqttBase })._mqtt;

/** One connect and disconnect the way the device SDK makes them, with a SAS token as password. */
async function connectOnce(base: MqttBase, uri: string): Promise<void> {
  const config = { uri, clientId: 'd1', username: '127.0.0.1/d1/?api-version=2021-04-12', sharedAccessSignature: 'SharedAccessSignature sr=x&sig=y&se=1' };
  await new Promise<void>((resolve, reject) => base.connect(config, (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => base.disconnect(() => resolve()));
}

describe('the MQTT transport of a hub session', () => {
  it('is the SDK\'s own Mqtt or MqttWs, unchanged, when no CA is configured (Node\'s default context is shared already)', () => {
    expect(hubTransport(false, undefined)).toBe(deviceMqtt.Mqtt);
    expect(hubTransport(true, undefined)).toBe(deviceMqtt.MqttWs);
  });

  it('is an Mqtt over TLS, or an MqttWs, with a configured CA', async () => {
    const { ca } = await credentials();
    const overTls = new (hubTransport(false, ca))(tpmProvider());
    const overWebSockets = new (hubTransport(true, ca))(tpmProvider());
    expect(overTls).toBeInstanceOf(deviceMqtt.Mqtt);
    expect(overTls).not.toBeInstanceOf(deviceMqtt.MqttWs);
    expect(overWebSockets).toBeInstanceOf(deviceMqtt.MqttWs);
  });

  it.each([
    ['TLS', false, tlsHub],
    ['WebSockets', true, webSocketHub],
  ] as const)('trusts the configured CA over %s and connects again and again through one TLS context, never building one per connect', async (_how, webSockets, hub) => {
    const { ca } = await credentials();
    const { uri, handshakes } = await hub();
    const base = baseOf(new (hubTransport(webSockets, ca))(tpmProvider()));
    await connectOnce(base, uri);
    const built = await tlsContextsBuilt(async () => {
      await connectOnce(base, uri);
      await connectOnce(base, uri);
    });
    expect(built).toBe(0);
    expect(handshakes()).toBe(3);
  });

  it('is refused by a hub whose certificate the configured CA did not issue', async () => {
    const { uri } = await tlsHub();
    const base = baseOf(new (hubTransport(false, tls.rootCertificates[0]))(tpmProvider()));
    await expect(connectOnce(base, uri)).rejects.toThrow(/certificate/);
  });
});
