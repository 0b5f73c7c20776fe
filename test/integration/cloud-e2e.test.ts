import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import common from 'azure-iot-common';
import device from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import provisioningDevice from 'azure-iot-provisioning-device';
import securityTpm from 'azure-iot-security-tpm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisioningServiceClient, provisioningTransport } from '../cloud/dps/sdk-clients.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { serviceRequest } from '../cloud/hub/service-request.js';
import { invokeMethod } from '../support/direct-method.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';
import { fromCallback } from '../support/callback.js';
import { CloudProcess } from '../support/cloud-process.js';
import { updateReported } from '../support/twin.js';

const { Message } = common;

describe('the local cloud with the Azure SDKs only and a real TPM', () => {
  let dir: string;
  let swtpm: SwtpmInstance;
  let cloud: CloudProcess;
  let addresses: string[];

  beforeAll(async () => {
    addresses = [randomLoopbackAddress(), randomLoopbackAddress(), randomLoopbackAddress()];
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-cloud-e2e-'));
    [swtpm, cloud] = await Promise.all([SwtpmInstance.start(), CloudProcess.start(dir, addresses)]);
  }, 30_000);
  afterAll(async () => {
    if (cloud) await cloud.stop();
    await swtpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('describes itself in one JSON line', () => {
    const d = cloud.description;
    expect(d).toMatchObject({ provisioningHost: addresses[0], hubHost: addresses[1] });
    expect(d.idScope).toMatch(/^0ne[0-9A-F]{8}$/);
    expect(d.linkedHubs.map((h) => h.host)).toEqual([addresses[1], addresses[2]]);
    expect(readFileSync(d.caCertPath, 'utf8')).toContain('BEGIN CERTIFICATE');
    expect(d.provisioningServiceConnectionString).toMatch(/^HostName=[^;]+;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=/);
    expect(d.hubServiceConnectionString).toMatch(/^HostName=[^;]+;SharedAccessKeyName=iothubowner;SharedAccessKey=/);
    expect(d.adminUrl).toBe(`https://${addresses[1]}:443/admin`);
  });

  it('enrolls, provisions, connects, and serves twin, methods, C2D and D2C, across a token renewal and a restart', async () => {
    const d = cloud.description;
    const ca = readFileSync(d.caCertPath, 'utf8');
    const tpm = clientFor(swtpm.transport);
    const security = new securityTpm.TpmSecurityClient(undefined, tpm.sdkTpm());
    try {
      // Enroll the TPM's EK with the unmodified provisioning service SDK.
      const ek = await fromCallback<Buffer>((cb) => security.getEndorsementKey(cb));
      const registrationId = await fromCallback<string>((cb) => security.getRegistrationId(cb));
      const service = provisioningServiceClient(d.provisioningServiceConnectionString, ca);
      await service.createOrUpdateIndividualEnrollment({
        registrationId, deviceId: 'sdk-device', attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } },
      } as never);

      // Provision with the unmodified device SDK: TPM attestation over HTTPS.
      const result = await fromCallback<{ registrationState?: { assignedHub: string; deviceId: string } }>((cb) =>
        void provisioningDevice.ProvisioningDeviceClient.create(d.provisioningHost, d.idScope, provisioningTransport(ca), security).register(cb as never));
      const assigned = result.registrationState!;
      expect(assigned.deviceId).toBe('sdk-device');
      const hub = d.linkedHubs.find((h) => h.host === assigned.assignedHub)!;
      expect(hub).toBeDefined();

      // Connect with the TPM authentication provider; tokens live 6 s and are renewed 3 s early.
      const auth = securityTpm.TpmAuthenticationProvider.fromTpmSecurityClient(assigned.deviceId, assigned.assignedHub, security);
      Object.assign(auth as object, { _tokenValidTimeInSeconds: 6, _tokenRenewalMarginInSeconds: 3 });
      const client = device.Client.fromAuthenticationProvider(auth, deviceMqtt.Mqtt);
      await client.setOptions({ ca });
      await client.open();
      const { client: hubService, registry } = serviceClients(hub.serviceConnectionString, ca);
      try {
        const twin = await client.getTwin();
        await updateReported(twin, { firmware: '1.2.3' });
        const desired = new Promise<number>((resolve) => twin.on('properties.desired', (patch: { interval?: number }) => {
          if (patch.interval !== undefined) resolve(patch.interval);
        }));
        await registry.updateTwin('sdk-device', { properties: { desired: { interval: 30 } } }, '*');
        expect(await desired).toBe(30);
        expect((await registry.getTwin('sdk-device')).responseBody.properties.reported.firmware).toBe('1.2.3');

        client.onDeviceMethod('ping', (request, response) => {
          const ping: unknown = request.payload;
          void response.send(200, { pong: ping });
        });
        const c2d: string[] = [];
        client.on('message', (msg: InstanceType<typeof Message>) => {
          c2d.push(msg.getBytes().toString());
          void client.complete(msg);
        });
        await new Promise((r) => setTimeout(r, 300)); // subscriptions settle

        const invoke = (n: number) => invokeMethod(hubService, 'sdk-device', { methodName: 'ping', payload: n, responseTimeoutInSeconds: 5 });
        expect(await invoke(1)).toEqual({ status: 200, payload: { pong: 1 } });
        const target = { address: hub.host, hostName: hub.host, ca, serviceConnectionString: hub.serviceConnectionString };
        expect((await serviceRequest(target, 'POST', '/admin/devices/sdk-device/messages', JSON.stringify({ data: 'hello' }))).status).toBe(202);
        await client.sendEvent(new Message('{"t":21.5}'));

        // Past two token lifetimes: the renewed tokens keep methods and C2D flowing.
        await new Promise((r) => setTimeout(r, 8_000));
        expect(await invoke(2)).toEqual({ status: 200, payload: { pong: 2 } });
        expect((await serviceRequest(target, 'POST', '/admin/devices/sdk-device/messages', JSON.stringify({ data: 'again' }))).status).toBe(202);
        await expect.poll(() => c2d, { timeout: 5_000 }).toEqual(['hello', 'again']);
        const d2c = JSON.parse((await serviceRequest(target, 'GET', '/admin/d2c?deviceId=sdk-device')).body) as { body: string }[];
        expect(d2c.map((m) => Buffer.from(m.body, 'base64').toString())).toContain('{"t":21.5}');
      } finally {
        await client.close();
      }

      // Restart: state survives, and the provisioned device connects again without DPS.
      expect(await cloud.stop()).toBe(0);
      cloud = await CloudProcess.start(dir, addresses);
      expect(cloud.description.idScope).toBe(d.idScope);
      const again = device.Client.fromAuthenticationProvider(
        securityTpm.TpmAuthenticationProvider.fromTpmSecurityClient(assigned.deviceId, assigned.assignedHub, security), deviceMqtt.Mqtt);
      await again.setOptions({ ca });
      await again.open();
      await again.close();
    } finally {
      await tpm.close();
    }
  }, 60_000);
});
