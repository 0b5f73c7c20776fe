import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceClock } from '../../agent/time/service-clock.js';
import { startCloud } from '../cloud/cloud.js';
import { CloudProcess } from '../support/cloud-process.js';
import { afterTest, DaemonOnCloud, startTestDaemon, stopDaemonsOnCloud } from '../support/daemon-on-cloud.js';
import { enrollBoard } from '../support/enroll-board.js';
import { fakeTimeEnv } from '../support/fake-time.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';

afterEach(stopDaemonsOnCloud, 60_000);

const TWO_HOURS_MS = 2 * 3_600_000;

/**
 * A board whose clock is two hours behind the service's: the local cloud runs in a process
 * of its own with its wall clock shifted (libfaketime), the daemon in this one.
 */
describe('the daemon with a clock two hours behind the cloud\'s', () => {
  it('signs with DPS\'s time from its first registration on, and with the hub\'s after a warm start the hub refused, without DPS', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-daemon-clock-'));
    afterTest(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const addresses = [randomLoopbackAddress(), randomLoopbackAddress()] as const;
    const swtpm = await SwtpmInstance.start();
    afterTest(() => swtpm.stop());
    // Enrolled while the cloud's clock is right (the service API's token would be expired for it otherwise), then the same cloud, state and all, two hours ahead.
    const setup = await startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: addresses[0], hubAddresses: [addresses[1]], allocation: 'static', log: () => undefined });
    const board = await enrollBoard(setup.dps, { deviceId: 'board-71', transport: swtpm.transport, hub: setup.hubs[0]!.hostName }).finally(() => setup.stop());
    const cloud = await CloudProcess.start(path.join(dir, 'cloud'), addresses, fakeTimeEnv('+2h'));
    afterTest(async () => { await cloud.stop(); });
    const { configPath } = board.writeConfig(path.join(dir, 'agent'));

    const first = await startTestDaemon(configPath, dir);
    const provisioned = await first.reach('ready');
    expect(Math.abs(provisioned.clockOffsetMs! - TWO_HOURS_MS)).toBeLessThan(10_000);
    expect(first.logged('hub.rejected')).toEqual([]);
    await first.daemon.stop();

    const second = await startTestDaemon(configPath, dir);
    const status = await second.reach('ready');
    expect(second.logged('provisioning.cached')).toHaveLength(1);
    expect(second.logged('clock.corrected')).toEqual([expect.stringMatching(/signingWith="the hub's time" reason="the hub refused a token signed with the local clock"/)]);
    // The refusal was the clock's: signed again at once, not counted as the hub refusing the device.
    expect(second.logged('hub.rejected')).toEqual([]);
    expect(second.logged('provisioning.challenge')).toEqual([]);
    expect(Math.abs(status.clockOffsetMs! - TWO_HOURS_MS)).toBeLessThan(10_000);
  });
});

describe('the daemon whose wall clock jumps', () => {
  it('lets its registration go on when the wall clock jumps before it is connected', async () => {
    const board = await DaemonOnCloud.start();
    let shiftMs = 0;
    const clock = new ServiceClock(() => Date.now() + shiftMs);
    board.cloud.dps.faults.assignmentDelayMs = 8_000;
    const { daemon, reach, logged } = await board.startDaemon({ clock });
    // After the daemon's listener: counted only when that one returned.
    let jumps = 0;
    clock.on('jumped', () => jumps++);
    await expect.poll(() => daemon.status().state, { timeout: 20_000 }).toBe('provisioning');
    shiftMs = 120_000; // NTP sets the board's clock while DPS is still assigning
    await expect.poll(() => jumps, { timeout: 10_000 }).toBe(1);
    expect(daemon.status().state).toBe('provisioning');
    await reach('ready');
    // Nothing to sign again yet: the hub session starts after the jump with the clock as it is.
    expect(logged('hub.token_resigned')).toEqual([]);
    expect(board.cloud.dps.counters.registrations).toBe(1);
  });

  it('signs a fresh token at once when its wall clock jumps while connected, and keeps the service\'s time', async () => {
    const board = await DaemonOnCloud.start();
    let shiftMs = 0;
    // Only the daemon's clock reads this wall clock: the machine's (and the SDK's and the hub's) is left alone. A
    // step of two minutes is a jump (over 30 s) that leaves the offset below the 5 min from which tokens are corrected.
    const clock = new ServiceClock(() => Date.now() + shiftMs);
    const { reach, logged } = await board.startDaemon({ clock });
    const before = await reach('ready');
    expect(Math.abs(before.clockOffsetMs!)).toBeLessThan(10_000);
    const connects = board.hub.counters.connects;
    shiftMs = 120_000; // NTP steps the board's clock two minutes forward
    await expect.poll(() => logged('hub.token_resigned'), { timeout: 15_000 }).toEqual([expect.stringMatching(/why="the wall clock jumped by 120 s"/)]);
    await expect.poll(() => board.hub.counters.connects, { timeout: 30_000 }).toBe(connects + 1);
    const after = await reach('ready');
    // The service's time did not move: the measured offset takes the step back.
    expect(Math.abs(after.clockOffsetMs! - (before.clockOffsetMs! - 120_000))).toBeLessThan(2_000);
    expect(logged('clock.corrected')).toEqual([]);
    expect(logged('hub.rejected')).toEqual([]);

    // A service Date header ten minutes ahead of the board (an answer the daemon read): signed again with the service's time.
    const now = Date.now() + shiftMs;
    clock.observe(new Date(now + 600_000).toUTCString(), now - 20, now);
    await expect.poll(() => logged('hub.token_resigned'), { timeout: 15_000 }).toHaveLength(2);
    expect(logged('hub.token_resigned')[1]).toMatch(/why="the service clock differs from the local one by 60\d s"/);
    await expect.poll(() => board.hub.counters.connects, { timeout: 30_000 }).toBe(connects + 2);
    expect((await reach('ready')).clockOffsetMs).toBeGreaterThan(590_000);
    expect(logged('hub.rejected')).toEqual([]);
    expect(logged('daemon.flow_failed')).toEqual([]);
  });
});
