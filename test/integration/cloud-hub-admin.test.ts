import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import deviceSdk from 'azure-iot-device';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { serviceRequest } from '../cloud/hub/service-request.js';
import { invokeMethod } from '../support/direct-method.js';
import { parseObject } from '../support/json.js';
import { randomLoopbackAddress } from '../support/ports.js';

// The local cloud's admin API (test/cloud/hub/README.md), used over real HTTPS.
let hub: LocalHub;
let stateDir: string;
let device: deviceSdk.Client;
const received: deviceSdk.Message[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-admin-'));
  hub = await startHub({ address: randomLoopbackAddress(), stateDir, log: () => undefined });
  const put = await serviceRequest(hub, 'PUT', '/admin/devices/qa-1', JSON.stringify({ primaryKey: randomBytes(32).toString('base64') }));
  expect(put.status).toBe(200);
  device = await openDevice(hub, 'qa-1');
  device.on('message', (msg: deviceSdk.Message) => {
    received.push(msg);
    void device.complete(msg);
  });
  device.onDeviceMethod('ping', (_req, res) => void res.send(200, 'pong'));
});

afterAll(async () => {
  await device?.close();
  await hub?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

it('registers a device through PUT /admin/devices/{id}', () => {
  expect(hub.counters.registrations).toBe(1);
});

it('sends C2D through POST /admin/devices/{id}/messages', async () => {
  const res = await serviceRequest(hub, 'POST', '/admin/devices/qa-1/messages',
    JSON.stringify({ dataBase64: Buffer.from([1, 2, 3]).toString('base64'), messageId: 'admin-1', properties: { kind: 'raw' } }));
  expect(res.status).toBe(202);
  expect(JSON.parse(res.body)).toEqual({ messageId: 'admin-1' });
  await expect.poll(() => received.length, { timeout: 5_000 }).toBe(1);
  expect([...received[0]!.getBytes()]).toEqual([1, 2, 3]);
  expect(received[0]!.properties.getValue('kind')).toBe('raw');
});

it('refuses C2D bodies that are not one of data / dataBase64, and unknown admin paths', async () => {
  for (const body of [{}, { data: 'a', dataBase64: 'YQ==' }, { data: 'a', properties: { n: 1 } }, { dataBase64: '***' }]) {
    expect((await serviceRequest(hub, 'POST', '/admin/devices/qa-1/messages', JSON.stringify(body))).status).toBe(400);
  }
  expect((await serviceRequest(hub, 'POST', '/admin/devices/nobody/messages', '{"data":"x"}')).status).toBe(404);
  expect((await serviceRequest(hub, 'GET', '/admin/nothing')).status).toBe(404);
});

it('lists captured D2C messages through GET /admin/d2c', async () => {
  const message = new deviceSdk.Message('telemetry');
  message.properties.add('unit', 'C');
  await device.sendEvent(message);
  const res = await serviceRequest(hub, 'GET', '/admin/d2c?deviceId=qa-1&since=0');
  const list = JSON.parse(res.body) as { body: string; properties: Record<string, string> }[];
  expect(list.map((m) => Buffer.from(m.body, 'base64').toString())).toEqual(['telemetry']);
  expect(list[0]?.properties).toEqual({ unit: 'C' });
  expect((await serviceRequest(hub, 'GET', '/admin/d2c?since=x')).status).toBe(400);
});

it('stops the MQTT listener (devices drop, new connections fail) and starts it again', async () => {
  expect(JSON.parse((await serviceRequest(hub, 'POST', '/admin/mqtt/stop')).body)).toEqual({ listening: false });
  // The SDK retries quietly in the background, so look at the hub's side.
  await expect.poll(() => hub.core.broker.isOnline('qa-1'), { timeout: 5_000 }).toBe(false);
  const refused = await new Promise<string>((resolve) => {
    const socket = net.connect(8883, hub.address);
    socket.once('connect', () => { socket.destroy(); resolve('connected'); });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  expect(refused).toBe('ECONNREFUSED');
  const service = serviceClients(hub.serviceConnectionString, hub.ca);
  await expect(service.client.invokeDeviceMethod('qa-1', { methodName: 'ping', payload: {} }))
    .rejects.toThrow();

  expect(JSON.parse((await serviceRequest(hub, 'POST', '/admin/mqtt/start')).body)).toEqual({ listening: true });
  const result = await invokeMethod(service.client, 'qa-1',
    { methodName: 'ping', payload: {}, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 25 });
  expect(result).toEqual({ status: 200, payload: 'pong' });
  const counters = parseObject((await serviceRequest(hub, 'GET', '/admin/counters')).body);
  expect(counters.disconnects).toBeGreaterThanOrEqual(1);
  expect(counters.methodCalls).toBeGreaterThanOrEqual(2);
}, 40_000);
