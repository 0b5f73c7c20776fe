import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import device, { type Client } from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandFailure } from '../../agent/commands/command.js';
import { DEFAULTS } from '../../agent/config.js';
import { supportUpload } from '../../agent/daemon/support-upload.js';
import { AgentError } from '../../agent/lib/errors.js';
import type { BundleResult } from '../../agent/support/bundle.js';
import { FileUploads } from '../cloud/files/file-uploads.js';
import { startStorage } from '../cloud/files/storage.js';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub } from '../cloud/hub/hub.js';
import { ensureServerCredentials } from '../cloud/tls.js';
import { randomLoopbackAddress } from '../support/ports.js';

const request = () => ({ sinceSeconds: 3_600, now: new Date('2026-11-26T12:00:00Z'), blobName: 'support/board-17.tar.gz' });

describe('uploading a support bundle through the hub', () => {
  it('refuses at once when not connected, building nothing', async () => {
    let built = false;
    const upload = supportUpload({ config: structuredClone(DEFAULTS), client: () => undefined, build: () => { built = true; return Promise.reject(new Error('not reached')); } });
    await expect(upload.buildAndUpload(request())).rejects.toEqual(new CommandFailure(503, 'not connected to the hub: nothing to upload through'));
    await expect(upload.buildAndUpload(request())).rejects.toMatchObject({ status: 503 });
    expect(built).toBe(false);
  });

  it('builds the bundle from the time asked for into a private directory, and removes it when the link dropped meanwhile', async () => {
    const connected = [{} as Client, undefined];
    const builds: { since: Date; dir: string; now: Date }[] = [];
    const upload = supportUpload({
      config: structuredClone(DEFAULTS),
      client: () => connected.shift(),
      build: (since, dir, now) => {
        builds.push({ since, dir, now });
        return Promise.resolve({ path: `${dir}/bundle.tar.gz`, bytes: 10, manifest: { collectors: [] } } as unknown as BundleResult);
      },
    });
    await expect(upload.buildAndUpload(request())).rejects.toMatchObject({ status: 503, message: 'the hub connection dropped while the bundle was built; ask again' });
    expect(builds).toHaveLength(1);
    expect(builds[0]!.since.toISOString()).toBe('2026-11-26T11:00:00.000Z');
    expect(builds[0]!.now.toISOString()).toBe('2026-11-26T12:00:00.000Z');
    expect(builds[0]!.dir).toMatch(/iot-agent-upload-/);
    expect(existsSync(builds[0]!.dir)).toBe(false);
  });

  it('removes the private directory when building fails too', async () => {
    let dir = '';
    const upload = supportUpload({ config: structuredClone(DEFAULTS), client: () => ({} as Client), build: (_since, d) => { dir = d; return Promise.reject(new Error('disk full')); } });
    await expect(upload.buildAndUpload(request())).rejects.toThrow('disk full');
    expect(dir).not.toBe('');
    expect(existsSync(dir)).toBe(false);
  });
});

describe('the upload itself', () => {
  const before = https.globalAgent.options.ca;
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    https.globalAgent.options.ca = before;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  const scratch = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-support-upload-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  /** A bundle of `text` in the directory it is given (noted in `dirs`), with these collectors' outcomes. */
  const bundleOf = (text: string, collectors: { name: string; status: string }[], dirs: string[] = []) => async (_since: Date, dir: string): Promise<BundleResult> => {
    dirs.push(dir);
    const file = path.join(dir, 'bundle.tar.gz');
    await writeFile(file, text);
    return { path: file, bytes: text.length, manifest: { collectors } } as unknown as BundleResult;
  };
  /** A real SDK client for a hub on loopback where nothing answers HTTPS. */
  const unanswered = () => {
    const client = device.Client.fromConnectionString('HostName=127.0.0.1;DeviceId=d1;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAA==', deviceMqtt.Mqtt);
    client.on('error', () => undefined);
    return client;
  };

  it('uploads the bundle through the hub into blob storage, answers with its name, size and collectors, and keeps no copy', async () => {
    const address = randomLoopbackAddress();
    const dir = scratch();
    const tls = await ensureServerCredentials(path.join(dir, 'tls'), [address]);
    const storage = await startStorage({ address, dir: path.join(dir, 'storage'), tls });
    cleanups.push(() => storage.stop());
    const files = new FileUploads(storage);
    const hub = await startHub({ address, stateDir: path.join(dir, 'hub'), tls, files, log: () => undefined });
    cleanups.push(() => hub.stop());
    await hub.registerDevice({ deviceId: 'board-17', registrationId: 'board-17', primaryKey: randomBytes(32) });
    const client = await openDevice(hub, 'board-17');
    cleanups.push(() => client.close());
    const built: string[] = [];
    const build = bundleOf('the bundle', [{ name: 'tpm', status: 'ok' }, { name: 'journal', status: 'unavailable' }], built);
    const upload = supportUpload({ config: structuredClone(DEFAULTS), client: () => client, build });
    expect(await upload.buildAndUpload(request())).toEqual({
      blobName: 'support/board-17.tar.gz', bytes: 10, collectors: { tpm: 'ok', journal: 'unavailable' },
    });
    expect((await storage.download('board-17/support/board-17.tar.gz')).toString()).toBe('the bundle');
    expect(files.notifications('board-17')).toMatchObject([{ blobName: 'board-17/support/board-17.tar.gz', isSuccess: true, blobSizeInBytes: 10 }]);
    expect(built.map((dir) => existsSync(dir))).toEqual([false]);
  });

  it('fails with the blob name and the step that failed when the hub does not answer, and removes the bundle', async () => {
    const built: string[] = [];
    const upload = supportUpload({ config: structuredClone(DEFAULTS), client: unanswered, build: bundleOf('x', [], built) });
    const err = (await upload.buildAndUpload(request()).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(AgentError);
    expect(err.message).toMatch(/^IoT Hub file upload of support\/board-17\.tar\.gz failed: Could not obtain blob shared access signature/);
    expect(built.map((dir) => existsSync(dir))).toEqual([false]);
  });

  it('trusts tls.extraCaFile for blob storage, read as PEM text, before it uploads', async () => {
    const caFile = path.join(scratch(), 'extra-ca.pem');
    const pem = '-----BEGIN CERTIFICATE-----\nMIIBextra\n-----END CERTIFICATE-----\n';
    writeFileSync(caFile, pem);
    const config = structuredClone(DEFAULTS);
    config.tls.extraCaFile = caFile;
    const upload = supportUpload({ config, client: unanswered, build: bundleOf('x', []) });
    // Nothing answers; the CA is in place by then (an invalid one here, so nothing else in this process may use it).
    await expect(upload.buildAndUpload(request())).rejects.toThrow(/^IoT Hub file upload of support\/board-17\.tar\.gz failed/);
    expect((https.globalAgent.options.ca as string[]).at(-1)).toBe(pem);
  });

  it('fails before uploading when tls.extraCaFile cannot be read', async () => {
    const config = structuredClone(DEFAULTS);
    config.tls.extraCaFile = path.join(scratch(), 'missing.pem');
    const built: string[] = [];
    const upload = supportUpload({ config, client: unanswered, build: bundleOf('x', [], built) });
    await expect(upload.buildAndUpload(request())).rejects.toMatchObject({ code: 'ENOENT', path: config.tls.extraCaFile });
    expect(https.globalAgent.options.ca).toBe(before);
    expect(built.map((dir) => existsSync(dir))).toEqual([false]);
  });
});
