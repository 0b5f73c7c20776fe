import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeviceRegistry } from '../cloud/hub/registry.js';

let dir: string;
beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-registry-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('device registry state', () => {
  it('refuses to start from a state file it cannot read, with the reason', () => {
    writeFileSync(path.join(dir, 'hub-devices.json'), JSON.stringify({ schema: 1, devices: [{ deviceId: 'x' }] }));
    expect(() => DeviceRegistry.open(dir)).toThrow(/cannot read/);
    writeFileSync(path.join(dir, 'hub-devices.json'), JSON.stringify({ schema: 9, devices: [] }));
    expect(() => DeviceRegistry.open(dir)).toThrow(/unknown layout/);
  });

  it('keeps registered devices and twins in the state directory', async () => {
    const registry = DeviceRegistry.open(dir);
    await registry.register({ deviceId: 'd1', registrationId: 'r1', primaryKey: Buffer.alloc(32, 7), initialTwin: { properties: { desired: { a: 1 } } } });
    const reopened = DeviceRegistry.open(dir);
    expect(reopened.get('d1')?.primaryKey).toBe(Buffer.alloc(32, 7).toString('base64'));
    expect(reopened.get('d1')?.twin.desired).toEqual({ a: 1 });
  });

  it('refuses device ids IoT Hub refuses and keys of the wrong size', async () => {
    const registry = DeviceRegistry.open(dir);
    for (const deviceId of ['', 'a/b', 'a#', 'a+b', 'x'.repeat(129), 'sp ace']) {
      await expect(registry.register({ deviceId, registrationId: 'r', primaryKey: Buffer.alloc(32) }), deviceId).rejects.toThrow(/not valid/);
    }
    await expect(registry.register({ deviceId: 'ok', registrationId: 'r', primaryKey: Buffer.alloc(8) })).rejects.toThrow(/16 to 64/);
  });
});
