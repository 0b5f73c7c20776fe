import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Twin } from 'azure-iot-device';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubSession } from '../../agent/hub/session.js';
import { Logger } from '../../agent/log/logger.js';
import { registerWithDps } from '../../agent/provisioning/register.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startDps, type Dps } from '../cloud/dps/dps.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

function waitFor<T>(emitter: HubSession, event: 'connected' | 'disconnected' | 'rejected', timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (...args: unknown[]) => { clearTimeout(timer); resolve(args[0] as T); });
  });
}

describe('the hub session of a TPM device', () => {
  let stateDir: string;
  let hub: LocalHub;
  let dps: Dps;
  let swtpm: SwtpmInstance;
  let tpm: TpmClient;
  let registrationId: string;
  let ca: string;
  const lines: string[] = [];
  const log = new Logger({ journal: false, level: "debug", write: (l) => { lines.push(l); process.stderr.write(l); } });

  beforeAll(async () => {
    stateDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-session-'));
    [hub, swtpm] = await Promise.all([
      startHub({ address: randomLoopbackAddress(), stateDir: path.join(stateDir, 'hub'), log: (l) => process.stderr.write('HUB ' + l + '\n') }),
      SwtpmInstance.start(),
    ]);
    dps = await startDps({ address: randomLoopbackAddress(), stateDir: path.join(stateDir, 'dps'), linkedHubs: [hub], retryAfterSeconds: 1 });
    ca = dps.ca + hub.ca;
    tpm = clientFor(swtpm.transport);
    const identity = await ensureIdentity(tpm);
    registrationId = identity.registrationId;
    dps.enroll({ registrationId, deviceId: 'board-21', attestation: { type: 'tpm', tpm: { endorsementKey: identity.endorsementKey.toString('base64') } } });
    await registerWithDps({ tpm, registrationId, idScope: dps.idScope, globalEndpoint: dps.host, ca });
  }, 60_000);
  afterAll(async () => {
    await tpm?.close();
    await Promise.all([dps?.stop(), hub?.stop(), swtpm?.stop()]);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('connects with the key DPS put in the TPM, reconnects after an outage and then sees desired changes made meanwhile', async () => {
    const twins: Twin[] = [];
    const session = new HubSession({
      tpm, registrationId, assignedHub: hub.hostName, deviceId: 'board-21', ca, log, keepAliveSeconds: 5,
      backoff: { initialMs: 200, maxMs: 1_000, multiplier: 2 },
      onConnected: (_client, twin) => { twins.push(twin); },
    });
    try {
      const connected = waitFor(session, 'connected');
      session.start();
      await connected;
      expect(session.connected).toBe(true);
      expect(hub.counters.connects).toBeGreaterThanOrEqual(1);

      const dropped = waitFor(session, 'disconnected');
      await hub.stopMqtt();
      await dropped;
      await hub.core.updateTwin('board-21', { properties: { desired: { telemetryInterval: 42 } } }, undefined);
      await new Promise((r) => setTimeout(r, 1_500)); // a few failed reconnects while the hub is down
      const back = waitFor(session, 'connected');
      await hub.startMqtt();
      await back;
      expect(twins.at(-1)?.properties.desired.telemetryInterval).toBe(42);
      expect(lines.some((l) => l.includes('event=hub.disconnected'))).toBe(true);
    } finally {
      await session.stop();
    }
  }, 45_000);

  it('does not start its backoff over for connections the hub drops at once: the delays keep growing', async () => {
    const delays: number[] = [];
    const recording = new Logger({ journal: false, level: 'warn', write: (l) => {
      const retry = /event=hub\.disconnected .*retryInMs=(\d+)/.exec(l);
      if (retry) delays.push(Number(retry[1]));
    } });
    const session = new HubSession({
      tpm, registrationId, assignedHub: hub.hostName, deviceId: 'board-21', ca, log: recording,
      backoff: { initialMs: 200, maxMs: 2_000, multiplier: 2 },
    });
    // A hub that closes every new connection (a throttled device, say).
    session.on('connected', () => setTimeout(() => hub.core.broker.disconnect('board-21'), 50));
    try {
      session.start();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${delays.length} drops in 40 s`)), 40_000);
        const poll = setInterval(() => {
          if (delays.length < 8) return;
          clearInterval(poll);
          clearTimeout(timer);
          resolve();
        }, 50);
      });
    } finally {
      session.removeAllListeners('connected');
      await session.stop();
    }
    // Started over at every connect, each delay would be under the first ceiling (200 ms).
    expect(Math.max(...delays.slice(3))).toBeGreaterThan(200);
  }, 60_000);

  it('reports a device the hub no longer knows as rejected, so the daemon can re-provision', async () => {
    const session = new HubSession({ tpm, registrationId, assignedHub: hub.hostName, deviceId: 'board-21', ca, log });
    try {
      await hub.core.deleteDevice('board-21', undefined);
      const rejected = waitFor<Error>(session, 'rejected');
      session.start();
      expect((await rejected).message).toBeTruthy();
    } finally {
      await session.stop();
    }
  }, 30_000);
});
