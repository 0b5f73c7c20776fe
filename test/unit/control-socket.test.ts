import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { askDaemon, DaemonAbsentError, requestDaemon } from '../../agent/control/client.js';
import { controlSocketPath, type DaemonStatus } from '../../agent/control/protocol.js';
import { parseReply, parseRequest } from '../../agent/control/wire.js';
import { serveControlSocket } from '../../agent/daemon/control-socket.js';
import type { TpmReport } from '../../agent/tpm/tpm-report.js';

const STATUS: DaemonStatus = {
  state: 'degraded', reason: 'hub unreachable', since: '2026-11-26T11:59:00.000Z', pid: 42, registrationId: 'r1', deviceId: 'd1',
  assignedHub: 'hub.example', idScope: '0ne00ABC', hubProtocol: 'mqtt', hubProtocolReason: 'auto: 8883 first', proxy: null,
  lastError: { message: 'hub unreachable', at: '2026-11-26T11:58:30.000Z' }, consecutiveFailures: 3, nextRetryAt: null,
  dpsHeldOffUntil: null, operatorMustAct: false, telemetryQueue: { depth: 1, dropped: 0, oldestAgeSeconds: null }, clockOffsetMs: -12.5,
};
const TPM: TpmReport = {
  transport: 'swtpm:host=127.0.0.1,port=2321',
  endorsementKey: { ok: true, value: 'AToAAQAL' },
  storageRootKey: { ok: true, value: null },
  identityKey: { ok: false, error: 'TPM_RC_HANDLE', refused: true, hint: 'provision first' },
  facts: { ok: true, value: { manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW TPM', firmwareVersion: '1.2.3.4', specLevel: '2.0', family: '2.0', revision: '1.59' } },
};
const line = (value: unknown) => JSON.stringify(value);


describe('control socket requests', () => {
  it.each([
    ['{"op":"status"}', { op: 'status' }],
    ['{"op":"provision"}', { op: 'provision', force: false }],
    ['{"op":"provision","force":true}', { op: 'provision', force: true }],
    ['{"op":"tpm"}', { op: 'tpm' }],
    ['{"op":"support"}', { op: 'support' }],
  ])('accepts %s', (text, request) => {
    expect(parseRequest(text)).toEqual(request);
  });

  it.each([
    ['', 'request is not JSON'],
    ['{op:status}', 'request is not JSON'],
    ['"status"', 'request is not a JSON object'],
    ['[]', 'request is not a JSON object'],
    ['null', 'request is not a JSON object'],
    ['{"op":"reboot"}', 'unknown op "reboot": expected one of status, tpm, support, provision'],
    ['{"op":"status","force":true}', 'request status.force: expected no such field (known: op)'],
    ['{"op":"provision","force":true,"as":"root"}', 'request provision.as: expected no such field'],
    ['{"op":"__proto__"}', 'unknown op "__proto__"'],
    ['{}', 'unknown op undefined'],
    ['{"op":"provision","force":"yes"}', 'request provision.force: expected true or false, got a string of 3 characters'],
  ])('refuses %j with %s', (text, message) => {
    expect(parseRequest(text)).toEqual(expect.stringContaining(message));
  });
});

describe('control socket replies', () => {
  it.each([
    ['{"event":"step","step":"tpm","message":"TPM ready"}', { event: 'step', step: 'tpm', message: 'TPM ready' }],
    ['{"event":"error","message":"busy"}', { event: 'error', message: 'busy' }],
    ['{"event":"error","message":"DPS refused","step":"challenge"}', { event: 'error', message: 'DPS refused', step: 'challenge' }],
  ])('accepts %s', (text, reply) => {
    expect(parseReply(text)).toEqual(reply);
  });

  it('accepts every reply the daemon sends, as it sends them', () => {
    // What JSON makes of a status with undefined fields: the keys are gone.
    const starting = { ...STATUS, state: 'starting' as const, reason: undefined, registrationId: undefined, hubProtocol: null };
    for (const reply of [
      { event: 'status', ...STATUS }, { event: 'done', ...STATUS }, { event: 'status', ...starting },
      { event: 'tpm', pid: 42, ...TPM },
      { event: 'support', status: STATUS, logLevel: 'info', recentLog: ['time=x level=info'], executedCommands: null },
    ]) {
      expect(parseReply(line(reply))).toEqual(JSON.parse(line(reply)));
    }
  });

  it.each([
    ['reply status.pid: expected a whole number, got a string of 2 characters', { event: 'status', ...STATUS, pid: '42' }],
    ['reply status.state: expected one of starting, provisioning, connecting, ready, degraded, stopping', { event: 'status', ...STATUS, state: 'sleeping' }],
    ['reply status.since: expected a string, got nothing', { event: 'status', ...STATUS, since: undefined }],
    ['reply status.debug: expected no such field', { event: 'status', ...STATUS, debug: true }],
    ['reply done.lastError.at: expected a string, got nothing', { event: 'done', ...STATUS, lastError: { message: 'x' } }],
    ['reply done.telemetryQueue.depth: expected a whole number', { event: 'done', ...STATUS, telemetryQueue: { depth: 1.5, dropped: 0, oldestAgeSeconds: null } }],
    ['reply done.hubProtocol: expected one of mqtt, mqtt-ws', { event: 'done', ...STATUS, hubProtocol: 'amqp' }],
    ['reply status.clockOffsetMs: expected a number', { event: 'status', ...STATUS, clockOffsetMs: 'NaN' }],
    ['reply step.step: expected one of tpm, challenge, activated, assigned, connected', { event: 'step', step: 'reboot', message: 'x' }],
    ['reply step.message: expected a string, got nothing', { event: 'step', step: 'tpm' }],
    ['reply error.message: expected a string, got the number 42', { event: 'error', message: 42 }],
    ['reply tpm.pid: expected a whole number, got nothing', { event: 'tpm', ...TPM }],
    ['reply tpm.endorsementKey.ok: expected true or false, got a string of 3 characters', { event: 'tpm', pid: 1, ...TPM, endorsementKey: { ok: 'yes', value: 'x' } }],
    ['reply tpm.identityKey.refused: expected true or false, got nothing', { event: 'tpm', pid: 1, ...TPM, identityKey: { ok: false, error: 'x' } }],
    ['reply tpm.facts.value.manufacturerName: expected a string', { event: 'tpm', pid: 1, ...TPM, facts: { ok: true, value: { manufacturer: 'IBM' } } }],
    ['reply support.status.pid: expected a whole number, got null', { event: 'support', status: { ...STATUS, pid: null }, logLevel: 'info', recentLog: [], executedCommands: 0 }],
    ['reply support.recentLog[1]: expected a string, got the number 7', { event: 'support', status: STATUS, logLevel: 'info', recentLog: ['a', 7], executedCommands: 0 }],
  ])('refuses a reply that does not fit its schema: %s', (message, reply) => {
    expect(parseReply(line(reply))).toEqual(expect.stringContaining(message));
  });

  it.each([
    ['', 'reply is not JSON'],
    ['{"event":', 'reply is not JSON'],
    ['[1]', 'reply is not a JSON object'],
    ['"status"', 'reply is not a JSON object'],
    ['{}', 'unknown event undefined: expected one of status, step, done, tpm, support, error'],
    ['{"event":"reboot"}', 'unknown event "reboot": expected one of status, step, done, tpm, support, error'],
  ])('refuses %j with %s', (text, message) => {
    expect(parseReply(text)).toBe(message);
  });
});

describe('control socket server', () => {
  const dir = () => mkdtempSync(path.join(tmpdir(), 'iot-agent-control-'));

  it('answers a request, and reports a malformed or oversized one without dying', async () => {
    const runtimeDir = dir();
    const server = await serveControlSocket(runtimeDir, async (_request, reply) => reply({ event: 'step', step: 'tpm', message: 'ready' }));
    try {
      const lines = [];
      for await (const line of requestDaemon(runtimeDir, { op: 'status' })) lines.push(line);
      expect(lines).toEqual([{ event: 'step', step: 'tpm', message: 'ready' }]);

      const raw = (payload: string) => new Promise<string>((resolve) => {
        const socket = net.connect(controlSocketPath(runtimeDir));
        let text = '';
        socket.on('data', (c: Buffer) => { text += c.toString(); });
        socket.on('close', () => resolve(text));
        socket.on('error', () => resolve(text));
        socket.write(payload);
      });
      expect(await raw('garbage\n')).toBe('{"event":"error","message":"request is not JSON"}\n');
      expect(await raw('x'.repeat(10_000))).toContain('request too large');

      const again = [];
      for await (const line of requestDaemon(runtimeDir, { op: 'status' })) again.push(line);
      expect(again).toHaveLength(1);
    } finally {
      server.close();
    }
  });

  it('turns the daemon\'s error or an unexpected event into one clear error for a single-answer request', async () => {
    const runtimeDir = dir();
    const server = await serveControlSocket(runtimeDir, async (request, reply) => {
      if (request.op === 'tpm') reply({ event: 'error', message: 'the TPM is not open (starting)' });
      else reply({ event: 'step', step: 'tpm', message: 'odd' });
    });
    try {
      await expect(askDaemon(runtimeDir, { op: 'tpm' }, 'tpm')).rejects.toThrow('the daemon refused tpm: the TPM is not open (starting)');
      await expect(askDaemon(runtimeDir, { op: 'support' }, 'support')).rejects.toThrow('the daemon answered support with step, not support');
    } finally {
      server.close();
    }
  });

  it('tells the CLI when no daemon listens', async () => {
    const lines = requestDaemon(dir(), { op: 'status' });
    await expect(lines.next()).rejects.toBeInstanceOf(DaemonAbsentError);
  });
});
