import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { duration, formatStatus } from '../../agent/cli/status.js';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import type { DaemonStatus } from '../../agent/control/protocol.js';
import { statusReport, type StatusReport } from '../../agent/control/status-report.js';
import { serveControlSocket } from '../../agent/daemon/control-socket.js';
import { Logger } from '../../agent/log/logger.js';
import { writeAssignment } from '../../agent/state/assignment-store.js';
import { DiskQueue } from '../../agent/telemetry/disk-queue.js';
import { answering } from './control-handlers.js';

const now = new Date('2026-11-26T12:00:00Z');

describe('status for a technician', () => {
  it('shows a running daemon\'s protocol, last error, failures in a row, next retry, queue and clock offset', () => {
    const report: StatusReport = {
      daemon: 'running', state: 'degraded', reason: 'hub unreachable: ECONNREFUSED', since: '2026-11-26T11:59:00.000Z', pid: 42,
      registrationId: 'r1', deviceId: 'd1', assignedHub: 'hub.example', idScope: '0ne00ABC', hubProtocol: 'mqtt',
      hubProtocolReason: 'auto: 8883 first', proxy: null,
      lastError: { message: 'hub unreachable: ECONNREFUSED', at: '2026-11-26T11:58:30.000Z' }, consecutiveFailures: 3,
      nextRetryAt: '2026-11-26T12:00:12.000Z', dpsHeldOffUntil: '2026-11-26T13:00:00.000Z', operatorMustAct: false,
      telemetryQueue: { depth: 17, dropped: 2, oldestAgeSeconds: 3_720 }, clockOffsetMs: null,
    };
    const text = formatStatus(report, now);
    expect(text).toContain('Daemon             running (pid 42)\n');
    expect(text).toContain('Hub protocol       MQTT over TLS (port 8883) (auto: 8883 first)\n');
    expect(text).toContain('Proxy              none\n');
    expect(text).toContain('Last error         hub unreachable: ECONNREFUSED (2026-11-26T11:58:30.000Z, 1 min ago)\n');
    expect(text).toContain('Failures in a row  3\n');
    expect(text).toContain('Next retry         2026-11-26T12:00:12.000Z (in 12 s)\n');
    expect(text).toContain('Telemetry queue    17 waiting, oldest 1 h 2 min old, 2 dropped\n');
    expect(text).toContain('Clock offset       not measured yet\n');
    expect(text).toContain('DPS                not asked again before 2026-11-26T13:00:00.000Z (in 1 h)\n');
    const measured = formatStatus({ ...report, clockOffsetMs: -7_200_480.5, operatorMustAct: true }, now);
    expect(measured).toContain('Clock offset       -7200 s (the service is behind this device; tokens are signed with its time)\n');
    const proxied = formatStatus({ ...report, hubProtocol: 'mqtt-ws', hubProtocolReason: 'through the proxy, which tunnels 443 only',
      proxy: 'http://***@proxy.example:3128 (network.proxy)' }, now);
    expect(proxied).toContain('Hub protocol       MQTT over WebSockets (port 443) (through the proxy, which tunnels 443 only)\n');
    expect(proxied).toContain('Proxy              http://***@proxy.example:3128 (network.proxy)\n');
    expect(measured).toContain('DPS                will not assign this device until an operator acts; not asked again before 2026-11-26T13:00:00.000Z (in 1 h)\n');
  });

  it('shows dashes for what only a running daemon knows', () => {
    const text = formatStatus({
      daemon: 'not running', state: 'stopped', reason: 'not provisioned', since: undefined, registrationId: undefined, deviceId: undefined,
      assignedHub: undefined, idScope: undefined, hubProtocol: null, hubProtocolReason: null, proxy: null, lastError: null, consecutiveFailures: null, nextRetryAt: null,
      dpsHeldOffUntil: null, operatorMustAct: null, telemetryQueue: null, clockOffsetMs: null,
    }, now);
    expect(text).toContain('State              stopped (not provisioned)\n');
    for (const row of ['Hub protocol', 'Proxy', 'Last error', 'Failures in a row', 'Next retry', 'DPS', 'Telemetry queue', 'Clock offset']) {
      expect(text).toMatch(new RegExp(`^${row} +-$`, 'm'));
    }
  });

  it.each([[0, '0 s'], [59, '59 s'], [60, '1 min'], [3_599, '59 min'], [3_600, '1 h'], [3_660, '1 h 1 min'], [86_400, '1 d'], [90_000, '1 d 1 h']])(
    'says %i seconds as %s', (seconds, text) => {
      expect(duration(seconds)).toBe(text);
    });
});

describe('status rows for each state', () => {
  const running = (overrides: Partial<Extract<StatusReport, { daemon: 'running' }>> = {}): StatusReport => ({
    daemon: 'running', state: 'ready', reason: undefined, since: '2026-11-26T11:00:00.000Z', pid: 7,
    registrationId: 'r1', deviceId: 'd1', assignedHub: 'hub.example', idScope: '0ne00ABC', hubProtocol: 'mqtt', hubProtocolReason: null, proxy: null,
    lastError: null, consecutiveFailures: 0, nextRetryAt: null, dpsHeldOffUntil: null, operatorMustAct: false,
    telemetryQueue: { depth: 0, dropped: 0, oldestAgeSeconds: null }, clockOffsetMs: 1_200, ...overrides,
  });

  it('shows a healthy daemon: no error, nothing pending, DPS free to ask, a small clock offset', () => {
    expect(formatStatus(running(), now)).toBe([
      'State              ready',
      'Since              2026-11-26T11:00:00.000Z',
      'Daemon             running (pid 7)',
      'Registration id    r1',
      'Device id          d1',
      'Hub                hub.example',
      'ID scope           0ne00ABC',
      'Hub protocol       MQTT over TLS (port 8883)',
      'Proxy              none',
      'Last error         none',
      'Failures in a row  0',
      'Next retry         none pending',
      'Telemetry queue    0 waiting, 0 dropped',
      'DPS                may be asked when needed',
      'Clock offset       1 s (service minus device; within 5 min, the local clock is used)',
      '',
    ].join('\n'));
  });

  it('says the service is ahead beyond five minutes, and uses the local clock up to five minutes exactly', () => {
    expect(formatStatus(running({ clockOffsetMs: 300_001 }), now)).toContain('Clock offset       300 s (the service is ahead of this device; tokens are signed with its time)\n');
    expect(formatStatus(running({ clockOffsetMs: -300_000 }), now)).toContain('Clock offset       -300 s (service minus device; within 5 min');
  });

  it('names a protocol it has no words for as it is', () => {
    expect(formatStatus(running({ hubProtocol: 'amqp' as never }), now)).toContain('Hub protocol       amqp\n');
  });

  it('never shows a negative time for a retry that is overdue or an error from the future', () => {
    const text = formatStatus(running({ nextRetryAt: '2026-11-26T11:59:00.000Z', lastError: { message: 'x', at: '2026-11-26T12:00:30.000Z' } }), now);
    expect(text).toContain('Next retry         2026-11-26T11:59:00.000Z (in 0 s)\n');
    expect(text).toContain('Last error         x (2026-11-26T12:00:30.000Z, 0 s ago)\n');
  });

  it('rounds ages to whole seconds', () => {
    const text = formatStatus(running({ nextRetryAt: '2026-11-26T12:00:01.600Z', lastError: { message: 'x', at: '2026-11-26T11:59:58.400Z' } }), now);
    expect(text).toContain('(in 2 s)');
    expect(text).toContain('2 s ago');
  });
});

describe('status when the daemon does not run', () => {
  const configIn = (dir: string): AgentConfig => ({
    ...structuredClone(DEFAULTS), stateDir: path.join(dir, 'state'), runtimeDir: path.join(dir, 'run'),
    provisioning: { ...DEFAULTS.provisioning, idScope: '0ne00CONF', registrationId: 'configured-id' },
  });
  const tempDir = () => mkdtempSync(path.join(tmpdir(), 'iot-agent-status-'));

  it('reads a device that was never provisioned from the config', async () => {
    const report = await statusReport(configIn(tempDir()));
    expect(report).toEqual({
      daemon: 'not running', state: 'stopped', reason: 'not provisioned', since: undefined, registrationId: 'configured-id', deviceId: undefined,
      assignedHub: undefined, idScope: '0ne00CONF', hubProtocol: null, hubProtocolReason: null, proxy: null, lastError: null, consecutiveFailures: null, nextRetryAt: null,
      dpsHeldOffUntil: null, operatorMustAct: null, telemetryQueue: null, clockOffsetMs: null,
    });
  });

  it('reads the cached assignment and the telemetry queue from the state directory', async () => {
    const config = configIn(tempDir());
    await writeAssignment(config.stateDir, {
      assignedHub: 'hub-a.example', deviceId: 'board-17', registrationId: 'board-17', idScope: '0ne00DPS', globalEndpoint: 'dps.example',
      assignedAt: '2026-11-26T02:30:00.000Z', identityKeyHandle: 0x81000100,
    });
    const queue = await DiskQueue.open(path.join(config.stateDir, 'telemetry'), 100, new Logger({ write: () => undefined }));
    await queue.append('health', {});
    await queue.close();
    expect(await statusReport(config)).toMatchObject({
      daemon: 'not running', state: 'stopped', reason: undefined, since: '2026-11-26T02:30:00.000Z', registrationId: 'board-17',
      deviceId: 'board-17', assignedHub: 'hub-a.example', idScope: '0ne00DPS', telemetryQueue: { depth: 1, dropped: 0 },
    });
  });

  it('says the state file is unusable, and why', async () => {
    const config = configIn(tempDir());
    mkdirSync(config.stateDir, { recursive: true });
    writeFileSync(path.join(config.stateDir, 'assignment.json'), '{"truncated');
    const report = await statusReport(config);
    expect(report.reason).toMatch(/^state file unusable: /);
    expect(report.registrationId).toBe('configured-id');
  });

  it('asks the daemon when one listens on the control socket', async () => {
    const config = configIn(tempDir());
    const server = await serveControlSocket(config.runtimeDir, answering({ event: 'status', ...running() }));
    try {
      expect(await statusReport(config)).toEqual({ ...running(), daemon: 'running' });
    } finally {
      server.close();
    }
  });

  it('passes on a daemon that answers with an error', async () => {
    const config = configIn(tempDir());
    const server = await serveControlSocket(config.runtimeDir, answering({ event: 'error', message: 'busy' }));
    try {
      await expect(statusReport(config)).rejects.toThrow('the daemon refused status: busy');
    } finally {
      server.close();
    }
  });

  function running(): DaemonStatus {
    return {
      state: 'ready', reason: undefined, since: '2026-11-26T11:00:00.000Z', pid: 7, registrationId: 'r1', deviceId: 'd1', assignedHub: 'hub.example',
      idScope: '0ne00ABC', hubProtocol: 'mqtt', hubProtocolReason: null, proxy: null, lastError: null, consecutiveFailures: 0, nextRetryAt: null, dpsHeldOffUntil: null,
      operatorMustAct: false, telemetryQueue: null, clockOffsetMs: null,
    };
  }
});
