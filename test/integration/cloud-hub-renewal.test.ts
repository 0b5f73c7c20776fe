import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type deviceSdk from 'azure-iot-device';
import type iothub from 'azure-iothub';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { randomLoopbackAddress } from '../support/ports.js';

// Token renewal as the SDK does it: DISCONNECT + CONNECT with clean=false and a new
// token, no re-subscribe; the hub keeps the session and drops connections whose token expired.
let hub: LocalHub;
let stateDir: string;
let device: deviceSdk.Client;
let service: { client: iothub.Client; registry: iothub.Registry };
const received: string[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-renewal-'));
  hub = await startHub({ address: randomLoopbackAddress(), stateDir, log: () => undefined });
  await hub.registerDevice({ deviceId: 'renewer', registrationId: 'renewer', primaryKey: randomBytes(32) });
  // Tokens valid for 4 s, renewed 2 s before they expire.
  device = await openDevice(hub, 'renewer', { tokenValidTimeInSeconds: 4, tokenRenewalMarginInSeconds: 2 });
  device.onDeviceMethod('echo', (req, res) => void res.send(200, req.payload));
  device.on('message', (msg: deviceSdk.Message) => {
    received.push(msg.getBytes().toString());
    void device.complete(msg);
  });
  service = serviceClients(hub.serviceConnectionString, hub.ca);
});

afterAll(async () => {
  await device?.close();
  await hub?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

it('keeps methods and C2D flowing across token renewals without re-subscribing', async () => {
  const first = await service.client.invokeDeviceMethod('renewer', { methodName: 'echo', payload: 1, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 });
  expect(first.result).toEqual({ status: 200, payload: 1 });
  await hub.sendC2d('renewer', { data: 'before' });
  const connectsBefore = hub.counters.connects;
  const subscribesBefore = hub.counters.subscribes;

  await new Promise((resolve) => setTimeout(resolve, 5_500)); // two renewals at least

  expect(hub.counters.connects - connectsBefore).toBeGreaterThanOrEqual(2);
  expect(hub.counters.subscribes).toBe(subscribesBefore);
  const after = await service.client.invokeDeviceMethod('renewer', { methodName: 'echo', payload: 2, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 });
  expect(after.result).toEqual({ status: 200, payload: 2 });
  await hub.sendC2d('renewer', { data: 'after' });
  await expect.poll(() => received, { timeout: 5_000 }).toEqual(['before', 'after']);
}, 20_000);
