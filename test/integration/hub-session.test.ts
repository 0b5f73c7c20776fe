import { pbkdf2 } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Twin } from 'azure-iot-device';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubConnectError, HubSession } from '../../agent/hub/session.js';
import { Logger } from '../../agent/log/logger.js';
import { registerWithDps } from '../../agent/provisioning/register.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startDps, type Dps } from '../cloud/dps/dps.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { enrollBoard, readBoardIdentity } from '../support/enroll-board.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { tlsContextsBuilt } from '../support/tls-contexts.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

describe.each(['mqtt', 'mqtt-ws'] as const)('the hub session of a TPM device over %s', (protocol) => {
  let stateDir: string;
  let hub: LocalHub;
  let dps: Dps;
  let swtpm: SwtpmInstance;
  let tpm: TpmClient;
  let registrationId: string;
  let ca: string;
  const lines: string[] = [];
  let log: Logger;

  beforeAll(async () => {
    log = new Logger({ journal: false, level: "debug", write: (l) => { lines.push(l); process.stderr.write(l); } });
    stateDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-session-'));
    [hub, swtpm] = await Promise.all([
      startHub({ address: randomLoopbackAddress(), stateDir: path.join(stateDir, 'hub'), log: (l) => process.stderr.write('HUB ' + l + '\n') }),
      SwtpmInstance.start(),
    ]);
    dps = await startDps({ address: randomLoopbackAddress(), stateDir: path.join(stateDir, 'dps'), linkedHubs: [hub], retryAfterSeconds: 1 });
    ca = dps.ca + hub.ca;
    tpm = clientFor(swtpm.transport);
    registrationId = (await enrollBoard(dps, { deviceId: 'board-21', transport: swtpm.transport, identity: await readBoardIdentity(tpm) })).registrationId;
    await registerWithDps({ tpm, registrationId, idScope: dps.idScope, globalEndpoint: dps.host, ca });
  }, 60_000);
  afterAll(async () => {
    await tpm?.close();
    await Promise.all([dps?.stop(), hub?.stop(), swtpm?.stop()]);
    rmSync(stateDir, { recursive: true, force: true });
  });

  const target = () => ({ assignedHub: hub.hostName, deviceId: 'board-21', registrationId, identityKeyHandle: 0x81000100 });

  it('connects with the key DPS put in the TPM, reports a lost link once, and a new connect sees desired changes made meanwhile', async () => {
    const twins: Twin[] = [];
    const session = new HubSession({ tpm, target: target(), ca, log, keepAliveSeconds: 5, onConnected: (_client, twin) => { twins.push(twin); } });
    try {
      const connects = hub.counters.connects;
      const overWebSockets = hub.webSocketConnections;
      await session.connect({ protocol });
      expect(session.connected).toBe(true);
      expect(session.protocol).toBe(protocol);
      expect(hub.webSocketConnections - overWebSockets).toBe(protocol === 'mqtt-ws' ? 1 : 0);
      expect(session.deviceClient).toBeDefined();
      // One CONNECT per connect: the first token's event does not make the SDK connect again.
      await new Promise((r) => setTimeout(r, 500));
      expect(hub.counters.connects).toBe(connects + 1);

      const losses: Error[] = [];
      session.on('lost', (err) => losses.push(err));
      await hub.stopMqtt();
      await expect.poll(() => losses.length, { timeout: 15_000 }).toBe(1);
      expect(session.connected).toBe(false);
      await hub.core.updateTwin('board-21', { properties: { desired: { telemetryInterval: 42 } } }, undefined);
      // While the hub is down an attempt fails as unreachable, never as a refusal.
      const down = await session.connect({ protocol }).catch((e: unknown) => e);
      expect(down).toBeInstanceOf(HubConnectError);
      expect((down as HubConnectError).kind).toBe('unreachable');
      await hub.startMqtt();
      await session.connect({ protocol });
      expect(twins.at(-1)?.properties.desired.telemetryInterval).toBe(42);
      expect(losses).toHaveLength(1);
      expect(lines.some((l) => l.includes('event=hub.disconnected'))).toBe(true);
    } finally {
      await session.stop();
    }
  }, 45_000);

  it('connects with the private CA and its options while the thread pool is busy', async () => {
    // Four slow jobs fill libuv's pool of four, while the TPM (a socket) signs the token at
    // once: whatever the connect waits for on the pool must be awaited. (When the SDK's
    // setOptions still read the CA there, an open() that did not wait failed the handshake.)
    const busy = Array.from({ length: 4 }, () => new Promise((resolve) => pbkdf2('x', 'salt', 2_000_000, 32, 'sha256', resolve)));
    const session = new HubSession({ tpm, target: target(), ca, log });
    try {
      await session.connect({ protocol });
      expect(session.connected).toBe(true);
    } finally {
      await session.stop();
      await Promise.all(busy);
    }
  }, 30_000);

  it('builds no TLS context per connect: reconnects share one made from the CAs', async () => {
    // A context made from the system's roots plus the extra CA is ~1 MB of native memory
    // that glibc keeps: one per connect made a board's RSS step up at every outage.
    const session = new HubSession({ tpm, target: target(), ca: tls.rootCertificates.join('\n') + '\n' + ca, log });
    try {
      const made = await tlsContextsBuilt(async () => {
        for (let i = 0; i < 5; i++) {
          await session.connect({ protocol });
          expect(session.connected).toBe(true);
          await session.stop();
        }
      });
      expect(made).toBeLessThanOrEqual(1);
    } finally {
      await session.stop();
    }
  }, 60_000);

  it('reports a device the hub no longer knows as refused, so the policy can send it back to DPS', async () => {
    const session = new HubSession({ tpm, target: target(), ca, log });
    try {
      await hub.core.deleteDevice('board-21', undefined);
      const err = await session.connect({ protocol }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HubConnectError);
      expect((err as HubConnectError).kind).toBe('refused');
      expect(session.connected).toBe(false);
    } finally {
      await session.stop();
    }
  }, 30_000);
});
