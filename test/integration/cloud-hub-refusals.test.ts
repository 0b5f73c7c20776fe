import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';
import type iothub from 'azure-iothub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { closedByHub, deviceToken, rawConnect } from '../cloud/hub/raw-mqtt.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { serviceRequest } from '../cloud/hub/service-request.js';
import { createSas } from '../cloud/sas.js';
import { invokeMethod } from '../support/direct-method.js';
import { parseObject } from '../support/json.js';
import { randomLoopbackAddress } from '../support/ports.js';

// Every credential and topic check of the hub, and proof that it keeps serving others.
let hub: LocalHub;
let stateDir: string;
let bystander: deviceSdk.Client;
let service: { client: iothub.Client; registry: iothub.Registry };
const keyA = randomBytes(32);
const NOT_AUTHORIZED = 5;

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-refusals-'));
  hub = await startHub({ address: randomLoopbackAddress(), stateDir, log: () => undefined });
  await hub.registerDevice({ deviceId: 'dev-a', registrationId: 'dev-a', primaryKey: keyA });
  await hub.registerDevice({ deviceId: 'dev-b', registrationId: 'dev-b', primaryKey: randomBytes(32) });
  bystander = await openDevice(hub, 'dev-b');
  bystander.onDeviceMethod('ping', (_req, res) => void res.send(200, 'pong'));
  service = serviceClients(hub.serviceConnectionString, hub.ca);
});

afterAll(async () => {
  await bystander?.close();
  await hub?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

async function connectedA() {
  const result = await rawConnect(hub, 'dev-a', deviceToken(hub, 'dev-a', keyA));
  if (!('client' in result)) throw new Error(`dev-a refused with ${result.refused}`);
  return result.client;
}

describe('device credentials', () => {
  it('refuses an expired token with CONNACK 5 through the unmodified SDK', async () => {
    const expired = createSas(keyA, `${hub.hostName}/devices/dev-a`, Math.floor(Date.now() / 1000) - 10);
    const client = deviceSdk.Client.fromSharedAccessSignature(`${expired}`, mqttTransport.Mqtt);
    await client.setOptions({ ca: hub.caCertPath });
    await expect(client.open()).rejects.toMatchObject({ name: 'UnauthorizedError' });
    const raw = await rawConnect(hub, 'dev-a', expired);
    expect(raw).toEqual({ refused: NOT_AUTHORIZED });
  });

  it('refuses a tampered signature', async () => {
    const token = deviceToken(hub, 'dev-a', keyA);
    const tampered = token.replace(/sig=([^&])/, (_m, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`);
    expect(await rawConnect(hub, 'dev-a', tampered)).toEqual({ refused: NOT_AUTHORIZED });
  });

  it('refuses a token signed for another device, and a client id that differs from the username', async () => {
    expect(await rawConnect(hub, 'dev-a', deviceToken(hub, 'dev-b', keyA))).toEqual({ refused: NOT_AUTHORIZED });
    const tokenA = deviceToken(hub, 'dev-a', keyA);
    expect(await rawConnect(hub, 'dev-b', tokenA, `${hub.hostName}/dev-a/?api-version=2021-04-12`)).toEqual({ refused: NOT_AUTHORIZED });
  });

  it('drops a connection when the token it was opened with expires', async () => {
    const result = await rawConnect(hub, 'dev-a', deviceToken(hub, 'dev-a', keyA, Math.floor(Date.now() / 1000) + 2));
    if (!('client' in result)) throw new Error('refused');
    await closedByHub(result.client, 4_000);
  });

  it('refuses an unknown device and a password that is not a token', async () => {
    expect(await rawConnect(hub, 'ghost', deviceToken(hub, 'ghost', keyA))).toEqual({ refused: NOT_AUTHORIZED });
    expect(await rawConnect(hub, 'dev-a', 'SharedAccessSignature sr=%&sig=')).toEqual({ refused: NOT_AUTHORIZED });
  });
});

describe('device topics', () => {
  it('closes device A when it publishes under device B', async () => {
    const a = await connectedA();
    const closed = closedByHub(a);
    a.publish('devices/dev-b/messages/events/', 'spoof', { qos: 1 });
    await closed;
    expect(hub.d2c({ deviceId: 'dev-b' })).toEqual([]);
  });

  it('closes device A when it subscribes to device B\'s C2D topic', async () => {
    const a = await connectedA();
    const closed = closedByHub(a);
    a.subscribe('devices/dev-b/messages/devicebound/#', { qos: 1 });
    await closed;
  });

  it('closes a device that subscribes to everything or publishes on the hub\'s method topic', async () => {
    const a = await connectedA();
    const closed = closedByHub(a);
    a.subscribe('#');
    await closed;
    const again = await connectedA();
    const closedAgain = closedByHub(again);
    again.publish('$iothub/methods/POST/ping/?$rid=1', '{}');
    await closedAgain;
  });

  it('closes a device whose D2C message, body and properties counted together, is over 256 KiB, and accepts one at the limit', async () => {
    const a = await connectedA();
    const bag = 'size=max'; // 7 bytes of properties: the name and the value
    await a.publishAsync(`devices/dev-a/messages/events/${bag}`, Buffer.alloc(256 * 1024 - 7, 1), { qos: 1 });
    expect(hub.d2c({ deviceId: 'dev-a' }).at(-1)?.body.length).toBe(256 * 1024 - 7);
    const closed = closedByHub(a);
    a.publish(`devices/dev-a/messages/events/${bag}`, Buffer.alloc(256 * 1024 - 6, 1), { qos: 1 });
    await closed;
  });

  it('closes a device that publishes with QoS 2, which IoT Hub does not support', async () => {
    const a = await connectedA();
    const closed = closedByHub(a);
    a.publish('devices/dev-a/messages/events/', 'x', { qos: 2 });
    await closed;
  });

  it('survives garbage on both listeners', async () => {
    for (const port of [8883, 443]) {
      await new Promise<void>((resolve) => {
        const socket = tls.connect({ host: hub.address, port, ca: hub.ca }, () => socket.end(randomBytes(4096)));
        socket.resume(); // read whatever the server answers, so its close reaches us
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
      });
      await new Promise<void>((resolve) => {
        const socket = net.connect({ host: hub.address, port }, () => socket.end(randomBytes(4096)));
        socket.resume();
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
      });
    }
    const result = await invokeMethod(service.client, 'dev-b', { methodName: 'ping', payload: {}, responseTimeoutInSeconds: 5 });
    expect(result).toEqual({ status: 200, payload: 'pong' });
  });

  it('closes a device whose property bag is not URL encoding', async () => {
    const a = await connectedA();
    const closed = closedByHub(a);
    a.publish('devices/dev-a/messages/events/key=%zz', 'x', { qos: 1 });
    await closed;
  });

  it('answers a reported patch that is not JSON with status 400', async () => {
    const a = await connectedA();
    await a.subscribeAsync('$iothub/twin/res/#');
    const answer = new Promise<string>((resolve) => a.on('message', (topic) => resolve(topic)));
    a.publish('$iothub/twin/PATCH/properties/reported/?$rid=7', '{not json');
    expect(await answer).toBe('$iothub/twin/res/400/?$rid=7');
    a.end(true);
  });
});

describe('service REST refusals', () => {
  const methods = '/twins/dev-b/methods?api-version=2021-04-12';

  it('answers malformed JSON with 400 IotHubFormatError in IoT Hub\'s error shape', async () => {
    const res = await serviceRequest(hub, 'POST', methods, '{"methodName":');
    expect(res.status).toBe(400);
    expect(parseObject(res.body).Message).toMatch(/^ErrorCode:IotHubFormatError;/);
  });

  it('answers invalid method parameters with 400 ArgumentInvalid', async () => {
    for (const body of [{ payload: 1 }, { methodName: 'a/b' }, { methodName: 'x', responseTimeoutInSeconds: 1 }, [1, 2]]) {
      const res = await serviceRequest(hub, 'POST', methods, JSON.stringify(body));
      expect(res.status).toBe(400);
      expect(res.headers['iothub-errorcode']).toBe('ArgumentInvalid');
    }
  });

  it('answers a twin patch with bad property names or reported properties with 400', async () => {
    for (const body of [{ properties: { desired: { 'a.b': 1 } } }, { properties: { reported: { x: 1 } } }, 'text']) {
      const res = await serviceRequest(hub, 'PATCH', '/twins/dev-b?api-version=2021-04-12', JSON.stringify(body));
      expect(res.status).toBe(400);
    }
  });

  it('answers unknown routes with 404 and a missing api-version with 400', async () => {
    expect((await serviceRequest(hub, 'GET', '/jobs/v2?api-version=2021-04-12')).status).toBe(404);
    expect((await serviceRequest(hub, 'GET', '/twins/dev-b/modules/m?api-version=2021-04-12')).status).toBe(404);
    expect((await serviceRequest(hub, 'GET', '/twins/dev-b')).status).toBe(400);
    expect((await serviceRequest(hub, 'GET', '/twins/%zz?api-version=2021-04-12')).status).toBe(400);
  });

  it('refuses an oversized body with 413', async () => {
    const res = await serviceRequest(hub, 'POST', methods, JSON.stringify({ methodName: 'x', payload: 'y'.repeat(300 * 1024) }));
    expect(res.status).toBe(413);
  });

  it('refuses missing, foreign and tampered service tokens with 401', async () => {
    const wrongKey = createSas(randomBytes(32), hub.hostName, Math.floor(Date.now() / 1000) + 60, 'iothubowner');
    const wrongPolicy = createSas(randomBytes(32), hub.hostName, Math.floor(Date.now() / 1000) + 60, 'device');
    for (const authorization of ['', 'Bearer x', wrongKey, wrongPolicy]) {
      const res = await serviceRequest(hub, 'GET', '/twins/dev-b?api-version=2021-04-12', undefined, { authorization });
      expect(res.status).toBe(401);
      expect(res.headers['iothub-errorcode']).toBe('IotHubUnauthorizedAccess');
    }
  });

  it('answers an unknown device with DeviceNotFound through the SDK', async () => {
    await expect(service.registry.getTwin('nobody')).rejects.toMatchObject({ name: 'DeviceNotFoundError' });
    await expect(service.client.invokeDeviceMethod('nobody', { methodName: 'x', payload: null }))
      .rejects.toMatchObject({ name: 'DeviceNotFoundError' });
  });

  it('answers a method for an offline device with 404 DeviceNotOnline', async () => {
    const res = await serviceRequest(hub, 'POST', '/twins/dev-a/methods?api-version=2021-04-12', JSON.stringify({ methodName: 'x' }));
    expect(res.status).toBe(404);
    expect(parseObject(res.body).Message).toMatch(/^ErrorCode:DeviceNotOnline;/);
  });

  it('answers a method the device does not answer in time with 504 GatewayTimeout', async () => {
    bystander.onDeviceMethod('hang', () => undefined);
    await expect(service.client.invokeDeviceMethod('dev-b', { methodName: 'hang', payload: {}, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 }))
      .rejects.toMatchObject({ name: 'GatewayTimeoutError' });
  }, 15_000);

  it('still serves the well-behaved device after all of the above', async () => {
    const result = await invokeMethod(service.client, 'dev-b', { methodName: 'ping', payload: {}, responseTimeoutInSeconds: 5 });
    expect(result).toEqual({ status: 200, payload: 'pong' });
    expect(hub.counters.refused).toBeGreaterThanOrEqual(10);
  });
});
