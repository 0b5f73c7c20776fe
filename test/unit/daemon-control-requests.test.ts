import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { askDaemon, requestDaemon } from '../../agent/control/client.js';
import type { ControlReply } from '../../agent/control/protocol.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { invokeMethod } from '../support/direct-method.js';
import { freePort } from '../support/ports.js';
import { DaemonOnCloud, stopDaemonsOnCloud } from '../support/daemon-on-cloud.js';
import { stringMatching } from '../support/matchers.js';

afterEach(stopDaemonsOnCloud, 60_000);

async function provisionRequest(runtimeDir: string): Promise<ControlReply[]> {
  const replies: ControlReply[] = [];
  for await (const line of requestDaemon(runtimeDir, { op: 'provision', force: true })) replies.push(line);
  return replies;
}

describe('what a technician asks the running daemon over its control socket', () => {
  it('registers in the open, step by step, onto the other key slot, and answers with the status once connected', async () => {
    const board = await DaemonOnCloud.start();
    const { told, logged, reach } = await board.startDaemon();
    await reach('ready');
    const file = path.join(board.files.stateDir, 'assignment.json');
    const before = JSON.parse(readFileSync(file, 'utf8')) as { identityKeyHandle: number };
    const replies = await provisionRequest(board.files.runtimeDir);
    const hub = board.hub.hostName;
    expect(replies.map((r) => (r.event === 'step' ? r.step : r.event))).toEqual(['tpm', 'challenge', 'activated', 'assigned', 'connected', 'done']);
    expect(replies[0]).toEqual({ event: 'step', step: 'tpm', message: `TPM ready, registration id ${board.board.registrationId}` });
    expect(replies[4]).toEqual({ event: 'step', step: 'connected', message: `connected to ${hub} as board-70` });
    expect(replies[5]).toMatchObject({ event: 'done', state: 'ready', deviceId: 'board-70', assignedHub: hub, consecutiveFailures: 0 });
    expect(board.cloud.dps.counters.registrations).toBe(2);
    expect(logged('daemon.reprovision_requested')).toHaveLength(1);
    expect((JSON.parse(readFileSync(file, 'utf8')) as { identityKeyHandle: number }).identityKeyHandle).not.toBe(before.identityKeyHandle);
    expect(told.filter((t) => t.startsWith('STATUS provisioning'))).toEqual(['STATUS provisioning: not provisioned yet', 'STATUS provisioning: requested']);
    expect(told.filter((t) => t.startsWith('READY'))).toHaveLength(1);
  });

  it('names the step DPS failed at, keeps the assignment in force and goes back to its hub', async () => {
    const board = await DaemonOnCloud.start();
    const { daemon, logged, reach } = await board.startDaemon();
    await reach('ready');
    const file = path.join(board.files.stateDir, 'assignment.json');
    const before = readFileSync(file, 'utf8');
    const connects = board.hub.counters.connects;
    board.cloud.dps.faults.failNext(1);
    const replies = await provisionRequest(board.files.runtimeDir);
    expect(replies.at(-1)).toEqual({ event: 'error', step: 'challenge', message: stringMatching(/\(503\)/) });
    expect(replies.slice(0, -1).map((r) => r.event === 'step' && r.step)).toEqual(['tpm']);
    expect(logged('provisioning.failed')).toEqual([stringMatching(/then=fallback reason="DPS failed: back to the hub of the previous assignment"/)]);
    await reach('ready');
    expect(board.hub.counters.connects).toBeGreaterThan(connects);
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(daemon.status()).toMatchObject({ deviceId: 'board-70', lastError: null });
    // Straight back to the assignment in force, not through the start-up flow and its cache.
    expect(logged('provisioning.cached')).toEqual([]);
  });

  it('answers a provision request before the first assignment with the failure, and carries on with its own flow', async () => {
    const board = await DaemonOnCloud.start();
    board.cloud.dps.faults.failNext(2);
    const { reach, logged } = await board.startDaemon();
    await expect.poll(() => logged('provisioning.failed').length, { timeout: 30_000 }).toBe(1);
    const replies = await provisionRequest(board.files.runtimeDir);
    expect(replies.at(-1)).toMatchObject({ event: 'error', step: 'challenge' });
    expect(logged('provisioning.failed')[1]).toMatch(/then=retryDps .*reason="DPS failed"/);
    const status = await reach('ready');
    expect(status.deviceId).toBe('board-70');
    expect(logged('daemon.flow_failed')).toEqual([]);
  });

  it('answers a provision request whose hub does not take the device within the wait with why, and keeps trying to connect', async () => {
    const board = await DaemonOnCloud.start();
    const { reach } = await board.startDaemon({ timings: { hubWaitSeconds: 3 } });
    await reach('ready');
    await board.hub.stopMqtt();
    let replies: ControlReply[];
    try {
      replies = await provisionRequest(board.files.runtimeDir);
    } finally {
      await board.hub.startMqtt();
    }
    expect(replies.map((r) => (r.event === 'step' ? r.step : r.event))).toEqual(['tpm', 'challenge', 'activated', 'assigned', 'error']);
    // The reason names what the daemon is doing about it (connecting, or waiting to try again), not only its state.
    expect(replies.at(-1)).toEqual({ event: 'error', step: 'connected',
      message: stringMatching(/^provisioned, but not connected to the hub within 3 s \((?:to \S+ over|hub unreachable: ).+\)$/) });
    expect(board.cloud.dps.counters.registrations).toBe(2);
    expect((await reach('ready')).deviceId).toBe('board-70');
  });

  it('tells the first of two provision requests that the second took over while it waited for the hub', async () => {
    const board = await DaemonOnCloud.start();
    const { daemon, reach, logged } = await board.startDaemon();
    await reach('ready');
    await board.hub.stopMqtt();
    let restarted = false;
    try {
      const first: ControlReply[] = [];
      const firstDone = (async () => {
        for await (const line of requestDaemon(board.files.runtimeDir, { op: 'provision', force: true })) first.push(line);
      })();
      await expect.poll(() => first.some((r) => r.event === 'step' && r.step === 'assigned'), { timeout: 30_000 }).toBe(true);
      // The registration is over (its process has ended) once the new assignment's hub is being tried.
      await expect.poll(() => daemon.status().state, { timeout: 30_000 }).not.toBe('provisioning');
      const second = provisionRequest(board.files.runtimeDir);
      await firstDone;
      expect(first.at(-1)).toEqual({ event: 'error', step: 'connected', message: 'superseded by another request' });
      await board.hub.startMqtt();
      restarted = true;
      expect((await second).at(-1)).toMatchObject({ event: 'done', state: 'ready', deviceId: 'board-70' });
    } finally {
      if (!restarted) await board.hub.startMqtt();
    }
    expect(board.cloud.dps.counters.registrations).toBe(3);
    // The request that lost its flow is no failure of the daemon's.
    expect(logged('daemon.flow_failed')).toEqual([]);
    expect(logged('provisioning.failed')).toEqual([]);
  });

  it('tells a provision request that a second one ended its registration, and counts no DPS failure', async () => {
    const board = await DaemonOnCloud.start();
    const { daemon, reach, logged } = await board.startDaemon();
    await reach('ready');
    board.cloud.dps.faults.assignmentDelayMs = 3_000;
    const first: ControlReply[] = [];
    const firstDone = (async () => {
      for await (const line of requestDaemon(board.files.runtimeDir, { op: 'provision', force: true })) first.push(line);
    })();
    await expect.poll(() => first.some((r) => r.event === 'step' && r.step === 'challenge'), { timeout: 30_000 }).toBe(true);
    board.cloud.dps.faults.assignmentDelayMs = 0;
    const second = provisionRequest(board.files.runtimeDir);
    await firstDone;
    expect(first.at(-1)).toMatchObject({ event: 'error', message: 'superseded by a newer flow' });
    expect((await second).at(-1)).toMatchObject({ event: 'done', state: 'ready', deviceId: 'board-70', consecutiveFailures: 0 });
    expect(logged('provisioning.failed')).toEqual([]);
    expect(daemon.status().dpsHeldOffUntil).toBeNull();
  });

  it('reads the TPM through the transport the environment overrides the config\'s with, and hands its live state to a support bundle', async () => {
    const board = await DaemonOnCloud.start();
    const port = await freePort();
    writeFileSync(board.configPath, readFileSync(board.configPath, 'utf8').replace(board.swtpm.transport, `swtpm:port=${port}`));
    expect(readFileSync(board.configPath, 'utf8')).toContain(`transport: swtpm:port=${port}\n`);
    const { reach } = await board.startDaemon({ overrides: { tpmTransport: board.swtpm.transport } });
    await reach('ready');
    const report = await askDaemon(board.files.runtimeDir, { op: 'tpm' }, 'tpm');
    expect(report).toMatchObject({ transport: board.swtpm.transport, endorsementKey: { ok: true } });
    const snapshot = await askDaemon(board.files.runtimeDir, { op: 'support' }, 'support');
    expect(snapshot).toMatchObject({ logLevel: 'debug', executedCommands: 0, status: { state: 'ready', deviceId: 'board-70' } });
    expect(snapshot.recentLog.some((l) => l.includes('event=daemon.started'))).toBe(true);
  });

  it('re-provisions, answers a TPM command and asks to be restarted when the hub\'s caller says so, sending its health telemetry meanwhile', async () => {
    const board = await DaemonOnCloud.start();
    const restarts: number[] = [];
    const { reach } = await board.startDaemon({ timings: { telemetrySecondMs: 10 }, onRestartRequested: () => restarts.push(Date.now()) });
    await reach('ready');
    const service = serviceClients(board.hub.serviceConnectionString, board.cloud.ca);
    const answer = await invokeMethod(service.client, 'board-70', { methodName: 'reprovision', responseTimeoutInSeconds: 10 });
    expect(answer.status).toBe(202);
    await expect.poll(() => board.cloud.dps.counters.registrations, { timeout: 30_000 }).toBe(2);
    await reach('ready');
    // Commands that need the TPM use the daemon's own connection to it.
    expect(await invokeMethod(service.client, 'board-70', { methodName: 'attestationKey', responseTimeoutInSeconds: 20 })).toMatchObject({ status: 200 });
    expect((await invokeMethod(service.client, 'board-70', { methodName: 'restartAgent', responseTimeoutInSeconds: 10 })).status).toBe(202);
    await expect.poll(() => restarts.length, { timeout: 10_000 }).toBe(1);
    // A 60 s interval of 10 ms seconds: health messages every 0.6 s.
    await expect.poll(() => board.hub.d2c({ deviceId: 'board-70' }).filter((m) => m.properties['iot-agent-message'] === 'health').length, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
  });

  it('builds a support bundle from its live state and TPM connection when asked through the hub, and uploads it', async () => {
    const board = await DaemonOnCloud.start({ cloud: { storage: true } });
    const { reach } = await board.startDaemon();
    await reach('ready');
    const service = serviceClients(board.hub.serviceConnectionString, board.cloud.ca);
    const accepted = await invokeMethod(service.client, 'board-70', { methodName: 'uploadSupportBundle', payload: {}, responseTimeoutInSeconds: 10 });
    expect(accepted.status).toBe(202);
    const results = () => board.hub.d2c({ deviceId: 'board-70' }).filter((m) => m.properties['iot-agent-message'] === 'command-result');
    await expect.poll(() => results().length, { timeout: 60_000 }).toBe(1);
    const final = JSON.parse(results()[0]!.body.toString('utf8')) as { status: number; payload: { blobName: string; collectors: Record<string, string> } };
    expect(final).toMatchObject({ status: 200, payload: { collectors: { config: 'ok', status: 'ok', tpm: 'ok', 'daemon-log': 'ok', hardening: 'ok' } } });
    const bundle = path.join(board.dir, 'bundle.tar.gz');
    writeFileSync(bundle, await board.cloud.storage!.download(`board-70/${final.payload.blobName}`));
    const member = (name: string) => JSON.parse(execFileSync('tar', ['-xzOf', bundle, '--wildcards', `*/${name}`], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(member('config.json')).toMatchObject({ file: board.configPath, exists: true });
    expect(member('status.json')).toMatchObject({ state: 'ready', deviceId: 'board-70', daemon: 'running' });
    expect(member('tpm.json')).toMatchObject({ endorsementKey: { ok: true }, via: `the running daemon (pid ${process.pid})` });
    // Hardening was read where the daemon's site says (the test's sandbox), not on this machine.
    const { collectors } = member('manifest.json') as { collectors: { name: string; reads: string }[] };
    expect(collectors.find((c) => c.name === 'hardening')?.reads).toContain('namespace iotagent-test-nonexistent');
  });
});
