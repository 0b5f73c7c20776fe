import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDps, type Dps, type DpsOptions } from '../cloud/dps/dps.js';
import { RecordingHub } from '../cloud/dps/recording-hub.js';
import { provisionSoftwareDevice, type DpsTarget } from '../cloud/dps/software-device.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { randomLoopbackAddress } from '../support/ports.js';

const run = promisify(execFile);

describe('local DPS state and CA trust', () => {
  let hubs: RecordingHub[];
  let device: SoftwareTpm;
  let options: DpsOptions;
  let dps: Dps;
  let agent: https.Agent;
  const target = (): DpsTarget => ({ host: dps.host, idScope: dps.idScope, agent });

  beforeAll(async () => {
    hubs = [new RecordingHub('hub-1.cloud.test'), new RecordingHub('hub-2.cloud.test')];
    device = SoftwareTpm.create();
    options = { address: randomLoopbackAddress(), stateDir: mkdtempSync(path.join(tmpdir(), 'cloud-dps-restart-')), linkedHubs: hubs, retryAfterSeconds: 0 };
    dps = await startDps(options);
    agent = new https.Agent({ ca: dps.ca, keepAlive: true });
  });

  afterAll(async () => {
    agent?.destroy();
    await dps?.stop();
    rmSync(options.stateDir, { recursive: true, force: true });
  });

  it('keeps enrollments, assignments, the id scope, the service key and the CA across a restart', async () => {
    dps.enroll({ registrationId: 'survivor', deviceId: 'survivor-device', attestation: { type: 'tpm', tpm: { endorsementKey: device.endorsementKey.toString('base64') } } });
    const first = await provisionSoftwareDevice(target(), device, 'survivor');
    const before = { idScope: dps.idScope, connection: dps.serviceConnectionString, ca: dps.ca, enrollment: dps.enrollment('survivor') };

    agent.destroy();
    await dps.stop();
    dps = await startDps(options);
    agent = new https.Agent({ ca: dps.ca, keepAlive: true });

    expect({ idScope: dps.idScope, connection: dps.serviceConnectionString, ca: dps.ca, enrollment: dps.enrollment('survivor') }).toEqual(before);
    const assignments = JSON.parse(readFileSync(path.join(options.stateDir, 'dps', 'assignments.json'), 'utf8')) as { data: Record<string, { assignedHub: string }> };
    expect(assignments.data.survivor).toMatchObject({ assignedHub: first.registrationState.assignedHub, deviceId: 'survivor-device' });

    const again = await provisionSoftwareDevice(target(), device, 'survivor');
    expect(again.registrationState).toMatchObject({ assignedHub: first.registrationState.assignedHub, createdDateTimeUtc: first.registrationState.createdDateTimeUtc });
    expect(again.hubKey).not.toEqual(first.hubKey);
  });

  it('spreads hashed allocations over both linked hubs', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 12 && seen.size < 2; i++) {
      const tpm = SoftwareTpm.create();
      dps.enroll({ registrationId: `spread-${i}`, attestation: { type: 'tpm', tpm: { endorsementKey: tpm.endorsementKey.toString('base64') } } });
      seen.add(String((await provisionSoftwareDevice(target(), tpm, `spread-${i}`)).registrationState.assignedHub));
    }
    expect([...seen].sort()).toEqual(hubs.map((h) => h.hostName).sort());
  });

  it('serves the unmodified service SDK from fromConnectionString in a process started with NODE_EXTRA_CA_CERTS', async () => {
    const script = `
      import { ProvisioningServiceClient } from 'azure-iot-provisioning-service';
      const client = ProvisioningServiceClient.fromConnectionString(process.env.DPS_CONNECTION);
      const id = 'from-child-process';
      const { responseBody: created } = await client.createOrUpdateIndividualEnrollment({ registrationId: id, attestation: { type: 'tpm', tpm: { endorsementKey: process.env.DPS_EK } } });
      const { responseBody: fetched } = await client.getIndividualEnrollment(id);
      await client.deleteIndividualEnrollment(id);
      let afterDelete;
      try { await client.getIndividualEnrollment(id); } catch (err) { afterDelete = err.response?.statusCode; }
      console.log(JSON.stringify({ created: created.registrationId, etag: typeof created.etag === 'string' && fetched.etag === created.etag, afterDelete }));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: process.cwd(),
      env: { ...process.env, NODE_EXTRA_CA_CERTS: dps.caCertPath, DPS_CONNECTION: dps.serviceConnectionString, DPS_EK: device.endorsementKey.toString('base64') },
      timeout: 20_000,
    });
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ created: 'from-child-process', etag: true, afterDelete: 404 });
  });

  it('is refused by a client that does not trust the test CA', async () => {
    const untrusting = new https.Agent({ keepAlive: false });
    await expect(provisionSoftwareDevice({ host: dps.host, idScope: dps.idScope, agent: untrusting }, device, 'survivor')).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
  });
});
