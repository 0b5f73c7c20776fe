import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config.js';
import { askDaemon, DaemonAbsentError, requestDaemon } from '../../agent/control/client.js';
import { Daemon, DEFAULT_READY_GRACE_MS } from '../../agent/daemon/daemon.js';
import { DAEMON_LOCK_OWNER, TpmLock } from '../../agent/tpm/tpm-lock.js';
import { Logger } from '../../agent/log/logger.js';
import { freePort } from '../support/ports.js';
import { ofType, stringMatching } from '../support/matchers.js';

/**
 * The daemon on a board whose TPM is not there (a swtpm port where nothing listens): it
 * starts, serves its control socket, keeps trying the TPM on its backoff, reloads and
 * stops, all for real in temporary directories. What it tells systemd is recorded.
 */
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const daemon of daemons.splice(0)) await daemon.stop().catch(() => undefined);
});

async function board(extra = ''): Promise<{ configPath: string; runtimeDir: string; write: (more: string) => void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-daemon-unit-'));
  const configPath = path.join(dir, 'config.yaml');
  const port = await freePort();
  const write = (more: string) => writeFileSync(configPath, [
    'provisioning:', '  idScope: 0ne0012ABCD', '  globalEndpoint: 127.0.0.1',
    'tpm:', `  transport: swtpm:port=${port}`,
    `stateDir: ${path.join(dir, 'state')}`, `runtimeDir: ${path.join(dir, 'run')}`, more,
  ].join('\n'));
  write(extra);
  return { configPath, runtimeDir: path.join(dir, 'run'), write };
}

async function started(configPath: string, readyGraceMs = 60_000) {
  const lines: string[] = [];
  const told: string[] = [];
  const log = new Logger({ journal: false, level: 'debug', write: (line) => lines.push(line) });
  const daemon = new Daemon({
    config: await loadConfig(configPath), configPath, log, agentVersion: '9.9.9', readyGraceMs, onRestartRequested: () => undefined,
    // The TPM is tried again after a random delay of up to an hour: the state stays degraded meanwhile.
    overrides: { timings: { backoff: { initialMs: 3_600_000, maxMs: 3_600_000, multiplier: 2 } } },
    notifier: {
      ready: (status) => told.push(`READY ${status}`),
      status: (status) => told.push(`STATUS ${status}`),
      stopping: () => told.push('STOPPING'),
      startWatchdog: () => told.push('WATCHDOG on'),
      stopWatchdog: () => told.push('WATCHDOG off'),
    },
  });
  daemons.push(daemon);
  await daemon.start();
  return { daemon, lines, told };
}

describe('the daemon without its TPM', () => {
  it('holds the TPM lock and answers status over its control socket, degraded, naming the TPM and the next try', async () => {
    const { configPath, runtimeDir } = await board();
    const { told } = await started(configPath);
    expect(await TpmLock.holder(runtimeDir)).toEqual({ pid: process.pid, owner: DAEMON_LOCK_OWNER });
    await expect.poll(async () => (await askDaemon(runtimeDir, { op: 'status' }, 'status')).state, { timeout: 10_000 }).toBe('degraded');
    const status = await askDaemon(runtimeDir, { op: 'status' }, 'status');
    expect(status).toMatchObject({
      event: 'status', pid: process.pid, idScope: '0ne0012ABCD', hubProtocol: null, hubProtocolReason: null, operatorMustAct: false,
      reason: stringMatching(/^TPM unavailable: .* \(next try in \d+(\.\d)? (s|min|h)\)$/),
      lastError: { message: stringMatching(/^TPM unavailable: /), at: ofType(String) },
      telemetryQueue: { depth: 0, dropped: 0, oldestAgeSeconds: null },
    });
    expect(status.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect(told).toContain('WATCHDOG on');
    expect(told.some((t) => t.startsWith('STATUS degraded: TPM unavailable'))).toBe(true);
  });

  it('tells systemd it is up once the grace time has passed, though not connected', async () => {
    const { configPath } = await board();
    const { told } = await started(configPath, 300);
    await expect.poll(() => told.filter((t) => t.startsWith('READY ')), { timeout: 5_000 }).toHaveLength(1);
    expect(told.find((t) => t.startsWith('READY '))).toMatch(/^READY started, not connected yet: /);
    expect(DEFAULT_READY_GRACE_MS).toBe(90_000);
  });

  it('says the TPM is not open when asked to read it, and hands its live state to a support bundle', async () => {
    const { configPath, runtimeDir } = await board();
    const { daemon } = await started(configPath);
    await expect.poll(() => daemon.status().state, { timeout: 10_000 }).toBe('degraded');
    await expect(askDaemon(runtimeDir, { op: 'tpm' }, 'tpm')).rejects.toThrow(/^the daemon refused tpm: the TPM is not open \(TPM unavailable/);
    const snapshot = await askDaemon(runtimeDir, { op: 'support' }, 'support');
    expect(snapshot).toMatchObject({ logLevel: 'debug', executedCommands: 0, status: { state: 'degraded' } });
    expect(snapshot.recentLog.some((l) => l.includes('event=daemon.started'))).toBe(true);
  });

  it('answers a technician\'s provision request with the step that failed, and goes on trying on its own', async () => {
    const { configPath, runtimeDir } = await board();
    const { daemon, lines } = await started(configPath);
    const replies = [];
    for await (const line of requestDaemon(runtimeDir, { op: 'provision', force: true })) replies.push(line);
    expect(replies).toEqual([{ event: 'error', step: 'tpm', message: stringMatching(/^TPM unavailable: /) }]);
    expect(lines.some((l) => l.includes('event=daemon.reprovision_requested'))).toBe(true);
    expect(lines.some((l) => l.includes('event=provisioning.failed'))).toBe(true);
    await expect.poll(() => daemon.status().state, { timeout: 10_000 }).toBe('degraded');
  });

  it('answers for itself before it has started: nothing known yet, no TPM to read, and it stops', async () => {
    const { configPath } = await board();
    const daemon = new Daemon({ config: await loadConfig(configPath), configPath, log: new Logger({ write: () => undefined }), agentVersion: '9.9.9', onRestartRequested: () => undefined, overrides: {} });
    expect(daemon.status()).toMatchObject({
      state: 'starting', registrationId: undefined, deviceId: undefined, assignedHub: undefined, idScope: '0ne0012ABCD',
      hubProtocol: null, hubProtocolReason: null, proxy: null, lastError: null, telemetryQueue: null, clockOffsetMs: null,
    });
    expect(daemon.snapshot()).toMatchObject({ status: { state: 'starting' }, executedCommands: null });
    await expect(daemon.tpmReport()).rejects.toThrow('the TPM is not open (starting)');
    // A stop (SIGTERM) may come before start() got far: nothing to end yet, and it still stops.
    await daemon.stop();
    expect(daemon.status().state).toBe('stopping');
  });

  it('refuses to start while another process holds the TPM, and without an ID scope', async () => {
    const { configPath, runtimeDir } = await board();
    const log = new Logger({ write: () => undefined });
    await (await TpmLock.acquire(runtimeDir, 'x')).release();
    writeFileSync(path.join(runtimeDir, 'tpm.lock'), `${process.ppid} iot-agent provision\n`);
    await expect(new Daemon({ config: await loadConfig(configPath), configPath, log, agentVersion: '9.9.9', onRestartRequested: () => undefined, overrides: {} }).start()).rejects.toThrow(`the TPM is in use by iot-agent provision (pid ${process.ppid})`);
    const config = await loadConfig(configPath);
    config.provisioning.idScope = undefined;
    await expect(new Daemon({ config, configPath, log, agentVersion: '9.9.9', onRestartRequested: () => undefined, overrides: {} }).start()).rejects.toThrow('provisioning.idScope is missing');
  });

  it('on SIGHUP takes a new log level at once, keeps running on an invalid config, and restarts the flow when the TPM changed', async () => {
    const { configPath, write } = await board();
    const { daemon, lines } = await started(configPath);
    write('log:\n  level: warn');
    await daemon.reload();
    expect(daemon.snapshot().logLevel).toBe('warn');
    write('log:\n  level: loud');
    await daemon.reload();
    expect(lines.some((l) => l.includes('event=config.reload_failed') && l.includes('keeping="the running configuration"'))).toBe(true);
    write('log:\n  level: info\ntelemetry:\n  intervalSeconds: 30');
    await daemon.reload();
    expect(lines.some((l) => l.includes('event=config.reloaded') && l.includes('changed="log level, telemetry, retry timings or nothing"'))).toBe(true);
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/swtpm:port=\d+/, `swtpm:port=${await freePort()}`));
    await daemon.reload();
    expect(lines.some((l) => l.includes('event=config.reloaded') && l.includes('restarting the flow'))).toBe(true);
  });

  it('stops: tells systemd, lets go of the TPM and closes its control socket', async () => {
    const { configPath, runtimeDir } = await board();
    const { daemon, told, lines } = await started(configPath);
    await daemon.stop();
    expect(told.slice(-3)).toEqual(['STATUS stopping', 'STOPPING', 'WATCHDOG off']);
    expect(await TpmLock.holder(runtimeDir)).toBeUndefined();
    await expect(askDaemon(runtimeDir, { op: 'status' }, 'status')).rejects.toBeInstanceOf(DaemonAbsentError);
    expect(daemon.status().state).toBe('stopping');
    expect(lines.some((l) => l.includes('event=daemon.stopped'))).toBe(true);
  });
});
