import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { invokeMethod } from '../support/direct-method.js';
import { TpmLock } from '../../agent/tpm/tpm-lock.js';
import { DaemonOnCloud, stopDaemonsOnCloud } from '../support/daemon-on-cloud.js';
import { stringMatching } from '../support/matchers.js';

afterEach(stopDaemonsOnCloud, 60_000);

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the daemon reloading its config (SIGHUP)', () => {
  it('keeps its session for a new log level, keeps running on an invalid config, and restarts the flow with the new policy when provisioning changed', async () => {
    const board = await DaemonOnCloud.start();
    const { daemon, told, logged, reach } = await board.startDaemon();
    await reach('ready');
    const connects = board.hub.counters.connects;
    writeFileSync(board.configPath, readFileSync(board.configPath, 'utf8').replace('level: debug', 'level: info'));
    await daemon.reload();
    expect(daemon.snapshot().logLevel).toBe('info');
    expect(logged('config.reloaded')).toEqual([stringMatching('changed="log level, telemetry, retry timings or nothing"')]);
    writeFileSync(board.configPath, 'provisioning: [\n');
    await daemon.reload();
    board.writeConfig({ extra: 'telemetry:\n  intervalSeconds: 30' });
    writeFileSync(board.configPath, readFileSync(board.configPath, 'utf8').replace(/ {2}idScope: .*\n/, ''));
    await daemon.reload();
    expect(logged('config.reload_failed')).toEqual([
      stringMatching('keeping="the running configuration"'), stringMatching(/provisioning\.idScope is missing.* keeping="the running configuration"/),
    ]);
    board.writeConfig({ extra: 'telemetry:\n  intervalSeconds: 30' });
    await daemon.reload();
    // The features took the new interval; the session stayed.
    const service = serviceClients(board.hub.serviceConnectionString, board.cloud.ca);
    const answer = await invokeMethod(service.client, 'board-70', { methodName: 'setTelemetryInterval', payload: { seconds: 60 }, responseTimeoutInSeconds: 10 });
    expect(answer).toMatchObject({ status: 200, payload: { previous: 30 } });
    expect(board.hub.counters.connects).toBe(connects);
    board.writeConfig({ reprovision: 'never' });
    await daemon.reload();
    expect(logged('config.reloaded')[2]).toContain('changed="provisioning, TPM, TLS or directories: restarting the flow"');
    await reach('ready');
    expect(board.hub.counters.connects).toBe(connects + 1);
    expect(told.filter((t) => t === 'STATUS starting')).toHaveLength(1);
    expect(board.cloud.dps.counters.registrations).toBe(1);
    expect(told.filter((t) => t.startsWith('READY'))).toHaveLength(1);
    // The policy took the new setting: a refusal no longer goes back to DPS.
    await board.hub.core.deleteDevice('board-70', undefined);
    await expect.poll(() => logged('hub.rejected'), { timeout: 30_000 }).toContainEqual(stringMatching('then=reconnect'));
    expect(logged('hub.rejected').every((l) => l.includes('then=reconnect'))).toBe(true);
  });
});

describe('the daemon stopping', () => {
  it('stops while DPS is still assigning: ends the registration, tells systemd and changes its state no more', async () => {
    const board = await DaemonOnCloud.start();
    board.cloud.dps.faults.assignmentDelayMs = 60_000;
    const { daemon, told, logged, reach, healthy } = await board.startDaemon({ readyGraceMs: 2_000 });
    await reach('provisioning');
    await expect.poll(() => logged('provisioning.challenge').length, { timeout: 30_000 }).toBe(1);
    const t0 = Date.now();
    await daemon.stop();
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(told.slice(-3)).toEqual(['STATUS stopping', 'STOPPING', 'WATCHDOG off']);
    expect(healthy()).toBe(false);
    expect(await TpmLock.holder(board.files.runtimeDir)).toBeUndefined();
    // Nothing more once stopped: no state, and no READY when the grace time would have ended.
    const count = told.length;
    await settle(2_500);
    expect(told).toHaveLength(count);
    // The registration the stop ended is no DPS failure, and DPS is not tried again.
    expect(logged('provisioning.failed')).toEqual([]);
    expect(daemon.status()).toMatchObject({ state: 'stopping', reason: undefined });
    expect(logged('daemon.stopped')).toHaveLength(1);
    expect(logged('daemon.flow_failed')).toEqual([]);
  });

  it('stops while the hub does not answer its connection attempt', async () => {
    const board = await DaemonOnCloud.start({ cloud: { port8883: 'silent' }, extra: 'network:\n  hubProtocol: mqtt' });
    const { daemon, told, logged, reach } = await board.startDaemon();
    expect((await reach('connecting')).hubProtocolReason).toBe('network.hubProtocol is mqtt');
    await expect.poll(() => board.hub.silent8883Connections, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    const t0 = Date.now();
    await daemon.stop();
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(told.slice(-3)).toEqual(['STATUS stopping', 'STOPPING', 'WATCHDOG off']);
    await settle(1_000);
    expect(daemon.status().state).toBe('stopping');
    expect(logged('daemon.flow_failed')).toEqual([]);
    // The attempt the stop ended is no failure of the hub's: nothing counted, nothing learnt.
    expect(logged('hub.unreachable')).toEqual([]);
    expect(daemon.status().consecutiveFailures).toBe(0);
  });
});

describe('the daemon before its first connection', () => {
  it('tells systemd it is up once the grace time has passed, and not a second time when it connects', async () => {
    const board = await DaemonOnCloud.start();
    board.cloud.dps.faults.assignmentDelayMs = 2_000;
    const { told, reach } = await board.startDaemon({ readyGraceMs: 300 });
    await expect.poll(() => told.filter((t) => t.startsWith('READY')), { timeout: 10_000 }).toEqual(['READY started, not connected yet: not provisioned yet']);
    await reach('ready');
    expect(told.filter((t) => t.startsWith('READY'))).toHaveLength(1);
  });

  it('keeps the time of the last registration across restarts: a hub refusal soon after waits instead of asking DPS again', async () => {
    const board = await DaemonOnCloud.start();
    await board.provisionOnce({ timings: { minReprovisionSeconds: 3_600 } });
    const history = JSON.parse(readFileSync(path.join(board.files.stateDir, 'connection-history.json'), 'utf8')) as { lastRegistrationAt: string };
    expect(Date.now() - Date.parse(history.lastRegistrationAt)).toBeLessThan(120_000);
    await board.hub.core.deleteDevice('board-70', undefined);
    const second = await board.startDaemon({ timings: { minReprovisionSeconds: 3_600 } });
    await expect.poll(() => second.logged('hub.rejected').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    expect(second.logged('hub.rejected')[0]).toMatch(/then=reconnect/);
    const status = second.daemon.status();
    expect(Date.parse(status.dpsHeldOffUntil!) - Date.now()).toBeGreaterThan(3_000_000);
    expect(board.cloud.dps.counters.registrations).toBe(1);
  });

  it('ignores what it learnt of the hub protocol when that file is unreadable, and tries 8883 first', async () => {
    const board = await DaemonOnCloud.start();
    await board.provisionOnce();
    writeFileSync(path.join(board.files.stateDir, 'hub-protocol.json'), '{"kind":');
    const { logged, reach } = await board.startDaemon();
    expect(logged('state.hub_protocol_ignored')).toEqual([stringMatching(/reason=.+ treatedAs="nothing learnt: 8883 is tried first"/)]);
    expect(await reach('ready')).toMatchObject({ hubProtocol: 'mqtt', hubProtocolReason: 'auto: 8883 first' });
  });

  it('tries its flow again on its backoff while the CA file is missing, and connects once it is there', async () => {
    const board = await DaemonOnCloud.start();
    const caFile = path.join(board.dir, 'late-ca.pem');
    writeFileSync(board.configPath, readFileSync(board.configPath, 'utf8').replace(board.cloud.caCertPath, caFile));
    const { logged, reach } = await board.startDaemon();
    const status = await reach('degraded');
    expect(status.reason).toMatch(/ \(next try in \d+ s\)$/);
    expect(status.lastError?.message).toContain(caFile);
    await expect.poll(() => logged('daemon.flow_failed').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    expect(logged('daemon.flow_failed')[0]).toMatch(/retryInMs=\d+/);
    // The journal says what to do about it.
    expect(logged('daemon.flow_failed')[0]).toContain('(hint: fix tls.extraCaFile in the config or install the CA file)');
    copyFileSync(board.cloud.caCertPath, caFile);
    await reach('ready');
  });

  it('tries the TPM again on its backoff while swtpm is down, and connects once it is back', async () => {
    const board = await DaemonOnCloud.start();
    await board.swtpm.kill();
    const { logged, reach } = await board.startDaemon();
    const status = await reach('degraded');
    expect(status.reason).toMatch(/^TPM unavailable: .* \(next try in \d+ s\)$/);
    await expect.poll(() => logged('daemon.flow_failed').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    await board.swtpm.restart();
    expect((await reach('ready')).registrationId).toBe(board.board.registrationId);
  });
});
