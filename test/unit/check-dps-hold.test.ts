import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkDpsHold } from '../../agent/check/dps-hold-check.js';
import { controlSocketPath, type ControlReply, type DaemonStatus } from '../../agent/control/protocol.js';
import { serveControlSocket } from '../../agent/daemon/control-socket.js';
import { stringMatching } from '../support/matchers.js';
import { answering, handling } from './control-handlers.js';

const servers: net.Server[] = [];
afterEach(() => { for (const server of servers.splice(0)) server.close(); });

const now = new Date('2026-11-26T12:00:00Z');
const runtimeDir = () => mkdtempSync(path.join(tmpdir(), 'iot-agent-dps-hold-'));

const status = (overrides: Partial<DaemonStatus> = {}): DaemonStatus => ({
  state: 'ready', reason: 'connected to hub-a.example as board-17', since: '2026-11-26T11:00:00.000Z', pid: 4242, registrationId: 'board-17',
  deviceId: 'board-17', assignedHub: 'hub-a.example', idScope: '0ne0012ABCD', hubProtocol: 'mqtt', hubProtocolReason: null, proxy: null,
  lastError: null, consecutiveFailures: 0, nextRetryAt: null, dpsHeldOffUntil: null, operatorMustAct: false, telemetryQueue: null, clockOffsetMs: null,
  ...overrides,
});

const disabled = 'provisioning failed: DPS global.azure-devices-provisioning.net (ID scope 0ne0012ABCD, registration board-17) ended the registration with status "disabled": the enrollment is disabled';

/** This process plays the running daemon: its control socket answers every request with these lines. */
async function daemonAnswering(dir: string, ...lines: ControlReply[]): Promise<void> {
  servers.push(await serveControlSocket(dir, answering(...lines)));
}

const check = (dir: string, timeoutMs = 2_000) => checkDpsHold({ runtimeDir: dir, now, timeoutMs });

describe('check: the running daemon\'s hold on DPS', () => {
  it('passes when no daemon runs: a hold lives only in the daemon', async () => {
    expect(await check(runtimeDir())).toEqual({
      id: 'dps-hold', status: 'pass', message: 'no daemon running: no DPS hold is known (a hold lasts only as long as the daemon runs)',
    });
  });

  it('passes when a socket file is left but nobody listens on it (a daemon that crashed)', async () => {
    const dir = runtimeDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(controlSocketPath(dir), '');
    expect(await check(dir)).toMatchObject({ status: 'pass', message: stringMatching(/^no daemon running/) });
  });

  it('fails with DPS\'s reason, and says an operator must act and when the daemon asks again', async () => {
    const dir = runtimeDir();
    await daemonAnswering(dir, { event: 'status', ...status({
      state: 'degraded', reason: `${disabled} (an operator must act; next try in 6.0 h)`, operatorMustAct: true,
      lastError: { message: disabled, at: '2026-11-26T11:59:00.000Z' }, dpsHeldOffUntil: '2026-11-26T18:00:00.000Z', consecutiveFailures: 1,
    }) });
    expect(await check(dir)).toEqual({
      id: 'dps-hold', status: 'fail', message: `DPS will not assign this device until an operator acts (daemon pid 4242): ${disabled}`,
      hint: 'an operator must enable or fix this device\'s enrollment in DPS; the daemon asks DPS again at 2026-11-26T18:00:00.000Z, or at once with `iot-agent provision`',
    });
  });

  it('fails on an operator hold while the daemon is back on the hub of its previous assignment', async () => {
    const dir = runtimeDir();
    await daemonAnswering(dir, { event: 'status', ...status({
      operatorMustAct: true, lastError: { message: disabled, at: '2026-11-26T11:59:00.000Z' }, dpsHeldOffUntil: '2026-11-26T17:30:00.000Z',
    }) });
    expect(await check(dir)).toMatchObject({ status: 'fail', hint: stringMatching(/asks DPS again at 2026-11-26T17:30:00\.000Z,/) });
  });

  it('fails on an operator hold whose time has passed, saying the daemon asks at its next attempt', async () => {
    const dir = runtimeDir();
    await daemonAnswering(dir, { event: 'status', ...status({ state: 'degraded', operatorMustAct: true, dpsHeldOffUntil: '2026-11-26T11:59:59.000Z' }) });
    expect(await check(dir)).toMatchObject({
      status: 'fail', message: 'DPS will not assign this device until an operator acts (daemon pid 4242): connected to hub-a.example as board-17',
      hint: stringMatching(/the daemon asks DPS again at its next attempt, or at once/),
    });
  });

  it('warns when DPS is held off while the daemon waits for it, with the reason', async () => {
    const dir = runtimeDir();
    const throttled = 'provisioning failed: DPS dps.example (ID scope 0ne0012ABCD, registration board-17) is throttling registrations (429)';
    await daemonAnswering(dir, { event: 'status', ...status({
      state: 'degraded', lastError: { message: throttled, at: '2026-11-26T11:59:50.000Z' }, dpsHeldOffUntil: '2026-11-26T12:00:30.000Z',
    }) });
    expect(await check(dir)).toEqual({
      id: 'dps-hold', status: 'warn', message: `DPS held off until 2026-11-26T12:00:30.000Z (daemon pid 4242, degraded): ${throttled}`,
      hint: 'the daemon asks DPS again then by itself (its backoff, DPS\'s Retry-After or the re-provisioning rate limit), or at once with `iot-agent provision`',
    });
  });

  it('passes a connected daemon held off DPS by the re-provisioning rate limit: nothing waits on DPS', async () => {
    const dir = runtimeDir();
    await daemonAnswering(dir, { event: 'status', ...status({ dpsHeldOffUntil: '2026-11-26T12:45:00.000Z' }) });
    expect(await check(dir)).toEqual({
      id: 'dps-hold', status: 'pass', message: 'daemon pid 4242 is connected; DPS is not asked again before 2026-11-26T12:45:00.000Z, and nothing waits on it',
    });
  });

  it('passes a daemon that does not hold DPS off, or whose hold has passed', async () => {
    const dir = runtimeDir();
    await daemonAnswering(dir, { event: 'status', ...status({ state: 'provisioning', dpsHeldOffUntil: '2026-11-26T11:59:00.000Z' }) });
    expect(await check(dir)).toEqual({ id: 'dps-hold', status: 'pass', message: 'daemon pid 4242: DPS is not held off' });
  });

  it('takes a hold that ends at this very instant as over', async () => {
    const result = await checkDpsHold({ runtimeDir: runtimeDir(), now, timeoutMs: 2_000,
      read: () => Promise.resolve(status({ state: 'degraded', dpsHeldOffUntil: now.toISOString() })) });
    expect(result).toEqual({ id: 'dps-hold', status: 'pass', message: 'daemon pid 4242: DPS is not held off' });
  });

  it('says no reason was recorded when the daemon has neither an error nor a reason', async () => {
    const result = await checkDpsHold({ runtimeDir: runtimeDir(), now, timeoutMs: 2_000,
      read: () => Promise.resolve(status({ state: 'degraded', reason: undefined, dpsHeldOffUntil: '2026-11-26T12:05:00.000Z' })) });
    expect(result).toMatchObject({ status: 'warn', message: 'DPS held off until 2026-11-26T12:05:00.000Z (daemon pid 4242, degraded): no reason recorded' });
  });

  it('asks the daemon for its status, and nothing else', async () => {
    const dir = runtimeDir();
    const asked: string[] = [];
    servers.push(await serveControlSocket(dir, handling((request, reply) => { asked.push(request.op); reply({ event: 'status', ...status() }); })));
    await check(dir);
    expect(asked).toEqual(['status']);
  });

  it('warns, not fails, when the daemon answers with an error', async () => {
    const dir = runtimeDir();
    await daemonAnswering(dir, { event: 'error', message: 'busy' });
    expect(await check(dir)).toEqual({
      id: 'dps-hold', status: 'warn', message: 'the running daemon did not say whether DPS is held off: the daemon refused status: busy',
      hint: 'a daemon of another version (restart it after an upgrade) or a stuck one; only root and the agent\'s user reach its control socket',
    });
  });

  it('warns when a daemon of another version answers a status this one does not read', async () => {
    const dir = runtimeDir();
    const older: Partial<DaemonStatus> = status();
    delete older.operatorMustAct;
    await daemonAnswering(dir, { event: 'status', ...older } as ControlReply);
    expect(await check(dir)).toMatchObject({
      status: 'warn', message: 'the running daemon did not say whether DPS is held off: the daemon sent an unreadable reply: reply status.operatorMustAct: expected true or false, got nothing',
    });
  });

  it('warns within its deadline when the daemon does not answer', async () => {
    const dir = runtimeDir();
    servers.push(await serveControlSocket(dir, () => new Promise(() => undefined)));
    const t0 = performance.now();
    const result = await check(dir, 300);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(result).toMatchObject({ status: 'warn', message: 'the running daemon did not say whether DPS is held off: no answer within 0.3 s' });
  });

  it('reads the status it is given instead of asking over the socket (the daemon checking itself)', async () => {
    const result = await checkDpsHold({ runtimeDir: runtimeDir(), now, timeoutMs: 2_000, read: () => Promise.resolve(status({ pid: 7, operatorMustAct: true })) });
    expect(result).toMatchObject({ status: 'fail', message: stringMatching(/\(daemon pid 7\)/) });
  });
});
