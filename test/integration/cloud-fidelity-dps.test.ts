import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serviceToken, startDps, type Dps } from '../cloud/dps/dps.js';
import { RecordingHub } from '../cloud/dps/recording-hub.js';
import { POLLS_PER_WINDOW } from '../cloud/dps/registrations.js';
import {
  dpsRequest, operationStatus, registerPath, registrationBody, registrationSas, requestChallenge, sendRegistration, type DpsTarget,
} from '../cloud/dps/software-device.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { randomLoopbackAddress } from '../support/ports.js';

/**
 * The local DPS answers as DPS is documented to (test/cloud/README.md names the source of
 * each): a Date on every answer, Retry-After on 202, 429 for a sixth status poll within
 * ten seconds, and the registration id rule. Devices here speak HTTPS by hand.
 */
describe('local DPS, as documented', () => {
  let hub: RecordingHub;
  let stateDir: string;
  let dps: Dps;
  let target: DpsTarget;
  let agent: https.Agent;

  beforeAll(async () => {
    hub = new RecordingHub('hub-f.cloud.test');
    stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-fidelity-dps-'));
    dps = await startDps({ address: randomLoopbackAddress(), stateDir, linkedHubs: [hub] });
    agent = new https.Agent({ ca: dps.ca, keepAlive: true });
    target = { host: dps.host, idScope: dps.idScope, agent };
  });
  afterEach(() => dps.faults.clear());
  afterAll(async () => {
    agent?.destroy();
    await dps?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const enrolled = (registrationId: string) => {
    const tpm = SoftwareTpm.create();
    dps.enroll({ registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: tpm.endorsementKey.toString('base64') } } });
    return tpm;
  };

  it('sends Date on every answer and, by default, the real service\'s Retry-After of 3 s on every 202', async () => {
    const tpm = enrolled('dated');
    dps.faults.assignmentDelayMs = 500;
    const challenge = await requestChallenge(target, tpm, 'dated');
    const sas = registrationSas(tpm, target, 'dated');
    const accepted = await sendRegistration(target, tpm, 'dated', sas);
    const polled = await operationStatus(target, 'dated', String(accepted.body?.operationId), sas);
    await new Promise((r) => setTimeout(r, 600));
    const done = await operationStatus(target, 'dated', String(accepted.body?.operationId), sas);
    const refused = await dpsRequest(target, 'GET', '/nope');
    expect([challenge.status, accepted.status, polled.status, done.status, refused.status]).toEqual([401, 202, 202, 200, 404]);
    for (const res of [challenge, accepted, polled, done, refused]) expect(Date.parse(String(res.headers.date))).toBeGreaterThan(Date.now() - 60_000);
    expect([accepted.headers['retry-after'], polled.headers['retry-after']]).toEqual(['3', '3']);
  });

  it(`throttles status polls beyond ${POLLS_PER_WINDOW} in 10 s for one device with 429 and a Retry-After of at most 10 s`, async () => {
    const tpm = enrolled('impatient');
    dps.faults.assignmentDelayMs = 60_000;
    await requestChallenge(target, tpm, 'impatient');
    const sas = registrationSas(tpm, target, 'impatient');
    const { body } = await sendRegistration(target, tpm, 'impatient', sas);
    const statuses: number[] = [];
    let throttled: Awaited<ReturnType<typeof operationStatus>> | undefined;
    for (let i = 0; i < POLLS_PER_WINDOW + 1; i++) {
      const res = await operationStatus(target, 'impatient', String(body?.operationId), sas);
      statuses.push(res.status);
      if (res.status === 429) throttled = res;
    }
    expect(statuses).toEqual([202, 202, 202, 202, 202, 429]);
    expect(throttled!.body).toMatchObject({ errorCode: 429001 });
    const wait = Number(throttled!.headers['retry-after']);
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(10);
    expect(dps.counters.throttledPolls).toBe(1);
  });

  let anyTpm: SoftwareTpm | undefined;
  it.each(['-starts', 'ends-', '.dot', 'dot.', '_x', 'x_', ':x', 'x:'])('refuses the registration id %j (a special character at the start or the end) with 400', async (id) => {
    const tpm = (anyTpm ??= SoftwareTpm.create());
    const device = await dpsRequest(target, 'PUT', registerPath(target, id), { body: registrationBody(tpm, id), headers: { 'content-type': 'application/json' } });
    expect(device.status).toBe(400);
    const enrollment = await dpsRequest({ ...target }, 'PUT', `/enrollments/${encodeURIComponent(id)}?api-version=2021-10-01`, {
      body: JSON.stringify({ registrationId: id, attestation: { type: 'tpm', tpm: { endorsementKey: tpm.endorsementKey.toString('base64') } } }),
      headers: { 'content-type': 'application/json', authorization: serviceToken(dps.host, dps.serviceConnectionString.split('SharedAccessKey=')[1]!) },
    });
    expect(enrollment.status).toBe(400);
  });
});
