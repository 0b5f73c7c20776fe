import { existsSync } from 'node:fs';
import type { Client } from 'azure-iot-device';
import { describe, expect, it } from 'vitest';
import { CommandFailure } from '../../agent/commands/command.js';
import { DEFAULTS } from '../../agent/config.js';
import { supportUpload } from '../../agent/daemon/support-upload.js';
import type { BundleResult } from '../../agent/support/bundle.js';

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
