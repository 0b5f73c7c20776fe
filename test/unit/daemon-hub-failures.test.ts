import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceClock } from '../../agent/time/service-clock.js';
import { DaemonOnCloud, stopDaemonsOnCloud } from '../support/daemon-on-cloud.js';
import { arrayContaining, stringMatching } from '../support/matchers.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { TinyProxy } from '../support/tinyproxy.js';

afterEach(stopDaemonsOnCloud, 60_000);

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

describe('the daemon when its hub fails it', () => {
  it('goes back to DPS at once when the hub that accepted it refuses it, and is ready again', async () => {
    const board = await DaemonOnCloud.start();
    const { told, logged, reach } = await board.startDaemon();
    await reach('ready');
    await board.hub.core.deleteDevice('board-70', undefined);
    await expect.poll(() => logged('hub.rejected'), { timeout: 30_000 }).toEqual([stringMatching(/then=reprovision retryInMs=0/)]);
    await expect.poll(() => board.cloud.dps.counters.registrations, { timeout: 30_000 }).toBe(2);
    await reach('ready');
    expect(told).toEqual(arrayContaining([
      stringMatching(/^STATUS degraded: hub connection lost: .* \(reconnecting in \d+ s\)$/),
      stringMatching(/^STATUS degraded: the hub refused the device: .* \(asking DPS again\)$/),
      'STATUS provisioning: the hub refused the device',
    ]));
    expect(told.filter((t) => t.startsWith('READY'))).toHaveLength(1);
  });

  it('counts a refusal when it cannot ask the hub for its time, and says why at debug', async () => {
    const board = await DaemonOnCloud.start({ reprovision: 'never' });
    const proxy = await TinyProxy.start({ dir: path.join(board.dir, 'proxy') });
    try {
      board.writeConfig({ reprovision: 'never', extra: `network:\n  proxy: ${proxy.url()}\n  hubProtocol: mqtt` });
      await board.provisionOnce();
    } finally {
      proxy.stop();
    }
    await board.hub.core.deleteDevice('board-70', undefined);
    // MQTT goes straight to the hub, which refuses; the time probe (443) would go through the proxy, which is gone.
    const { logged } = await board.startDaemon();
    await expect.poll(() => logged('hub.rejected').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    expect(logged('clock.probe_failed')[0]).toMatch(new RegExp(`level=debug event=clock.probe_failed hub=${board.hub.hostName} err=`));
    expect(logged('clock.corrected')).toEqual([]);
  });

  it('counts a refusal when the hub\'s time leaves the correction in force as it was', async () => {
    const board = await DaemonOnCloud.start({ reprovision: 'never' });
    await board.provisionOnce();
    await board.hub.core.deleteDevice('board-70', undefined);
    // Signing with a correction already: the agent's not-before date, put an hour after this machine's clock, which the hub's Date does not move.
    const clock = new ServiceClock(Date.now, undefined, Date.now() + 3_600_000);
    const { logged } = await board.startDaemon({ clock });
    await expect.poll(() => logged('hub.rejected').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    expect(logged('clock.corrected')).toEqual([]);
  });

  it('with reprovision never, knocks on the refusing hub again on its backoff and never asks DPS', async () => {
    const board = await DaemonOnCloud.start({ reprovision: 'never' });
    await board.provisionOnce();
    await board.hub.core.deleteDevice('board-70', undefined);
    const { logged, reach } = await board.startDaemon();
    await expect.poll(() => logged('hub.rejected').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    expect(logged('hub.rejected')[0]).toMatch(/then=reconnect retryInMs=\d+/);
    // On its backoff (200 ms doubling to 2 s): a handful of attempts in three seconds, never a storm.
    const knocks = board.hub.counters.refused;
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(board.hub.counters.refused - knocks).toBeLessThanOrEqual(8);
    const status = await reach('degraded');
    expect(status.reason).toMatch(/^the hub refused the device: .* \(next try in \d+ s\)$/);
    expect(status.lastError?.message).toMatch(/^the hub refused the device: /);
    expect(board.cloud.dps.counters.registrations).toBe(1);
    expect(logged('clock.corrected')).toEqual([]);
  });

  it('goes back to the hub it had when DPS fails the re-provisioning the refusal caused, then tries DPS again', async () => {
    const board = await DaemonOnCloud.start();
    const { told, logged, reach } = await board.startDaemon();
    await reach('ready');
    board.cloud.dps.faults.failNext(1);
    await board.hub.core.deleteDevice('board-70', undefined);
    await expect.poll(() => logged('provisioning.failed'), { timeout: 30_000 }).toEqual([stringMatching(/then=fallback retryInMs=0 operatorMustAct=false reason="DPS failed: back to the hub of the previous assignment"/)]);
    await reach('ready');
    expect(board.cloud.dps.counters.registrations).toBe(2);
    // Back on the old hub at once (refused there again), not degraded waiting for DPS.
    expect(logged('hub.rejected').length).toBeGreaterThanOrEqual(2);
    expect(told.filter((t) => t.startsWith('STATUS degraded: provisioning failed'))).toEqual([]);
  });

  it('asks DPS again once its hub has been unreachable for hubUnreachableSeconds, keeping the old key until DPS answered', async () => {
    const board = await DaemonOnCloud.start();
    const timings = { hubUnreachableSeconds: 2 };
    await board.provisionOnce({ timings });
    const file = path.join(board.files.stateDir, 'assignment.json');
    const cached = readJson(file);
    // A hub address where nothing listens: every connection is refused at once.
    writeFileSync(file, JSON.stringify({ ...cached, assignedHub: randomLoopbackAddress() }));
    const t0 = Date.now();
    const { told, logged, reach } = await board.startDaemon({ timings });
    await expect.poll(() => logged('hub.unreachable').some((l) => l.includes('then=reprovision')), { timeout: 30_000 }).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
    expect(logged('hub.unreachable')[0]).toMatch(/then=reconnect retryInMs=\d+/);
    const status = await reach('ready');
    expect(status.assignedHub).toBe(board.hub.hostName);
    expect(told).toEqual(arrayContaining([
      stringMatching(/^STATUS degraded: hub unreachable: .* \(next try in \d+ s\)$/),
      stringMatching(/^STATUS degraded: hub unreachable: .* \(asking DPS again\)$/),
      stringMatching(/^STATUS provisioning: the hub has been unreachable for \d+ s$/),
    ]));
    expect(board.cloud.dps.counters.registrations).toBe(2);
    expect(readJson(file).identityKeyHandle).not.toBe(cached.identityKeyHandle);
    // Only a refusal may be the clock's fault: a hub that cannot be reached is not asked for its time.
    expect(logged('clock.probe_failed')).toEqual([]);
  });

  it('reconnects after the hub was down, telling the loss in its status and in the health telemetry of the outage', async () => {
    const board = await DaemonOnCloud.start();
    // Seconds of 20 ms: a health message every 1.2 s, queued while the hub is away.
    const { daemon, told, logged, reach } = await board.startDaemon({ timings: { telemetrySecondMs: 20 } });
    await reach('ready');
    await board.hub.stopMqtt();
    await expect.poll(() => told.some((t) => /^STATUS degraded: hub connection lost: .* \(reconnecting in \d+ s\)$/.test(t)), { timeout: 20_000 }).toBe(true);
    await expect.poll(() => told.some((t) => /^STATUS degraded: hub unreachable: .* \(next try in \d+ s\)$/.test(t)), { timeout: 20_000 }).toBe(true);
    expect(logged('hub.unreachable')[0]).toMatch(/then=reconnect retryInMs=\d+/);
    expect(logged('hub.rejected')).toEqual([]);
    await board.hub.startMqtt();
    await reach('ready');
    // A new round after each failed one: 8883 first again, which works once the hub is back.
    expect(daemon.status()).toMatchObject({ hubProtocol: 'mqtt', consecutiveFailures: 0, lastError: { message: stringMatching(/^hub unreachable: /) } });
    expect(told.filter((t) => t.startsWith('READY'))).toHaveLength(1);
    // The features were detached at the loss: what was measured meanwhile says so once delivered.
    const states = () => board.hub.d2c({ deviceId: 'board-70' }).filter((m) => m.properties['iot-agent-message'] === 'health')
      .map((m) => (JSON.parse(m.body.toString('utf8')) as { connection: { state: string } }).connection.state);
    await expect.poll(states, { timeout: 15_000 }).toContain('disconnected');
    await expect.poll(states, { timeout: 15_000 }).toContain('connected');
  });

  it('falls back to WebSockets after the shortened probe when 8883 does not answer, and remembers it across a restart', async () => {
    const board = await DaemonOnCloud.start({ cloud: { port8883: 'silent' } });
    const first = await board.startDaemon({ timings: { hubProbeSeconds: 1 } });
    const status = await first.reach('ready');
    expect(status).toMatchObject({ hubProtocol: 'mqtt-ws', hubProtocolReason: '8883 could not be reached within 1 s: WebSockets on 443' });
    expect(first.logged('hub.protocol_fallback')).toEqual([stringMatching(/from=mqtt to=mqtt-ws/)]);
    expect(first.logged('hub.protocol_learnt')).toEqual([stringMatching(/protocol=mqtt-ws retryMqttAfter=\d{4}-/)]);
    expect(readJson(path.join(board.files.stateDir, 'hub-protocol.json'))).toMatchObject({ protocol: 'mqtt-ws' });
    await first.daemon.stop();
    const second = await board.startDaemon();
    const again = await second.reach('ready');
    expect(again.hubProtocolReason).toMatch(/^8883 was unreachable \(.+\); 8883 is tried again after /);
    expect(second.told).toContain(`STATUS connecting: to ${board.hub.hostName} over MQTT over WebSockets on 443`);
    expect(second.logged('hub.protocol_learnt')).toEqual([]);
  });
});
