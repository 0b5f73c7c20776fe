import { describe, expect, it } from 'vitest';
import { duration, formatStatus } from '../../agent/cli/status.js';
import type { StatusReport } from '../../agent/control/status-report.js';

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
