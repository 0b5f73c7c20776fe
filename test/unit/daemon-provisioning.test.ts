import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { askDaemon } from '../../agent/control/client.js';
import { readBoardIdentity } from '../support/enroll-board.js';
import { TinyProxy } from '../support/tinyproxy.js';
import { clientFor } from '../support/tpm.js';
import { DaemonOnCloud, stopDaemonsOnCloud } from '../support/daemon-on-cloud.js';
import { keepAliveSeenByHub } from '../support/hub-broker.js';
import { arrayContaining, ofType, stringContaining, stringMatching } from '../support/matchers.js';

afterEach(stopDaemonsOnCloud, 60_000);

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

describe('the daemon on the local cloud, from an enrolled board to a hub session', () => {
  it('provisions a fresh board, connects, tells systemd it is ready, and says so over its control socket', async () => {
    const board = await DaemonOnCloud.start();
    const { daemon, told, logged, reach, healthy } = await board.startDaemon();
    expect(logged('daemon.started')).toEqual([stringMatching(` pid=${process.pid} config=${board.configPath}`)]);
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
    expect(readJson(path.join(board.files.stateDir, 'assignment.json'))).toMatchObject({ assignedHub: hub, deviceId: 'board-70' });
    expect(logged('provisioning.cached')).toEqual([]);
    expect(logged('hub.protocol_learnt')).toEqual([stringMatching(/ protocol=mqtt$/)]);
    expect(readJson(path.join(board.files.stateDir, 'hub-protocol.json'))).toMatchObject({ protocol: 'mqtt' });
    // The device's features run on the session: the twin reports who it is, from the daemon's status and TPM.
    await expect.poll(() => board.hub.core.getTwin('board-70').properties, { timeout: 20_000 }).toMatchObject({
      reported: { agentVersion: '9.9.9', registrationId: board.board.registrationId, deviceId: 'board-70', tpm: { manufacturer: ofType(String), firmware: ofType(String) } },
    });
    // The TPM is the daemon's: a report is read through its connection.
    const report = await askDaemon(board.files.runtimeDir, { op: 'tpm' }, 'tpm');
    expect(report).toMatchObject({ pid: process.pid, transport: board.swtpm.transport, endorsementKey: { ok: true, value: board.board.endorsementKey } });
    const connects = board.hub.counters.connects;
    await daemon.stop();
    expect(healthy()).toBe(false);
    // The session and the TPM connection end with it: the hub sees the device go, and the TPM serves another client.
    await expect.poll(() => board.hub.counters.disconnects, { timeout: 10_000 }).toBe(connects);
    const tpm = clientFor(board.swtpm.transport);
    try {
      expect((await readBoardIdentity(tpm)).registrationId).toBe(board.board.registrationId);
    } finally {
      await tpm.close();
    }
    expect(logged('daemon.flow_failed')).toEqual([]);
    // The hub session logs as the hub's component, and nothing more is tried once stopped.
    const attempts = logged('hub.connecting');
    expect(attempts).toEqual([stringMatching(/ component=hub hub=/)]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(logged('hub.connecting')).toEqual(attempts);
  });

  it('restarts from the cached assignment without asking DPS', async () => {
    const board = await DaemonOnCloud.start();
    await board.provisionOnce();
    const second = await board.startDaemon();
    const status = await second.reach('ready');
    expect(board.cloud.dps.counters.registrations).toBe(1);
    expect(second.logged('provisioning.cached')).toEqual([stringMatching(`hub=${board.hub.hostName} deviceId=board-70`)]);
    expect(second.logged('state.invalid')).toEqual([]);
    expect(second.logged('state.hub_protocol_ignored')).toEqual([]);
    expect(second.told.filter((t) => t.startsWith('STATUS provisioning'))).toEqual([]);
    expect(status).toMatchObject({ deviceId: 'board-70', assignedHub: board.hub.hostName });
  });

  it('takes an unreadable state file as not provisioned, says why, and provisions', async () => {
    const board = await DaemonOnCloud.start();
    await board.provisionOnce();
    writeFileSync(path.join(board.files.stateDir, 'assignment.json'), '{"kind":"iot-agent/assign');
    const second = await board.startDaemon();
    await second.reach('ready');
    expect(second.logged('state.invalid')).toEqual([stringMatching(/reason=.+ treatedAs="not provisioned"/)]);
    expect(second.told).toEqual(arrayContaining([stringMatching(/^STATUS provisioning: the state file is unusable: /)]));
    expect(board.cloud.dps.counters.registrations).toBe(2);
  });

  it('provisions and connects through the configured HTTPS proxy, over WebSockets, and names the proxy without its password', async () => {
    const board = await DaemonOnCloud.start();
    const user = { name: 'agent', password: 's3cret' };
    const proxy = await TinyProxy.start({ dir: path.join(board.dir, 'proxy'), user });
    try {
      board.writeConfig({ extra: `network:\n  proxy: ${proxy.url(user)}` });
      const { daemon, told, reach } = await board.startDaemon();
      const status = await reach('ready');
      await daemon.stop();
      const display = `http://***@${proxy.address}:${proxy.port}`;
      expect(status).toMatchObject({ hubProtocol: 'mqtt-ws', hubProtocolReason: 'through the proxy, which tunnels 443 only', proxy: stringContaining(`${display} (`) });
      expect(told).toContain(`STATUS connecting: to ${board.hub.hostName} over MQTT over WebSockets on 443 through the proxy ${display}`);
      expect(proxy.connects()).toEqual(arrayContaining([`${board.cloud.dps.host}:443`, `${board.hub.hostName}:443`]));
    } finally {
      proxy.stop();
    }
  });

  it('goes to the hub straight over 8883 when told to, though a proxy carries its DPS traffic, and does not say it is proxied', async () => {
    const board = await DaemonOnCloud.start();
    const proxy = await TinyProxy.start({ dir: path.join(board.dir, 'proxy') });
    try {
      board.writeConfig({ extra: `network:\n  proxy: ${proxy.url()}\n  hubProtocol: mqtt` });
      const { daemon, told, reach } = await board.startDaemon();
      const status = await reach('ready');
      await daemon.stop();
      expect(status).toMatchObject({ hubProtocol: 'mqtt', hubProtocolReason: 'network.hubProtocol is mqtt' });
      expect(told).toContain(`STATUS connecting: to ${board.hub.hostName} over MQTT on 8883`);
      // Only DPS went through it; the hub connection went round it.
      expect(new Set(proxy.connects())).toEqual(new Set([`${board.cloud.dps.host}:443`]));
    } finally {
      proxy.stop();
    }
  });

  it('signs its hub tokens for the lifetime it was given, renewing them on the live session at the margin it was given', async () => {
    const board = await DaemonOnCloud.start();
    const { told, reach } = await board.startDaemon({ timings: { tokenLifetimeSeconds: 4, tokenRenewalMarginSeconds: 2 } });
    await reach('ready');
    const connects = board.hub.counters.connects;
    await expect.poll(() => board.hub.counters.connects, { timeout: 20_000 }).toBeGreaterThanOrEqual(connects + 2);
    // Renewed 2 s before a 4 s token ends: every 2 s or so, not at once again and again.
    const renewed = board.hub.counters.connects;
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    expect(board.hub.counters.connects - renewed).toBeLessThanOrEqual(4);
    expect(told.filter((t) => t.startsWith('STATUS degraded'))).toEqual([]);
  });

  it('asks the hub for the keep-alive it was given', async () => {
    const board = await DaemonOnCloud.start();
    const { reach } = await board.startDaemon({ timings: { keepAliveSeconds: 7 } });
    await reach('ready');
    expect(keepAliveSeenByHub(board.hub, 'board-70')).toBe(10_501);
  });

  it('connects though it cannot write its history or what it learnt of the protocol, and says so', async () => {
    const board = await DaemonOnCloud.start();
    // A directory where each file should go: every write fails at its rename.
    for (const name of ['connection-history.json', 'hub-protocol.json']) mkdirSync(path.join(board.files.stateDir, name), { recursive: true });
    const { logged, reach } = await board.startDaemon();
    await reach('ready');
    expect(logged('state.history_not_saved')).toEqual([stringMatching(/ err=/)]);
    expect(logged('state.hub_protocol_not_saved')).toEqual([stringMatching(/ err=/)]);
  });
});
