import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { provision } from '../../agent/cli/provision.js';
import { readAssignment, writeAssignment, type Assignment } from '../../agent/state/assignment-store.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';
import { TpmLock } from '../../agent/tpm/tpm-lock.js';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import type { AgentFiles } from '../support/agent-process.js';
import { enrollBoard } from '../support/enroll-board.js';
import { captureOutput } from '../support/output.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { ofType } from '../support/matchers.js';

/**
 * `iot-agent provision` with no daemon running, in this process, against the local cloud
 * (DPS and one hub on loopback addresses of this file's own) and a real swtpm enrolled
 * with DPS: it registers through the provisioning helper built in dist/ (`npm run build`)
 * and proves the hub takes the key. Started by the first test; one board for the file.
 */
interface Bench { cloud: LocalCloud; swtpm: SwtpmInstance; files: AgentFiles; registrationId: string; hub: string; dir: string }
let started: Promise<Bench> | undefined;

function bench(): Promise<Bench> {
  started ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-provision-'));
    const [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    const hub = cloud.hubs[0]!.hostName;
    const board = await enrollBoard(cloud.dps, { deviceId: 'board-52', transport: swtpm.transport, hub });
    return { cloud, swtpm, files: board.writeConfig(path.join(dir, 'agent')), registrationId: board.registrationId, hub, dir };
  })();
  return started;
}

afterAll(async () => {
  if (!started) return;
  const { cloud, swtpm, dir } = await started;
  await cloud.stop();
  await swtpm.stop();
  rmSync(dir, { recursive: true, force: true });
});

const stored = async (stateDir: string): Promise<Assignment> => {
  const read = await readAssignment(stateDir);
  if (read.status !== 'valid') throw new Error(`no valid assignment: ${JSON.stringify(read)}`);
  return read.assignment;
};

describe('iot-agent provision, directly', () => {
  it('registers, shows each step, keeps the assignment, proves the hub takes the key; then reuses it until --force', async () => {
    const { files, registrationId, hub, cloud } = await bench();
    const first = await captureOutput(() => provision({ config: files.configPath }, {}));
    expect(first.error).toBeUndefined();
    expect(first.result).toBe(0);
    // Progress goes to stdout; the log (stderr) stays quiet at the default level.
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe([
      `  TPM ready, registration id ${registrationId}`, '  DPS challenge received', '  key activated in the TPM',
      `  assigned to ${hub} as board-52`, `  connected to ${hub}`, `provisioned: board-52 on ${hub} (registration id ${registrationId})`, '',
    ].join('\n'));
    const assignment = await stored(files.stateDir);
    expect(assignment).toEqual({
      assignedHub: hub, deviceId: 'board-52', registrationId, idScope: cloud.dps.idScope, globalEndpoint: cloud.dps.host,
      assignedAt: ofType(String), identityKeyHandle: IDENTITY_KEY_SLOTS[0],
    });
    expect(await TpmLock.holder(files.runtimeDir)).toBeUndefined();
    // The proof of connection ends with a disconnect: the command leaves no session behind.
    await expect.poll(() => cloud.hubs[0]!.core.broker.isOnline('board-52'), { timeout: 10_000 }).toBe(false);

    // The assignment in force is reused, asking DPS nothing: it still has to connect.
    const cached = await captureOutput(() => provision({ config: files.configPath, json: true }, {}));
    expect(cached.error).toBeUndefined();
    expect(cached.stdout.split('\n')).toHaveLength(2);
    expect(JSON.parse(cached.stdout)).toEqual({
      state: 'provisioned', ...assignment, steps: [
        { step: 'tpm', message: `TPM ready, registration id ${registrationId}` },
        { step: 'assigned', message: `already assigned to ${hub} as board-52 (use --force to register again)` },
        { step: 'connected', message: `connected to ${hub}` },
      ],
    });
    expect(await stored(files.stateDir)).toEqual(assignment);

    // --force registers again, into the slot the assignment in force does not use.
    const forced = await captureOutput(() => provision({ config: files.configPath, force: true, json: true }, {}));
    expect(forced.error).toBeUndefined();
    const again = await stored(files.stateDir);
    expect(again).toMatchObject({ deviceId: 'board-52', assignedHub: hub, identityKeyHandle: IDENTITY_KEY_SLOTS[1] });
    expect(again.assignedAt).not.toBe(assignment.assignedAt);
    expect((JSON.parse(forced.stdout) as { steps: { step: string }[] }).steps.map((s) => s.step)).toEqual(['tpm', 'challenge', 'activated', 'assigned', 'connected']);
  }, 120_000);

  it('holds the TPM and tries the hub again while it is down, until it answers', async () => {
    const { files, cloud } = await bench();
    const hub = cloud.hubs[0]!;
    expect((await captureOutput(() => provision({ config: files.configPath, force: true }, {}))).result).toBe(0);
    await hub.stopMqtt();
    let restarted = false;
    try {
      const done = captureOutput(() => provision({ config: files.configPath }, {}));
      await expect.poll(() => TpmLock.holder(files.runtimeDir), { timeout: 30_000 }).toEqual({ pid: process.pid, owner: 'iot-agent provision' });
      // Long enough for a failed try or two, well within the minute a technician waits.
      let settled = false;
      void done.then(() => { settled = true; });
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(settled).toBe(false);
      await hub.startMqtt();
      restarted = true;
      const { error, result, stdout } = await done;
      expect(error).toBeUndefined();
      expect(result).toBe(0);
      expect(stdout).toMatch(/ {2}connected to \S+\nprovisioned: board-52 on /);
    } finally {
      if (!restarted) await hub.startMqtt();
    }
    expect(await TpmLock.holder(files.runtimeDir)).toBeUndefined();
  }, 120_000);

  it('gives up on a hub that stays down once its wait is over, naming the hub, the wait and why', async () => {
    const { files, cloud, hub } = await bench();
    expect((await captureOutput(() => provision({ config: files.configPath, force: true }, {}))).result).toBe(0);
    await cloud.hubs[0]!.stopMqtt();
    try {
      const started = Date.now();
      const { error, stdout } = await captureOutput(() => provision({ config: files.configPath }, { timings: { hubWaitSeconds: 3 } }));
      const took = Date.now() - started;
      expect(stdout).toMatch(/^ {2}.*\n {2}already assigned to \S+ as board-52 \(use --force to register again\)\n$/);
      expect(error).toMatchObject({
        message: 'provisioning failed at step "connected"', exitCode: 1,
        cause: { message: `no connection to ${hub} within 3 s`, cause: { name: 'HubConnectError', kind: 'unreachable' } },
      });
      // Tried more than once (every 2 s), and gave up near the wait, not at the minute a technician gets by default.
      expect(took).toBeGreaterThanOrEqual(3_000);
      expect(took).toBeLessThan(30_000);
    } finally {
      await cloud.hubs[0]!.startMqtt();
    }
    expect(await TpmLock.holder(files.runtimeDir)).toBeUndefined();
  }, 120_000);

  it('fails at the connect step, at once, when the hub refuses the cached assignment\'s device', async () => {
    const { files, registrationId, cloud } = await bench();
    await writeAssignment(files.stateDir, {
      assignedHub: cloud.hubs[0]!.hostName, deviceId: 'board-unknown', registrationId, idScope: cloud.dps.idScope,
      globalEndpoint: cloud.dps.host, assignedAt: '2026-11-26T02:30:00.000Z', identityKeyHandle: IDENTITY_KEY_SLOTS[0],
    });
    const { error, stdout } = await captureOutput(() => provision({ config: files.configPath }, {}));
    expect(stdout).toMatch(/\n {2}already assigned to \S+ as board-unknown \(use --force to register again\)\n$/);
    expect(error).toMatchObject({ message: 'provisioning failed at step "connected"', exitCode: 1, cause: { name: 'HubConnectError', kind: 'refused' } });
    expect(await TpmLock.holder(files.runtimeDir)).toBeUndefined();
  }, 120_000);
});
