import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type deviceSdk from 'azure-iot-device';
import { afterAll, expect, it } from 'vitest';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { serviceRequest } from '../cloud/hub/service-request.js';
import { invokeMethod } from '../support/direct-method.js';
import { parseObject } from '../support/json.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { updateReported } from '../support/twin.js';

// The hub's state lives in its state directory: devices, keys, twins, the policy key and the CA.
let stateDir: string | undefined;
let hub: LocalHub | undefined;
let device: deviceSdk.Client | undefined;

afterAll(async () => {
  await device?.close();
  await hub?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

it('keeps devices and twins across a restart, and the device reconnects by itself', async () => {
  const address = randomLoopbackAddress();
  stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-restart-'));
  hub = await startHub({ address, stateDir, log: () => undefined });
  await hub.registerDevice({ deviceId: 'keeper', registrationId: 'keeper', primaryKey: randomBytes(32) });
  device = await openDevice(hub, 'keeper');
  device.onDeviceMethod('hello', (_req, res) => void res.send(200, 'still here'));
  const twin = await device.getTwin();
  await updateReported(twin, { boots: 1 });
  const first = serviceClients(hub.serviceConnectionString, hub.ca);
  const { responseBody: before } = await first.registry.getTwin('keeper');
  await first.registry.updateTwin('keeper', { tags: { site: 'lab' }, properties: { desired: { mode: 'eco' } } }, before.etag);
  const { serviceConnectionString, ca } = hub;

  await hub.stop();
  hub = await startHub({ address, stateDir, log: () => undefined });

  expect(hub.serviceConnectionString).toBe(serviceConnectionString);
  expect(hub.ca).toBe(ca);
  const service = serviceClients(hub.serviceConnectionString, hub.ca);
  const { responseBody: after } = await service.registry.getTwin('keeper');
  expect(after.properties.reported.boots).toBe(1);
  expect(after.properties.desired.mode).toBe('eco');
  expect(after.tags).toEqual({ site: 'lab' });
  // The SDK's retry policy reconnects with the same key; the hub waits for it (connectTimeoutInSeconds).
  const result = await invokeMethod(service.client, 'keeper',
    { methodName: 'hello', payload: {}, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 20 });
  expect(result).toEqual({ status: 200, payload: 'still here' });
  const counters = await serviceRequest(hub, 'GET', '/admin/counters');
  expect(parseObject(counters.body).connects).toBeGreaterThanOrEqual(1);
}, 40_000);
