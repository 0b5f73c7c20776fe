import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceToken, startDps, type Dps } from '../cloud/dps/dps.js';
import { RecordingHub } from '../cloud/dps/recording-hub.js';
import {
  dpsRequest, operationStatus, provisionSoftwareDevice, registerPath, registrationBody, registrationSas, requestChallenge, sendRegistration, type DpsTarget, type SimDpsResponse,
} from '../cloud/dps/software-device.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { ofType } from '../support/matchers.js';
import { randomLoopbackAddress } from '../support/ports.js';

/**
 * Refusals as DPS refuses, over real TLS with devices whose keys are in software: each
 * with its status code and a DPS error body, and the server keeps serving others.
 */
describe('local DPS refusals', () => {
  let hub: RecordingHub;
  let stateDir: string;
  let dps: Dps;
  let target: DpsTarget;
  let agent: https.Agent;
  let device: SoftwareTpm;
  const id = 'refusal-device';

  beforeAll(async () => {
    hub = new RecordingHub('hub-r.cloud.test');
    device = SoftwareTpm.create();
    stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-dps-refusals-'));
    dps = await startDps({ address: randomLoopbackAddress(), stateDir, linkedHubs: [hub], retryAfterSeconds: 0 });
    agent = new https.Agent({ ca: dps.ca, keepAlive: true });
    target = { host: dps.host, idScope: dps.idScope, agent };
    dps.enroll({ registrationId: id, attestation: { type: 'tpm', tpm: { endorsementKey: device.endorsementKey.toString('base64') } } });
  });

  afterAll(async () => {
    agent?.destroy();
    await dps?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  /** A DPS error reply: the status, a JSON content type and {errorCode, trackingId, message, timestampUtc}. */
  function expectDpsError(res: SimDpsResponse, status: number, errorCode: number, message?: RegExp): void {
    expect(res.status, res.text).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({ errorCode, trackingId: ofType(String), message: ofType(String), timestampUtc: ofType(String) });
    if (message) expect(String(res.body!.message)).toMatch(message);
  }

  const jsonHeaders = { 'content-type': 'application/json' };
  const put = (body: string | Buffer, headers: Record<string, string> = jsonHeaders, registrationId = id) =>
    dpsRequest(target, 'PUT', registerPath(target, registrationId), { body, headers });

  it('answers the first request with a 401 challenge: JSON, authenticationKey, keyName "registration"', async () => {
    const res = await requestChallenge(target, device, id);
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({ authenticationKey: ofType(String), keyName: 'registration' });
  });

  it('refuses an unknown registration id with 401 (401002) and no challenge', async () => {
    const stranger = SoftwareTpm.create();
    const res = await put(registrationBody(stranger, 'never-enrolled'), jsonHeaders, 'never-enrolled');
    expectDpsError(res, 401, 401002, /no enrollment/);
    expect(res.body).not.toHaveProperty('authenticationKey');
  });

  it('refuses an EK that does not match the enrollment with 401 (401002) and no challenge', async () => {
    const res = await put(registrationBody(SoftwareTpm.create(), id));
    expectDpsError(res, 401, 401002, /endorsement key/);
    expect(res.body).not.toHaveProperty('authenticationKey');
  });

  it('refuses a tampered signature with 401 (401002)', async () => {
    await requestChallenge(target, device, id);
    const sas = registrationSas(device, target, id).replace(/sig=([^&]{4})/, 'sig=AAAA');
    expectDpsError(await sendRegistration(target, device, id, sas), 401, 401002, /signature/);
  });

  it('refuses a token signed with an earlier challenge key: only the latest challenge counts', async () => {
    await requestChallenge(target, device, id);
    const oldSas = registrationSas(device, target, id);
    await put(registrationBody(device, id)); // a second challenge, never activated, moves the key on
    expectDpsError(await sendRegistration(target, device, id, oldSas), 401, 401002, /signature/);
  });

  it('refuses an expired token with 401 (401002)', async () => {
    await requestChallenge(target, device, id);
    const expired = registrationSas(device, target, id, Math.floor(Date.now() / 1000) - 10);
    expectDpsError(await sendRegistration(target, device, id, expired), 401, 401002, /expired/);
  });

  it('refuses a token for another resource, with another key name, or malformed, with 401 (401002)', async () => {
    await requestChallenge(target, device, id);
    const good = registrationSas(device, target, id);
    expectDpsError(await sendRegistration(target, device, id, good.replace('&skn=registration', '&skn=other')), 401, 401002, /registration/);
    expectDpsError(await sendRegistration(target, device, id, good.replace(/sr=[^&]*/, 'sr=elsewhere%2Fregistrations%2Fx')), 401, 401002, /not/);
    expectDpsError(await sendRegistration(target, device, id, 'SharedAccessSignature garbage'), 401, 401002, /malformed/);
  });

  it.each([
    ['text that is not JSON', '{"registrationId":', 400, 400004],
    ['a JSON array', '[]', 400, 400004],
    ['no tpm object', JSON.stringify({ registrationId: id }), 400, 400004],
    ['a registration id that differs from the URL', JSON.stringify({ registrationId: 'other', tpm: {} }), 400, 400004],
    ['an EK that is not base64', JSON.stringify({ registrationId: id, tpm: { endorsementKey: '***', storageRootKey: 'AA==' } }), 400, 400004],
  ])('refuses a body with %s with %i', async (_what, body, status, code) => {
    expectDpsError(await put(body), status, code);
  });

  it('refuses an SRK that is not an RSA storage key with 400 (no challenge can be made for it)', async () => {
    const body = JSON.stringify({ registrationId: id, tpm: { endorsementKey: device.endorsementKey.toString('base64'), storageRootKey: 'AAEC' } });
    expectDpsError(await put(body), 400, 400004, /storage root key/);
  });

  it('refuses a body that is not application/json with 415, and one over 64 KiB with 413', async () => {
    expectDpsError(await put(registrationBody(device, id), { 'content-type': 'text/plain' }), 415, 415001);
    expectDpsError(await put(Buffer.alloc(70 * 1024, 0x20)), 413, 413001);
  });

  it('refuses a request without api-version with 400 and an unknown id scope with 404', async () => {
    expectDpsError(await dpsRequest(target, 'PUT', `/${dps.idScope}/registrations/${id}/register`, { body: registrationBody(device, id), headers: jsonHeaders }), 400, 400004, /api-version/);
    expectDpsError(await dpsRequest(target, 'PUT', `/0neNOPE/registrations/${id}/register?api-version=2019-03-31`, { body: registrationBody(device, id), headers: jsonHeaders }), 404, 404201);
  });

  it('refuses operation status polls without the registration token, and unknown operations with 404', async () => {
    await requestChallenge(target, device, id);
    const sas = registrationSas(device, target, id);
    const accepted = await sendRegistration(target, device, id, sas);
    expect(accepted.status).toBe(202);
    expect(accepted.headers['retry-after']).toBe('0');
    expectDpsError(await dpsRequest(target, 'GET', `/${dps.idScope}/registrations/${id}/operations/${String(accepted.body!.operationId)}?api-version=2019-03-31`), 401, 401002);
    expectDpsError(await operationStatus(target, id, 'no-such-operation', sas), 404, 404201);
  });

  it('keeps serving others: a well-behaved device provisions after all of the above', async () => {
    const { registrationState, hubKey } = await provisionSoftwareDevice(target, device, id);
    expect(registrationState).toMatchObject({ registrationId: id, assignedHub: hub.hostName, deviceId: id, status: 'assigned' });
    expect(hub.last()!.primaryKey).toEqual(hubKey);
  });

  it('answers the next N registrations with 429 + Retry-After, or 503, then serves normally', async () => {
    dps.faults.throttleNext(2, 7);
    dps.faults.failNext(1);
    const first = await put(registrationBody(device, id));
    expectDpsError(first, 429, 429001);
    expect(first.headers['retry-after']).toBe('7');
    expectDpsError(await put(registrationBody(device, id)), 429, 429001);
    expectDpsError(await put(registrationBody(device, id)), 503, 503001);
    expect((await put(registrationBody(device, id))).status).toBe(401); // the challenge again
  });

  it('adds latency to device answers when asked', async () => {
    dps.faults.latencyMs = 300;
    const started = Date.now();
    await put(registrationBody(device, id));
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    dps.faults.clear();
  });

  it('reports a hub that fails the assignment as status "failed"', async () => {
    hub.failWith = new Error('hub unreachable');
    try {
      await expect(provisionSoftwareDevice(target, device, id)).rejects.toThrow(/"status":"failed".*hub unreachable/);
    } finally {
      hub.failWith = undefined;
    }
  });

  describe('service REST API', () => {
    const enrollmentPath = (rid: string) => `/enrollments/${rid}?api-version=2021-10-01`;
    const key = () => dps.serviceConnectionString.split('SharedAccessKey=')[1]!;
    const auth = () => ({ authorization: serviceToken(dps.host, key()), ...jsonHeaders });
    const enrollmentBody = (rid: string, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ registrationId: rid, attestation: { type: 'tpm', tpm: { endorsementKey: device.endorsementKey.toString('base64') } }, ...extra });

    it('creates, reads and deletes an enrollment with a service token', async () => {
      const created = await dpsRequest(target, 'PUT', enrollmentPath('svc-1'), { body: enrollmentBody('svc-1'), headers: auth() });
      expect(created.status).toBe(200);
      expect(created.body).toMatchObject({ registrationId: 'svc-1', provisioningStatus: 'enabled', etag: ofType(String) });
      expect((await dpsRequest(target, 'GET', enrollmentPath('svc-1'), { headers: auth() })).body).toEqual(created.body);
      expect((await dpsRequest(target, 'DELETE', enrollmentPath('svc-1'), { headers: auth() })).status).toBe(204);
      expectDpsError(await dpsRequest(target, 'GET', enrollmentPath('svc-1'), { headers: auth() }), 404, 404201);
      expectDpsError(await dpsRequest(target, 'DELETE', enrollmentPath('svc-1'), { headers: auth() }), 404, 404201);
    });

    it('refuses missing, wrong-key, wrong-policy, wrong-host and expired service tokens with 401', async () => {
      const wrongKey = Buffer.alloc(32, 7).toString('base64');
      for (const authorization of [
        undefined,
        serviceToken(dps.host, wrongKey),
        serviceToken(dps.host, key()).replace('skn=provisioningserviceowner', 'skn=enrollmentread'),
        serviceToken('other.example', key()),
        serviceToken(dps.host, key(), Math.floor(Date.now() / 1000) - 1),
        'SharedAccessSignature sr=&sig=',
      ]) {
        const headers: Record<string, string> = authorization ? { authorization } : {};
        expectDpsError(await dpsRequest(target, 'GET', enrollmentPath(id), { headers }), 401, 401002);
      }
    });

    it.each([
      ['not JSON', () => '{', /JSON/],
      ['a JSON string', () => '"x"', /object/],
      ['no attestation', () => JSON.stringify({ registrationId: 'svc-2' }), /attestation/],
      ['x509 attestation', () => JSON.stringify({ registrationId: 'svc-2', attestation: { type: 'x509' } }), /only "tpm"/],
      ['an EK that is not a TPM2B_PUBLIC', () => JSON.stringify({ registrationId: 'svc-2', attestation: { type: 'tpm', tpm: { endorsementKey: 'AAAA' } } }), /TPM2B_PUBLIC/],
      ['a registration id unlike the URL', () => enrollmentBody('svc-3'), /does not match/],
      ['an invalid registration id', () => enrollmentBody('Svc 2'), /registration id/],
      ['an unknown provisioning status', () => enrollmentBody('svc-2', { provisioningStatus: 'maybe' }), /provisioningStatus/],
      ['a hub that is not linked', () => enrollmentBody('svc-2', { iotHubs: ['stranger.cloud.test'] }), /not linked/],
      ['an unsupported allocation policy', () => enrollmentBody('svc-2', { allocationPolicy: 'geoLatency' }), /allocationPolicy/],
      ['an initial twin that is not an object', () => enrollmentBody('svc-2', { initialTwin: [1] }), /initialTwin/],
    ])('refuses an enrollment body with %s with 400 (400004)', async (_what, body, message) => {
      expectDpsError(await dpsRequest(target, 'PUT', enrollmentPath('svc-2'), { body: body(), headers: auth() }), 400, 400004, message);
    });

    it('refuses the wrong content type (415), an oversized body (413), other methods (405), and If-Match on a missing enrollment (412)', async () => {
      expectDpsError(await dpsRequest(target, 'PUT', enrollmentPath('svc-2'), { body: enrollmentBody('svc-2'), headers: { ...auth(), 'content-type': 'text/plain' } }), 415, 415001);
      expectDpsError(await dpsRequest(target, 'PUT', enrollmentPath('svc-2'), { body: Buffer.alloc(65 * 1024 + 1, 0x20), headers: auth() }), 413, 413001);
      expectDpsError(await dpsRequest(target, 'POST', enrollmentPath('svc-2'), { body: '{}', headers: auth() }), 405, 405001);
      expectDpsError(await dpsRequest(target, 'PUT', enrollmentPath('svc-2'), { body: enrollmentBody('svc-2'), headers: { ...auth(), 'if-match': '"abc"' } }), 412, 412002);
    });
  });
});
