import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { deviceToken, rawConnect } from '../cloud/hub/raw-mqtt.js';
import { randomLoopbackAddress } from '../support/ports.js';

// Persistent sessions per client id, and a hub with an Azure-style DNS host name.
let hub: LocalHub;
let stateDir: string;
const key = randomBytes(32);

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-sessions-'));
  hub = await startHub({ address: randomLoopbackAddress(), hostName: 'local-hub.azure-devices.net', stateDir, log: () => undefined });
  await hub.registerDevice({ deviceId: 'sessioned', registrationId: 'sessioned', primaryKey: key });
});

afterAll(async () => {
  await hub?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

async function connect() {
  const result = await rawConnect(hub, 'sessioned', deviceToken(hub, 'sessioned', key));
  if (!('client' in result)) throw new Error(`refused with ${result.refused}`);
  return result;
}

it('keeps a clean=false session: sessionPresent on reconnect, and C2D sent meanwhile arrives without re-subscribing', async () => {
  const first = await connect();
  expect(first.sessionPresent).toBe(false);
  await first.client.subscribeAsync('devices/sessioned/messages/devicebound/#', { qos: 1 });
  await first.client.endAsync();
  await expect.poll(() => hub.core.broker.isOnline('sessioned')).toBe(false);

  await hub.sendC2d('sessioned', { data: 'sent while away' });
  const second = await connect();
  expect(second.sessionPresent).toBe(true);
  const payload = await new Promise<string>((resolve) => second.client.on('message', (_topic, body) => resolve(body.toString())));
  expect(payload).toBe('sent while away');
  await second.client.endAsync();
});

it('requires SNI for its DNS name, as IoT Hub does: a handshake naming no server or another one fails', async () => {
  const handshake = (servername: string | undefined) => new Promise<string>((resolve) => {
    const socket = tls.connect({ host: hub.address, port: 8883, ca: hub.ca, ...(servername ? { servername } : {}), checkServerIdentity: () => undefined });
    socket.once('secureConnect', () => { socket.destroy(); resolve('ok'); });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  expect(await handshake('local-hub.azure-devices.net')).toBe('ok');
  expect(await handshake('LOCAL-HUB.azure-devices.net')).toBe('ok');
  expect(await handshake(undefined)).not.toBe('ok');
  expect(await handshake('other.azure-devices.net')).not.toBe('ok');
  expect(hub.deviceConnectionString('sessioned')).not.toContain('GatewayHostName');
});

it('drops the older connection when the same device connects again, as IoT Hub does', async () => {
  const first = await connect();
  const closed = new Promise<void>((resolve) => first.client.stream.once('close', () => resolve()));
  const second = await connect();
  await closed;
  expect(hub.core.broker.isOnline('sessioned')).toBe(true);
  first.client.end(true);
  await second.client.endAsync();
});
