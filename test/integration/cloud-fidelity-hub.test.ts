import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type iothub from 'azure-iothub';
import type mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { closedByHub, deviceToken, rawConnect } from '../cloud/hub/raw-mqtt.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { serviceRequest } from '../cloud/hub/service-request.js';
import { CERTIFICATE_AGE_DAYS } from '../cloud/tls.js';
import { invokeMethod } from '../support/direct-method.js';
import { parseObject } from '../support/json.js';
import { stringContaining } from '../support/matchers.js';
import { randomLoopbackAddress } from '../support/ports.js';

/**
 * The local hub does what IoT Hub is documented to do where the agent's own assumptions
 * could differ (test/cloud/README.md names the source of each): raw MQTT devices and the
 * unmodified azure-iothub service SDK as the callers.
 */
let hub: LocalHub;
let stateDir: string;
let service: { client: iothub.Client; registry: iothub.Registry };
const keys = new Map<string, Buffer>();
const open: mqtt.MqttClient[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-fidelity-hub-'));
  hub = await startHub({ address: randomLoopbackAddress(), stateDir, log: () => undefined });
  for (const id of ['methods', 'twin', 'd2c', 'quota', 'retain', 'c2d', 'disabled']) {
    const key = randomBytes(32);
    keys.set(id, key);
    await hub.registerDevice({ deviceId: id, registrationId: id, primaryKey: key });
  }
  service = serviceClients(hub.serviceConnectionString, hub.ca);
});

afterEach(() => {
  for (const client of open.splice(0)) client.end(true);
  hub.configure({});
  hub.faults.clear();
});

afterAll(async () => {
  await hub?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

async function connect(id: string): Promise<mqtt.MqttClient> {
  const result = await rawConnect(hub, id, deviceToken(hub, id, keys.get(id)!));
  if (!('client' in result)) throw new Error(`${id} refused with CONNACK ${result.refused}`);
  open.push(result.client);
  return result.client;
}

function nextMessage(client: mqtt.MqttClient, prefix: string, ms = 5_000): Promise<{ topic: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing on ${prefix} within ${ms} ms`)), ms);
    const onMessage = (topic: string, body: Buffer) => {
      if (!topic.startsWith(prefix)) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ topic, body });
    };
    client.on('message', onMessage);
  });
}

describe('direct methods', () => {
  it('deliver a null or omitted payload as an empty body, and {} as "{}"', async () => {
    const device = await connect('methods');
    const bodies: string[] = [];
    device.on('message', (topic, body) => {
      const rid = /\$rid=([^&]+)/.exec(topic)?.[1];
      bodies.push(body.toString());
      device.publish(`$iothub/methods/res/200/?$rid=${rid}`, '{"ok":true}', { qos: 0 });
    });
    await device.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
    for (const payload of [undefined, null, {}, 'x']) {
      const result = await invokeMethod(service.client, 'methods', { methodName: 'm', payload, responseTimeoutInSeconds: 5 });
      expect(result).toEqual({ status: 200, payload: { ok: true } });
    }
    expect(bodies).toEqual(['', '', '{}', '"x"']);
  });

  it('refuse a device response over 128 KB', async () => {
    const device = await connect('methods');
    device.on('message', (topic) => {
      const rid = /\$rid=([^&]+)/.exec(topic)?.[1];
      device.publish(`$iothub/methods/res/200/?$rid=${rid}`, JSON.stringify('x'.repeat(128 * 1024)), { qos: 0 });
    });
    await device.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
    await expect(service.client.invokeDeviceMethod('methods', { methodName: 'big', payload: {}, responseTimeoutInSeconds: 5 }))
      .rejects.toMatchObject({ responseBody: stringContaining('over 131072 bytes') });
  });
});

describe('twin', () => {
  it('answers a throttled GET and reported PATCH with 429 on $iothub/twin/res, then serves them again', async () => {
    const device = await connect('twin');
    await device.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
    hub.faults.throttleTwin('get', 1);
    hub.faults.throttleTwin('patch', 1);
    const request = async (topic: string, body: string) => {
      const answer = nextMessage(device, '$iothub/twin/res/');
      device.publish(topic, body, { qos: 0 });
      const { topic: resTopic, body: resBody } = await answer;
      return { status: Number(resTopic.split('/')[3]), body: resBody.toString() };
    };
    expect(await request('$iothub/twin/GET/?$rid=1', '')).toMatchObject({ status: 429, body: stringContaining('"errorCode":429001') });
    expect(await request('$iothub/twin/PATCH/properties/reported/?$rid=2', '{"a":1}')).toMatchObject({ status: 429 });
    expect((await request('$iothub/twin/GET/?$rid=3', '')).status).toBe(200);
    expect((await request('$iothub/twin/PATCH/properties/reported/?$rid=4', '{"a":1}')).status).toBe(204);
    expect(hub.counters.twinThrottled).toBe(2);
  });

  it('sends desired-property updates only to a device subscribed to them: one made before the subscription is not sent later', async () => {
    const device = await connect('twin');
    await service.registry.updateTwin('twin', { properties: { desired: { early: 1 } } }, '*');
    await device.subscribeAsync('$iothub/twin/PATCH/properties/desired/#', { qos: 0 });
    const late = nextMessage(device, '$iothub/twin/PATCH/properties/desired/');
    await service.registry.updateTwin('twin', { properties: { desired: { late: 2 } } }, '*');
    expect(JSON.parse((await late).body.toString())).toMatchObject({ late: 2 });
    expect(parseObject((await late).body.toString()).early).toBeUndefined();
  });
});

describe('device-to-cloud throttling and the daily quota', () => {
  it('admits a burst, then slows the PUBACKs down to the rate (traffic shaping), then closes the connection when the backlog is full (429)', async () => {
    hub.configure({ perSecond: 20, backlog: 5 });
    const device = await connect('d2c');
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 20 }, (_, i) => device.publishAsync('devices/d2c/messages/events/', `burst ${i}`, { qos: 1 })));
    const burstMs = performance.now() - t0;
    const t1 = performance.now();
    await Promise.all(Array.from({ length: 5 }, (_, i) => device.publishAsync('devices/d2c/messages/events/', `shaped ${i}`, { qos: 1 })));
    const shapedMs = performance.now() - t1;
    expect(burstMs).toBeLessThan(1_000);
    expect(shapedMs).toBeGreaterThanOrEqual(150); // 5 at 20/s
    const closed = closedByHub(device);
    for (let i = 0; i < 40; i++) device.publish('devices/d2c/messages/events/', `flood ${i}`, { qos: 1 });
    await closed;
    expect(hub.counters.d2cThrottled).toBeGreaterThanOrEqual(1);
    const logged = hub.d2c({ deviceId: 'd2c' }).map((m) => m.body.toString()).filter((b) => b.startsWith('flood'));
    expect(logged.length).toBeLessThan(40); // what was throttled or still queued was never acknowledged, nor kept
  });

  it('refuses sends past the daily quota by closing the connection, then resets new connections without a CONNACK until the quota is reset', async () => {
    hub.configure({ dailyQuota: 3 });
    hub.core.d2cThrottle.resetQuota();
    const device = await connect('quota');
    for (let i = 0; i < 3; i++) await device.publishAsync('devices/quota/messages/events/', `q${i}`, { qos: 1 });
    const closed = closedByHub(device);
    device.publish('devices/quota/messages/events/', 'one too many', { qos: 1 });
    await closed;
    await expect(rawConnect(hub, 'quota', deviceToken(hub, 'quota', keys.get('quota')!))).rejects.toThrow();
    expect(JSON.parse((await serviceRequest(hub, 'POST', '/admin/quota/reset')).body)).toEqual({ used: 0 });
    await connect('quota');
    expect(hub.counters.quotaRefusals).toBeGreaterThanOrEqual(2);
  });
});

describe('MQTT details', () => {
  it('keeps no retained message, and passes the RETAIN flag on as the application property mqtt-retain', async () => {
    const device = await connect('retain');
    await device.publishAsync('devices/retain/messages/events/k=v', 'kept?', { qos: 1, retain: true });
    await device.publishAsync('devices/retain/messages/events/', 'plain', { qos: 1 });
    const [retained, plain] = hub.d2c({ deviceId: 'retain' }).slice(-2);
    expect(retained!.properties).toEqual({ k: 'v', 'mqtt-retain': 'true' });
    expect(plain!.properties).toEqual({});
  });

  it('never delivers a C2D message whose time to live ran out, whether queued for a device never subscribed or kept in its session', async () => {
    await hub.sendC2d('c2d', { data: 'stale', expiryTimeUtc: new Date(Date.now() + 300) });
    await hub.sendC2d('c2d', { data: 'fresh' });
    await new Promise((r) => setTimeout(r, 400));
    const device = await connect('c2d');
    const got: string[] = [];
    device.on('message', (_topic, body) => got.push(body.toString()));
    await device.subscribeAsync('devices/c2d/messages/devicebound/#', { qos: 1 });
    await expect.poll(() => got).toEqual(['fresh']);
    device.end(true);
    await expect.poll(() => hub.core.broker.isOnline('c2d')).toBe(false);
    await serviceRequest(hub, 'POST', '/admin/devices/c2d/messages', JSON.stringify({ data: 'stale in session', ttlSeconds: 1 }));
    await new Promise((r) => setTimeout(r, 1_200));
    const again = await connect('c2d');
    const later: string[] = [];
    again.on('message', (_topic, body) => later.push(body.toString()));
    await hub.sendC2d('c2d', { data: 'after' });
    await expect.poll(() => later).toEqual(['after']);
  });
});

describe('device identity status', () => {
  it('disables a device through the service API: it is cut off and refused with CONNACK 5; a DPS registration leaves it disabled unless the knob says otherwise', async () => {
    const device = await connect('disabled');
    const cut = closedByHub(device);
    const { responseBody } = await service.registry.update({ deviceId: 'disabled', status: 'disabled', statusReason: 'stolen' });
    expect(responseBody).toMatchObject({ deviceId: 'disabled', status: 'disabled', statusReason: 'stolen' });
    await cut;
    const token = () => deviceToken(hub, 'disabled', keys.get('disabled')!);
    expect(await rawConnect(hub, 'disabled', token())).toEqual({ refused: 5 });
    await hub.registerDevice({ deviceId: 'disabled', registrationId: 'disabled', primaryKey: keys.get('disabled')! });
    expect(await rawConnect(hub, 'disabled', token())).toEqual({ refused: 5 });
    hub.configure({ registrationReenables: true });
    await hub.registerDevice({ deviceId: 'disabled', registrationId: 'disabled', primaryKey: keys.get('disabled')! });
    await connect('disabled');
  });
});

describe('certificates', () => {
  it('issues the server certificate for DNS names and addresses, dated well before today', async () => {
    const named = await startHub({ address: randomLoopbackAddress(), hostName: 'cert-check.azure-devices.test', stateDir: path.join(stateDir, 'named'), log: () => undefined });
    try {
      const cert = new X509Certificate(await import('node:fs').then((fs) => fs.readFileSync(path.join(stateDir, 'named', 'tls', 'server.pem'))));
      expect(cert.subjectAltName).toBe(`DNS:cert-check.azure-devices.test, IP Address:${named.address}`);
      expect(Date.now() - Date.parse(cert.validFrom)).toBeGreaterThanOrEqual((CERTIFICATE_AGE_DAYS - 1) * 86_400_000);
      expect(CERTIFICATE_AGE_DAYS).toBeGreaterThanOrEqual(30);
    } finally {
      await named.stop();
    }
  });
});
