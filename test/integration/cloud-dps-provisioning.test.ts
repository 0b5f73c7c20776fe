import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device';
import type { ProvisioningServiceClient } from 'azure-iot-provisioning-service';
import type { IndividualEnrollment } from 'azure-iot-provisioning-service/dist/interfaces.js';
import { TpmSecurityClient } from 'azure-iot-security-tpm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startDps, type Dps } from '../cloud/dps/dps.js';
import { RecordingHub } from '../cloud/dps/recording-hub.js';
import { provisioningServiceClient, provisioningTransport } from '../cloud/dps/sdk-clients.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';
import { fromCallback } from '../support/callback.js';

/**
 * The local DPS against the unmodified Azure SDKs and a real TPM (swtpm): enrollment with
 * azure-iot-provisioning-service, registration with azure-iot-provisioning-device(-http)
 * and azure-iot-security-tpm, over real TLS that trusts only the test CA.
 */
describe('local DPS with the Azure SDKs and swtpm', () => {
  let hubA: RecordingHub;
  let hubB: RecordingHub;
  let stateDir: string;
  let dps: Dps;
  let swtpm: SwtpmInstance;
  let tpmClient: TpmClient;
  let security: TpmSecurityClient;
  let service: ProvisioningServiceClient;
  let registrationId: string;
  let endorsementKey: string;

  beforeAll(async () => {
    hubA = new RecordingHub('hub-a.cloud.test');
    hubB = new RecordingHub('hub-b.cloud.test');
    stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-dps-sdk-'));
    [dps, swtpm] = await Promise.all([
      startDps({ address: randomLoopbackAddress(), stateDir, linkedHubs: [hubA, hubB], allocation: 'static', retryAfterSeconds: 1 }),
      SwtpmInstance.start(),
    ]);
    tpmClient = clientFor(swtpm.transport);
    security = new TpmSecurityClient(undefined, tpmClient.sdkTpm());
    service = provisioningServiceClient(dps.serviceConnectionString, dps.ca);
    endorsementKey = (await fromCallback<Buffer>((cb) => security.getEndorsementKey(cb))).toString('base64');
    registrationId = await fromCallback<string>((cb) => security.getRegistrationId(cb));
  });

  afterAll(async () => {
    await tpmClient?.close();
    await Promise.all([dps?.stop(), swtpm?.stop()]);
    rmSync(stateDir, { recursive: true, force: true });
  });

  /** For TPM devices the SDK's result is DPS's whole operation body, registrationState inside. */
  const register = async () => ((await fromCallback<unknown>((cb) =>
    void ProvisioningDeviceClient.create(dps.host, dps.idScope, provisioningTransport(dps.ca), security).register(cb))) as { registrationState: Record<string, unknown> }).registrationState;

  /**
   * A refused challenge is a 401 without an authenticationKey, which the SDK reports as a
   * FormatError (as it would against Azure); the server's refusal count says it refused.
   */
  const expectRefused = async (attempt: Promise<unknown>) => {
    const before = dps.counters.refusals;
    await expect(attempt).rejects.toMatchObject({ name: 'FormatError' });
    expect(dps.counters.refusals).toBe(before + 1);
  };

  const signWithIdentity = (data: Buffer) => fromCallback<Buffer>((cb) => security.signWithIdentity(data, cb));

  it('enrolls the swtpm EK through the service SDK', async () => {
    const created = await fromCallback<IndividualEnrollment>((cb) => service.createOrUpdateIndividualEnrollment({
      registrationId, deviceId: 'sdk-device-1', attestation: { type: 'tpm', tpm: { endorsementKey } },
      allocationPolicy: 'static', iotHubs: [hubA.hostName], initialTwin: { properties: { desired: { telemetryInterval: 30 } } },
    } as unknown as IndividualEnrollment, cb));
    expect(created).toMatchObject({ registrationId, deviceId: 'sdk-device-1', provisioningStatus: 'enabled' });
    expect(created.etag).toBeTruthy();
    const fetched = await fromCallback<IndividualEnrollment>((cb) => service.getIndividualEnrollment(registrationId, cb));
    expect(fetched.etag).toBe(created.etag);
  });

  it('provisions the TPM device: assigned to the static hub, which gets the key the TPM now holds', async () => {
    const result = await register();
    expect(result).toMatchObject({ registrationId, assignedHub: hubA.hostName, deviceId: 'sdk-device-1', status: 'assigned', substatus: 'initialAssignment' });
    const onHub = hubA.last()!;
    expect(onHub).toMatchObject({ deviceId: 'sdk-device-1', registrationId, initialTwin: { properties: { desired: { telemetryInterval: 30 } } } });
    const data = Buffer.from(`${hubA.hostName}/devices/sdk-device-1\n1893456000`);
    expect(Buffer.from(await signWithIdentity(data))).toEqual(createHmac('sha256', onHub.primaryKey).update(data).digest());
    expect(dps.counters).toMatchObject({ challenges: 1, registrations: 1 });
  });

  it('moves the device to another hub when its enrollment changes and it re-provisions', async () => {
    const current = await fromCallback<IndividualEnrollment>((cb) => service.getIndividualEnrollment(registrationId, cb));
    await fromCallback((cb) => service.createOrUpdateIndividualEnrollment({ ...current, iotHubs: [hubB.hostName] }, cb));
    const result = await register();
    expect(result).toMatchObject({ assignedHub: hubB.hostName, substatus: 'deviceDataMigrated' });
    const data = Buffer.from('moved');
    expect(Buffer.from(await signWithIdentity(data))).toEqual(createHmac('sha256', hubB.last()!.primaryKey).update(data).digest());
    expect(hubB.last()!.primaryKey).not.toEqual(hubA.last()!.primaryKey);
  });

  // What the agent must handle itself: for a TPM device the SDK treats the challenge request's
  // 429/503 as "not a 401" and gives up with InvalidOperationError instead of retrying.
  it('surfaces a throttled or unavailable challenge to the caller, then serves the next attempt', async () => {
    dps.faults.throttleNext(1, 1);
    await expect(register()).rejects.toMatchObject({ name: 'InvalidOperationError' });
    dps.faults.failNext(1);
    await expect(register()).rejects.toMatchObject({ name: 'InvalidOperationError' });
    await expect(register()).resolves.toMatchObject({ status: 'assigned' });
  });

  it('refuses a stale etag with 412 (PreconditionFailed)', async () => {
    const current = await fromCallback<IndividualEnrollment>((cb) => service.getIndividualEnrollment(registrationId, cb));
    await fromCallback((cb) => service.createOrUpdateIndividualEnrollment({ ...current }, cb));
    const err = await fromCallback((cb) => service.createOrUpdateIndividualEnrollment({ ...current, deviceId: 'other' }, cb)).catch((e: unknown) => e);
    expect(err).toMatchObject({ response: { statusCode: 412 } });
  });

  /**
   * The same TPM under a registration id of its own: DPS counts status polls per registration
   * id (5 in 10 s), and the tests above have used this TPM's own id often enough already.
   */
  const enrolledAs = async (id: string, provisioningStatus: 'enabled' | 'disabled' = 'enabled') => {
    await fromCallback((cb) => service.createOrUpdateIndividualEnrollment({
      registrationId: id, provisioningStatus, attestation: { type: 'tpm', tpm: { endorsementKey } },
    } as IndividualEnrollment, cb));
    const client = new TpmSecurityClient(id, tpmClient.sdkTpm());
    return {
      register: async () => ((await fromCallback<unknown>((cb) =>
        void ProvisioningDeviceClient.create(dps.host, dps.idScope, provisioningTransport(dps.ca), client).register(cb))) as { registrationState: Record<string, unknown> }).registrationState,
      enable: async () => {
        const current = await fromCallback<IndividualEnrollment>((cb) => service.getIndividualEnrollment(id, cb));
        await fromCallback((cb) => service.createOrUpdateIndividualEnrollment({ ...current, provisioningStatus: 'enabled' }, cb));
      },
    };
  };

  it('ends a disabled enrollment\'s registration with status "disabled" (HTTP 200, as the SDK sees it), then serves it again once enabled', async () => {
    const device = await enrolledAs('disabled-case', 'disabled');
    const before = dps.counters.disabledRegistrations;
    await expect(device.register()).rejects.toMatchObject({ name: 'SyntaxError', message: 'status is disabled', result: { status: 'disabled', registrationState: { status: 'disabled' } } });
    expect(dps.counters.disabledRegistrations).toBe(before + 1);
    await device.enable();
    await expect(device.register()).resolves.toMatchObject({ status: 'assigned' });
  });

  it('with the knob set to "unauthorized", refuses a disabled enrollment with 401 instead (what DPS sends there is not documented)', async () => {
    const device = await enrolledAs('unauthorized-case', 'disabled');
    dps.configure({ disabledEnrollment: 'unauthorized' });
    try {
      await expectRefused(device.register());
    } finally {
      dps.configure({});
    }
  });

  it('ends a registration it could not complete with status "failed", DPS\'s errorCode and errorMessage', async () => {
    const device = await enrolledAs('failed-case');
    dps.faults.failAssignmentNext(1, { errorCode: 400209, errorMessage: 'The IoT hub is not reachable' });
    await expect(device.register()).rejects.toMatchObject({
      name: 'ProvisioningRegistrationFailedError',
      result: { status: 'failed', registrationState: { status: 'failed', errorCode: 400209, errorMessage: 'The IoT hub is not reachable' } },
    });
    await expect(device.register()).resolves.toMatchObject({ status: 'assigned' });
  });

  it('refuses a TPM whose EK is not the enrolled one with 401', async () => {
    const stranger = SoftwareTpm.create();
    await fromCallback((cb) => service.createOrUpdateIndividualEnrollment({
      registrationId: 'enrolled-with-another-ek', attestation: { type: 'tpm', tpm: { endorsementKey: stranger.endorsementKey.toString('base64') } },
    } as IndividualEnrollment, cb));
    const impostor = new TpmSecurityClient('enrolled-with-another-ek', tpmClient.sdkTpm());
    await expectRefused(fromCallback((cb) => void ProvisioningDeviceClient.create(dps.host, dps.idScope, provisioningTransport(dps.ca), impostor).register(cb)));
  });

  it('deletes the enrollment; the device is then refused and the enrollment is 404', async () => {
    await fromCallback((cb) => service.deleteIndividualEnrollment(registrationId, cb));
    await expect(fromCallback((cb) => service.getIndividualEnrollment(registrationId, cb))).rejects.toMatchObject({ response: { statusCode: 404 } });
    await expectRefused(register());
  });
});
