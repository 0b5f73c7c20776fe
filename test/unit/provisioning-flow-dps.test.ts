import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { registerAssignment } from '../../agent/provisioning/flow.js';
import { readAssignment, type Assignment } from '../../agent/state/assignment-store.js';
import { ServiceClock } from '../../agent/time/service-clock.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';
import { TPM_ALG_ID, TPM_HANDLE } from '../../agent/tpm/tss-lib.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { enrollBoard, readBoardIdentity } from '../support/enroll-board.js';
import { freePort, randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';
import { capturingLogger } from './command-context.js';

/**
 * registerAssignment end to end: the local cloud's DPS (443 of a loopback address of this
 * file's own, so root) and hub in this process, a real swtpm enrolled with DPS, and the
 * registration in the provisioning helper (dist/agent/provisioning/child-main.js).
 * Started by the first test.
 */
interface Bench { cloud: LocalCloud; swtpm: SwtpmInstance; tpm: TpmClient; registrationId: string; dir: string }
let started: Promise<Bench> | undefined;

function bench(): Promise<Bench> {
  started ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-flow-dps-'));
    const [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    const tpm = clientFor(swtpm.transport);
    const board = await enrollBoard(cloud.dps, {
      deviceId: 'board-58', transport: swtpm.transport, hub: cloud.hubs[0]!.hostName, identity: await readBoardIdentity(tpm),
    });
    return { cloud, swtpm, tpm, registrationId: board.registrationId, dir };
  })();
  return started;
}

afterAll(async () => {
  if (!started) return;
  const { cloud, swtpm, tpm, dir } = await started;
  await tpm.close();
  await cloud.stop();
  await swtpm.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A config for the bench's DPS, with a state directory of its own. */
function configFor(cloud: LocalCloud, network: Partial<AgentConfig['network']> = {}): AgentConfig {
  return {
    ...structuredClone(DEFAULTS), stateDir: mkdtempSync(path.join(tmpdir(), 'iot-agent-flow-state-')),
    provisioning: { ...DEFAULTS.provisioning, idScope: cloud.dps.idScope, globalEndpoint: cloud.dps.host },
    network: { ...DEFAULTS.network, ...network },
  };
}

describe('a registration that DPS answers', () => {
  it('stages the new key in the slot beside the one in force, and is on disk as it is returned', async () => {
    const { cloud, tpm, registrationId } = await bench();
    const config = configFor(cloud);
    try {
      const current: Assignment = {
        assignedHub: 'hub-old', deviceId: 'board-58', registrationId, idScope: cloud.dps.idScope, globalEndpoint: cloud.dps.host,
        assignedAt: '2026-11-26T00:00:00.000Z', identityKeyHandle: IDENTITY_KEY_SLOTS[0],
      };
      const before = Date.now();
      const assignment = await registerAssignment({ tpm, config, idScope: cloud.dps.idScope, registrationId, ca: cloud.ca, current });
      const { assignedAt, ...assigned } = assignment;
      expect(assigned).toEqual({
        assignedHub: cloud.hubs[0]!.hostName, deviceId: 'board-58', registrationId, idScope: cloud.dps.idScope,
        globalEndpoint: cloud.dps.host, identityKeyHandle: IDENTITY_KEY_SLOTS[1],
      });
      expect(Date.parse(assignedAt)).toBeGreaterThanOrEqual(before - 1_000);
      expect(Date.parse(assignedAt)).toBeLessThanOrEqual(Date.now() + 1_000);
      expect(await readAssignment(config.stateDir)).toEqual({ status: 'valid', assignment });
      expect((await tpm.readPublic(new TPM_HANDLE(IDENTITY_KEY_SLOTS[1]))).outPublic.type).toBe(TPM_ALG_ID.KEYEDHASH);
    } finally {
      rmSync(config.stateDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('tells each step in words and as an event, and sets the service clock by DPS\'s answers', async () => {
    const { cloud, tpm, registrationId } = await bench();
    const config = configFor(cloud);
    const { log, lines } = capturingLogger();
    const clock = new ServiceClock();
    const steps: [string, string][] = [];
    // The provisioning SDK's debug output: something of the helper's own for the log to show.
    const debug = process.env.DEBUG;
    process.env.DEBUG = 'azure-iot-provisioning-device:*';
    try {
      const assignment = await registerAssignment({
        tpm, config, idScope: cloud.dps.idScope, registrationId, ca: cloud.ca, current: undefined, clock, log,
        onStep: (step, words) => steps.push([step, words]),
      });
      expect(assignment.identityKeyHandle).toBe(IDENTITY_KEY_SLOTS[0]);
      const hub = `${cloud.hubs[0]!.hostName} as board-58`;
      expect(steps).toEqual([['challenge', 'DPS challenge received'], ['activated', 'key activated in the TPM'], ['assigned', `assigned to ${hub}`]]);
      expect(lines.filter((l) => l.includes('event=provisioning.'))).toEqual([
        'level=info event=provisioning.challenge', 'level=info event=provisioning.activated', `level=info event=provisioning.assigned detail="${hub}"`,
      ]);
      // The local cloud's clock is this machine's: a measured offset of about nothing.
      expect(Math.abs(clock.offsetMs() ?? Number.NaN)).toBeLessThan(5_000);
      expect(lines.filter((l) => l.startsWith('level=warn event=child.output child="the provisioning process" ')).length).toBeGreaterThan(0);
    } finally {
      if (debug === undefined) delete process.env.DEBUG;
      else process.env.DEBUG = debug;
      rmSync(config.stateDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('a registration through a proxy', () => {
  it('goes to DPS through the configured proxy, and fails naming it when nothing answers there', async () => {
    const { cloud, tpm, registrationId } = await bench();
    const proxy = `http://127.0.0.1:${await freePort()}`;
    const config = configFor(cloud, { proxy });
    try {
      const err = await registerAssignment({ tpm, config, idScope: cloud.dps.idScope, registrationId, ca: cloud.ca, current: undefined })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DpsError);
      expect(err).toMatchObject({ message: `DPS ${cloud.dps.host} not reached: the proxy ${proxy} (network.proxy) could not be reached (ECONNREFUSED)` });
      expect(readdirSync(config.stateDir)).toEqual([]);
    } finally {
      rmSync(config.stateDir, { recursive: true, force: true });
    }
  }, 60_000);
});
