import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { vi } from 'vitest';
import { HubSession, type HubSessionOptions } from '../../agent/hub/session.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { activateHubKey, clientFor } from '../support/tpm.js';
import { capturingLogger } from './command-context.js';
import { closeListeners } from './loopback-proxy.js';

/**
 * The session against the local hub (MQTT over TLS on 8883 of a loopback address of the
 * test file's own; HTTPS on a free port, so no root) with a real swtpm. The TPM gets its identity
 * key as DPS would hand it over (an activation blob for its EK and SRK), and the hub knows
 * that key for every device a test registers: no DPS needed. Started by the first test.
 */
export interface Bench { hub: LocalHub; swtpm: SwtpmInstance; tpm: TpmClient; key: Buffer; dir: string; hubLines: string[] }
let started: Promise<Bench> | undefined;
const sessions: HubSession[] = [];

export function bench(): Promise<Bench> {
  started ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-session-hub-'));
    const hubLines: string[] = [];
    const [hub, swtpm] = await Promise.all([
      startHub({ address: randomLoopbackAddress(), stateDir: dir, httpsPort: 0, log: (l) => hubLines.push(l) }),
      SwtpmInstance.start(),
    ]);
    const tpm = clientFor(swtpm.transport);
    const key = await activateHubKey(tpm);
    return { hub, swtpm, tpm, key, dir, hubLines };
  })();
  return started;
}

/** A device of its own on the hub, with the TPM's key, and a session for it that the test's end stops. */
export async function sessionFor(options: Partial<HubSessionOptions> = {}, register = true) {
  const { hub, tpm, key } = await bench();
  const deviceId = `board-${randomBytes(4).toString('hex')}`;
  if (register) await hub.registerDevice({ deviceId, registrationId: deviceId, primaryKey: key });
  const { log, lines } = capturingLogger();
  const target = { assignedHub: hub.hostName, deviceId, registrationId: deviceId, identityKeyHandle: 0x81000100 };
  const session = new HubSession({ tpm, target, ca: hub.ca, log, keepAliveSeconds: 5, ...options });
  sessions.push(session);
  const lost: Error[] = [];
  session.on('lost', (err) => lost.push(err));
  return { hub, session, deviceId, lines, lost };
}

/** For afterEach: stops the test's sessions and undoes the faults it set on the hub. */
export async function endTest(): Promise<void> {
  vi.restoreAllMocks();
  closeListeners();
  for (const session of sessions.splice(0)) await session.stop();
  if (started) {
    const { hub } = await started;
    hub.faults.clear();
    await hub.set8883('open');
    await hub.startMqtt();
  }
}

/** For afterAll: stops the bench, if a test started it. */
export async function endBench(): Promise<void> {
  if (!started) return;
  const { hub, swtpm, tpm, dir } = await started;
  started = undefined;
  await tpm.close();
  await Promise.all([hub.stop(), swtpm.stop()]);
  rmSync(dir, { recursive: true, force: true });
}
