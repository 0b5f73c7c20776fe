import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { askDaemon, controlSocketPath, DaemonAbsentError, parseReply, parseRequest, requestDaemon, serveControlSocket } from '../../agent/daemon/control-socket.js';

describe('control socket requests', () => {
  it.each([
    ['{"op":"status"}', { op: 'status' }],
    ['{"op":"provision"}', { op: 'provision', force: false }],
    ['{"op":"provision","force":true}', { op: 'provision', force: true }],
    ['{"op":"tpm"}', { op: 'tpm' }],
    ['{"op":"support"}', { op: 'support' }],
  ])('accepts %s', (line, request) => {
    expect(parseRequest(line)).toEqual(request);
  });

  it.each([
    ['', 'request is not JSON'],
    ['{op:status}', 'request is not JSON'],
    ['"status"', 'request is not a JSON object'],
    ['[]', 'request is not a JSON object'],
    ['null', 'request is not a JSON object'],
    ['{"op":"reboot"}', 'unknown op "reboot": expected one of status, provision, tpm, support'],
    ['{}', 'unknown op undefined'],
    ['{"op":"provision","force":"yes"}', 'force must be true or false'],
  ])('refuses %j with %s', (line, message) => {
    expect(parseRequest(line)).toEqual(expect.stringContaining(message));
  });
});

describe('control socket replies', () => {
  it.each([
    ['{"event":"step","step":"tpm","message":"TPM ready"}', { event: 'step', step: 'tpm', message: 'TPM ready' }],
    ['{"event":"error","message":"busy"}', { event: 'error', message: 'busy' }],
  ])('accepts %s', (line, reply) => {
    expect(parseReply(line)).toEqual(reply);
  });

  it.each([
    ['', 'reply is not JSON'],
    ['{"event":', 'reply is not JSON'],
    ['[1]', 'reply is not a JSON object'],
    ['"status"', 'reply is not a JSON object'],
    ['{}', 'unknown event undefined'],
    ['{"event":"reboot"}', 'unknown event "reboot"'],
  ])('refuses %j with %s', (line, message) => {
    expect(parseReply(line)).toBe(message);
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
