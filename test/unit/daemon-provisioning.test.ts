import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { askDaemon } from '../../agent/control/client.js';
import { DaemonOnCloud, stopDaemonsOnCloud } from '../support/daemon-on-cloud.js';
import { arrayContaining, ofType, stringMatching } from '../support/matchers.js';

afterEach(stopDaemonsOnCloud);

describe('the daemon on the local cloud, from an enrolled board to a hub session', () => {
  it('provisions a fresh board, connects, tells systemd it is ready, and says so over its control socket', async () => {
    const board = await DaemonOnCloud.start();
    const { daemon, told, logged, reach, healthy } = await board.startDaemon();
    await reach('ready');
    const hub = board.hub.hostName;
    expect(told).toEqual([
      'WATCHDOG on',
      'STATUS provisioning: not provisioned yet',
      `STATUS connecting: to ${hub} over MQTT on 8883`,
      `STATUS ready: connected to ${hub} as board-70`,
      `READY ready: board-70 on ${hub}`,
    ]);
    expect(healthy()).toBe(true);
    const status = await askDaemon(board.files.runtimeDir, { op: 'status' }, 'status');
    expect(status).toMatchObject({
      event: 'status', state: 'ready', reason: `connected to ${hub} as board-70`, pid: process.pid,
      registrationId: board.board.registrationId, deviceId: 'board-70', assignedHub: hub, idScope: board.cloud.dps.idScope,
      hubProtocol: 'mqtt', hubProtocolReason: ofType(String), proxy: null, lastError: null,
      consecutiveFailures: 0, nextRetryAt: null, dpsHeldOffUntil: null, operatorMustAct: false,
      telemetryQueue: { depth: ofType(Number), dropped: 0 }, clockOffsetMs: ofType(Number),
    });
    expect(board.cloud.dps.counters.registrations).toBe(1);
    expect(JSON.parse(readFileSync(path.join(board.files.stateDir, 'assignment.json'), 'utf8'))).toMatchObject({ assignedHub: hub, deviceId: 'board-70' });
    expect(logged('provisioning.cached')).toEqual([]);
    // The TPM is the daemon's: a report is read through its connection.
    const report = await askDaemon(board.files.runtimeDir, { op: 'tpm' }, 'tpm');
    expect(report).toMatchObject({ pid: process.pid, transport: board.swtpm.transport, endorsementKey: { ok: true, value: board.board.endorsementKey } });
    await daemon.stop();
    expect(healthy()).toBe(false);
  });

  it('restarts from the cached assignment without asking DPS', async () => {
    const board = await DaemonOnCloud.start();
    const first = await board.startDaemon();
    await first.reach('ready');
    await first.daemon.stop();
    const second = await board.startDaemon();
    const status = await second.reach('ready');
    expect(board.cloud.dps.counters.registrations).toBe(1);
    expect(second.logged('provisioning.cached')).toEqual([stringMatching(`hub=${board.hub.hostName} deviceId=board-70`)]);
    expect(second.told.filter((t) => t.startsWith('STATUS provisioning'))).toEqual([]);
    expect(status).toMatchObject({ deviceId: 'board-70', assignedHub: board.hub.hostName });
  });

  it('takes an unreadable state file as not provisioned, says why, and provisions', async () => {
    const board = await DaemonOnCloud.start();
    const first = await board.startDaemon();
    await first.reach('ready');
    await first.daemon.stop();
    writeFileSync(path.join(board.files.stateDir, 'assignment.json'), '{"kind":"iot-agent/assign');
    const second = await board.startDaemon();
    await second.reach('ready');
    expect(second.logged('state.invalid')).toEqual([stringMatching(/reason=.+ treatedAs="not provisioned"/)]);
    expect(second.told).toEqual(arrayContaining([stringMatching(/^STATUS provisioning: the state file is unusable: /)]));
    expect(board.cloud.dps.counters.registrations).toBe(2);
  });
});
