import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubErrors, SimHubError } from '../cloud/errors.js';
import { checkBlobName, FileUploads } from '../cloud/files/file-uploads.js';
import type { LocalStorage } from '../cloud/files/storage.js';
import { sendError } from '../cloud/http.js';
import type { DeviceRecord } from '../cloud/hub/registry.js';
import { createSas } from '../cloud/sas.js';
import { ofType } from '../support/matchers.js';

const HOST = 'hub.example';
const KEY = Buffer.alloc(32, 7);
const storage: LocalStorage = {
  blobEndpoint: 'https://127.0.0.1:1/devstoreaccount1', container: 'uploads', sdkHostName: '127.0.0.1:1/devstoreaccount1',
  blobSas: (name) => `?sv=x&sr=b&sp=rw&sig=${encodeURIComponent(name)}`,
  download: () => Promise.resolve(Buffer.alloc(0)), blobSize: () => Promise.resolve(42), listBlobs: () => Promise.resolve([]), stop: () => Promise.resolve(),
};
const device = { deviceId: 'd1', primaryKey: KEY.toString('base64'), secondaryKey: Buffer.alloc(32, 8).toString('base64'), status: 'enabled' } as DeviceRecord;
const token = (resource = `${HOST}/devices/d1`, key = KEY, expiry = Math.floor(Date.now() / 1000) + 600) => createSas(key, resource, expiry);

describe('the local hub\'s device file upload endpoints', () => {
  let files: FileUploads;
  let server: http.Server;
  let base: string;

  beforeAll(async () => {
    files = new FileUploads(storage);
    server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      files.handle({ hostName: HOST, device: (id) => (id === 'd1' ? device : undefined) }, req, res, url).catch((err: unknown) => {
        req.resume();
        sendError(res, err instanceof SimHubError ? err : hubErrors.internal(), 'tracking-id');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => { server.close(); });

  const post = async (path: string, body: unknown, authorization: string | undefined = token()) => {
    const response = await fetch(`${base}${path}`, {
      method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', ...(authorization ? { Authorization: authorization } : {}) },
    });
    const text = await response.text();
    return { status: response.status, code: response.headers.get('iothub-errorcode'), body: text ? JSON.parse(text) as Record<string, unknown> : undefined };
  };

  it('hands out a SAS for the blob filed under the device id, and records the completion notification', async () => {
    const started = await post('/devices/d1/files?api-version=2021-04-12', { blobName: 'logs/bundle.tar.gz' });
    expect(started.status).toBe(200);
    expect(started.body).toEqual({
      correlationId: ofType(String), hostName: '127.0.0.1:1/devstoreaccount1', containerName: 'uploads',
      blobName: 'd1/logs/bundle.tar.gz', sasToken: '?sv=x&sr=b&sp=rw&sig=d1%2Flogs%2Fbundle.tar.gz',
    });
    const correlationId = started.body!.correlationId as string;
    // azure-iot-device's form: the correlation id in the path.
    const done = await post(`/devices/d1/files/notifications/${encodeURIComponent(correlationId)}?api-version=2021-04-12`, { isSuccess: true, statusCode: 201, statusDescription: 'ok' });
    expect(done.status).toBe(204);
    expect(files.notifications('d1').at(-1)).toMatchObject({ blobName: 'd1/logs/bundle.tar.gz', isSuccess: true, statusCode: 201, blobSizeInBytes: 42 });
    // Once notified, the correlation id is spent.
    const again = await post(`/devices/d1/files/notifications?api-version=2021-04-12`, { correlationId, isSuccess: true, statusCode: 201 });
    expect(again).toMatchObject({ status: 400, code: 'ArgumentInvalid' });
  });

  it('takes the documented form too: the correlation id in the body', async () => {
    const started = await post('/devices/d1/files?api-version=2021-04-12', { blobName: 'x.bin' });
    const done = await post('/devices/d1/files/notifications?api-version=2021-04-12', { correlationId: started.body!.correlationId, isSuccess: false, statusCode: 500, statusDescription: 'storage said no' });
    expect(done.status).toBe(204);
    expect(files.notifications('d1').at(-1)).toMatchObject({ blobName: 'd1/x.bin', isSuccess: false, statusDescription: 'storage said no' });
  });

  it.each([
    ['no token', () => undefined, 401],
    ['a token for another device', () => token(`${HOST}/devices/d2`), 401],
    ['a token signed with another key', () => token(undefined, Buffer.alloc(32, 1)), 401],
    ['an expired token', () => token(undefined, KEY, 1000), 401],
    ['a malformed token', () => 'SharedAccessSignature sr=x', 401],
  ])('refuses %s with 401', async (_what, authorization, status) => {
    expect((await post('/devices/d1/files?api-version=2021-04-12', { blobName: 'a' }, authorization() ?? '')).status).toBe(status);
  });

  it.each([
    ['/devices/d1/files', { blobName: 'a' }, 400, 'IotHubFormatError'],
    ['/devices/d1/files?api-version=2021-04-12', 'not json', 400, 'IotHubFormatError'],
    ['/devices/d1/files?api-version=2021-04-12', '', 400, 'IotHubFormatError'],
    ['/devices/d1/files?api-version=2021-04-12', [1], 400, 'ArgumentInvalid'],
    ['/devices/d1/files?api-version=2021-04-12', {}, 400, 'ArgumentInvalid'],
    ['/devices/d1/files?api-version=2021-04-12', { blobName: '../etc/passwd' }, 400, 'ArgumentInvalid'],
    ['/devices/d1/files/notifications?api-version=2021-04-12', { isSuccess: true, statusCode: 201 }, 400, 'ArgumentInvalid'],
    ['/devices/d1/files/notifications?api-version=2021-04-12', { correlationId: 'c', isSuccess: 'yes', statusCode: 201 }, 400, 'ArgumentInvalid'],
    ['/devices/d1/files/notifications?api-version=2021-04-12', { correlationId: 'c', isSuccess: true, statusCode: 2.5 }, 400, 'ArgumentInvalid'],
    ['/devices/d1/files/notifications?api-version=2021-04-12', { correlationId: 'never-issued', isSuccess: true, statusCode: 201 }, 400, 'ArgumentInvalid'],
  ])('answers %s with %j as %i %s', async (path, body, status, code) => {
    expect(await post(path, body)).toMatchObject({ status, code });
  });

  it.each(['', '/abs', 'a//b', 'a/./b', 'a/../b', 'tab\there', 'back\\slash', 'x'.repeat(1025)])('refuses the blob name %j', (name) => {
    expect(() => checkBlobName(name)).toThrow(SimHubError);
  });

  it.each(['a', 'logs/2026/bundle.tar.gz', 'iot-agent-support-vm-20261201T233739Z.tar.gz', 'x'.repeat(1024)])('takes the blob name %j', (name) => {
    expect(checkBlobName(name)).toBe(name);
  });
});
