import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import deviceSdk from 'azure-iot-device';
import type iothub from 'azure-iothub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { invokeMethod } from '../support/direct-method.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { updateReported } from '../support/twin.js';

// The device and service SDKs, unmodified, against the local hub over real TLS.
let hub: LocalHub;
let stateDir: string;
let device: deviceSdk.Client;
let service: { client: iothub.Client; registry: iothub.Registry };
const deviceId = 'sensor-1';

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-device-'));
  hub = await startHub({ address: randomLoopbackAddress(), stateDir, log: () => undefined });
  await hub.registerDevice({ deviceId, registrationId: deviceId, primaryKey: randomBytes(32) });
  device = await openDevice(hub, deviceId);
  service = serviceClients(hub.serviceConnectionString, hub.ca);
});

afterAll(async () => {
  await device?.close();
  await hub?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

function waitFor<T>(register: (resolve: (value: T) => void) => void, ms = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing arrived within ${ms} ms`)), ms);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

describe('local IoT Hub with the unmodified SDKs', () => {
  it('counts the device connection', async () => {
    // The broker counts a client once its session is restored, a moment after CONNACK.
    await expect.poll(() => hub.counters.connects).toBeGreaterThanOrEqual(1);
  });

  it('gets the twin and stores a reported patch with a new version', async () => {
    const twin = await device.getTwin();
    const before = (twin.properties.reported as unknown as { $version: number }).$version;
    await updateReported(twin, { firmware: '1.2.3', nested: { a: 1 } });
    const { responseBody } = await service.registry.getTwin(deviceId);
    expect(responseBody.properties.reported.firmware).toBe('1.2.3');
    expect((responseBody.properties.reported as unknown as { $version: number }).$version).toBe(before + 1);
  });

  it('pushes a desired patch from the service to the device', async () => {
    const twin = await device.getTwin();
    const received = waitFor<Record<string, unknown>>((resolve) => {
      twin.on('properties.desired', (delta: Record<string, unknown>) => {
        if (delta.interval === 42) resolve(delta);
      });
    });
    const { responseBody: current } = await service.registry.getTwin(deviceId);
    await service.registry.updateTwin(deviceId, { properties: { desired: { interval: 42 } } }, current.etag);
    const delta = await received;
    expect(delta.$version).toBeGreaterThan(1);
  });

  it('refuses a twin update with a stale etag (412)', async () => {
    await expect(service.registry.updateTwin(deviceId, { properties: { desired: { x: 1 } } }, 'AAAAAAAAAAE='))
      .rejects.toMatchObject({ name: 'InvalidEtagError' });
  });

  it('invokes a direct method from the service SDK and returns the device answer', async () => {
    device.onDeviceMethod('reboot', (request, response) => {
      const echoed: unknown = request.payload;
      void response.send(201, { echoed });
    });
    // The SDK subscribes in the background; connectTimeoutInSeconds lets the hub wait for it, as IoT Hub does.
    const result = await invokeMethod(service.client, deviceId,
      { methodName: 'reboot', payload: { delay: 3 }, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 });
    expect(result).toEqual({ status: 201, payload: { echoed: { delay: 3 } } });
  });

  it('delivers a C2D message with its property bag', async () => {
    const received = waitFor<deviceSdk.Message>((resolve) => device.on('message', resolve));
    // Sent before the SDK's subscription lands: the hub holds it, as IoT Hub's C2D queue does.
    const messageId = await hub.sendC2d(deviceId, { data: 'hello device', correlationId: 'c-1', properties: { 'command type': 'ping&pong' } });
    const message = await received;
    expect(message.getBytes().toString()).toBe('hello device');
    expect(message.messageId).toBe(messageId);
    expect(message.correlationId).toBe('c-1');
    expect(message.properties.getValue('command type')).toBe('ping&pong');
    await device.complete(message);
  });

  it('captures D2C messages with their properties', async () => {
    const message = new deviceSdk.Message(JSON.stringify({ t: 21.5 }));
    message.messageId = 'm-1';
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('alert', 'high temp');
    await device.sendEvent(message);
    const [captured] = hub.d2c({ deviceId }).filter((m) => m.systemProperties.mid === 'm-1');
    expect(captured?.body.toString()).toBe('{"t":21.5}');
    expect(captured?.systemProperties).toMatchObject({ ct: 'application/json', ce: 'utf-8' });
    expect(captured?.properties).toEqual({ alert: 'high temp' });
  });

  it('starts a device registered by DPS with the enrollment\'s initial twin', async () => {
    await hub.registerDevice({ deviceId: 'from-dps', registrationId: 'reg-1', primaryKey: randomBytes(32),
      initialTwin: { tags: { fleet: 'a' }, properties: { desired: { telemetryInterval: 30 } } } });
    const { responseBody } = await service.registry.getTwin('from-dps');
    expect(responseBody.properties.desired.telemetryInterval).toBe(30);
    expect(responseBody.tags).toEqual({ fleet: 'a' });
    const other = await openDevice(hub, 'from-dps');
    const twin = await other.getTwin();
    expect(twin.properties.desired.telemetryInterval).toBe(30);
    await other.close();
  });

  it('gets and deletes the device identity', async () => {
    await hub.registerDevice({ deviceId: 'doomed', registrationId: 'doomed', primaryKey: randomBytes(32) });
    const { responseBody } = await service.registry.get('doomed');
    expect(responseBody.deviceId).toBe('doomed');
    await service.registry.delete('doomed');
    await expect(service.registry.get('doomed')).rejects.toMatchObject({ name: 'DeviceNotFoundError' });
  });
});
