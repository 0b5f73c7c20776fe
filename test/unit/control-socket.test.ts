import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  askDaemon, controlSocketPath, DaemonAbsentError, parseReply, parseRequest, payloadOf, requestDaemon, serveControlSocket, type ControlRequest,
} from '../../agent/daemon/control-socket.js';
import { answering, handling } from './control-handlers.js';

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
    const server = await serveControlSocket(runtimeDir, answering({ event: 'step', step: 'tpm', message: 'ready' }));
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
    const server = await serveControlSocket(runtimeDir, handling((request, reply) => {
      if (request.op === 'tpm') reply({ event: 'error', message: 'the TPM is not open (starting)' });
      else reply({ event: 'step', step: 'tpm', message: 'odd' });
    }));
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

describe('control socket: edges', () => {
  const dir = () => mkdtempSync(path.join(tmpdir(), 'iot-agent-control-'));
  const lines = async (runtimeDir: string, request: ControlRequest) => {
    const got = [];
    for await (const line of requestDaemon(runtimeDir, request)) got.push(line);
    return got;
  };

  it('is reachable by its owner only, and replaces a socket file a crash left behind', async () => {
    const runtimeDir = dir();
    const first = await serveControlSocket(runtimeDir, answering({ event: 'error', message: 'first' }));
    first.close();
    const server = await serveControlSocket(runtimeDir, answering({ event: 'error', message: 'second' }));
    try {
      expect(statSync(controlSocketPath(runtimeDir)).mode & 0o777).toBe(0o600);
      expect(controlSocketPath(runtimeDir)).toBe(path.join(runtimeDir, 'control.sock'));
      expect(await lines(runtimeDir, { op: 'status' })).toEqual([{ event: 'error', message: 'second' }]);
    } finally {
      server.close();
    }
  });

  it('streams every step as it happens, then the last line', async () => {
    const runtimeDir = dir();
    const server = await serveControlSocket(runtimeDir, async (request, reply) => {
      expect(request).toEqual({ op: 'provision', force: true });
      reply({ event: 'step', step: 'tpm', message: 'TPM ready' });
      await new Promise((resolve) => setTimeout(resolve, 20));
      reply({ event: 'step', step: 'challenge', message: 'DPS challenge received' });
      reply({ event: 'error', step: 'activated', message: 'TPM2_ActivateCredential failed' });
    });
    try {
      expect(await lines(runtimeDir, { op: 'provision', force: true })).toEqual([
        { event: 'step', step: 'tpm', message: 'TPM ready' },
        { event: 'step', step: 'challenge', message: 'DPS challenge received' },
        { event: 'error', step: 'activated', message: 'TPM2_ActivateCredential failed' },
      ]);
    } finally {
      server.close();
    }
  });

  it('turns a handler that throws into one error line', async () => {
    const runtimeDir = dir();
    const server = await serveControlSocket(runtimeDir, () => Promise.reject(new Error('the TPM is not open (starting)')));
    const otherDir = dir();
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- rejecting with a string is what this test is about
    const nonError = await serveControlSocket(otherDir, () => Promise.reject('plain'));
    try {
      expect(await lines(runtimeDir, { op: 'tpm' })).toEqual([{ event: 'error', message: 'the TPM is not open (starting)' }]);
      expect(await lines(otherDir, { op: 'tpm' })).toEqual([{ event: 'error', message: 'plain' }]);
    } finally {
      server.close();
      nonError.close();
    }
  });

  it('takes a request of up to 4096 bytes, and a request sent in pieces', async () => {
    const runtimeDir = dir();
    const seen: unknown[] = [];
    const server = await serveControlSocket(runtimeDir, handling((request, reply) => { seen.push(request); reply({ event: 'error', message: 'ok' }); }));
    const raw = (pieces: string[]) => new Promise<string>((resolve) => {
      const socket = net.connect(controlSocketPath(runtimeDir));
      let text = '';
      socket.on('data', (c: Buffer) => { text += c.toString(); });
      socket.on('close', () => resolve(text));
      socket.on('connect', () => void writeSlowly(socket, pieces));
    });
    try {
      const padded = `{"op":"status","pad":"${'x'.repeat(4096 - 25)}"}\n`;
      expect(padded.length).toBe(4096);
      expect(await raw([padded])).toBe('{"event":"error","message":"ok"}\n');
      expect(await raw(['{"op":"st', 'atus"}', '\n'])).toBe('{"event":"error","message":"ok"}\n');
      expect(await raw([`${padded} `])).toBe('{"event":"error","message":"request too large"}\n');
      expect(seen).toEqual([{ op: 'status' }, { op: 'status' }]);
    } finally {
      server.close();
    }
  });

  it('fails a request whose reply the CLI cannot read, saying so', async () => {
    const runtimeDir = dir();
    const server = net.createServer((socket) => socket.end('{"event":"reboot"}\n'));
    mkdirSync(runtimeDir, { recursive: true });
    await new Promise<void>((resolve) => server.listen(controlSocketPath(runtimeDir), resolve));
    try {
      await expect(lines(runtimeDir, { op: 'status' })).rejects.toThrow('the daemon sent an unreadable reply: unknown event "reboot"');
    } finally {
      server.close();
    }
  });

  it('says when the daemon ended a single-answer request without an answer', async () => {
    const runtimeDir = dir();
    const server = await serveControlSocket(runtimeDir, answering());
    try {
      await expect(askDaemon(runtimeDir, { op: 'status' }, 'status')).rejects.toThrow('the daemon ended the status request without an answer');
    } finally {
      server.close();
    }
  });

  it('gives up on a daemon that does not answer in the time given', async () => {
    const runtimeDir = dir();
    const server = await serveControlSocket(runtimeDir, () => new Promise(() => undefined));
    try {
      await expect(askDaemon(runtimeDir, { op: 'status' }, 'status', 200)).rejects.toThrow('the daemon did not answer in time');
    } finally {
      server.close();
    }
  });

  it('tells the CLI no daemon listens when the socket file is stale', async () => {
    const runtimeDir = dir();
    const server = await serveControlSocket(runtimeDir, answering());
    await new Promise((resolve) => server.close(resolve));
    writeFileSync(controlSocketPath(runtimeDir), '');
    await expect(askDaemon(runtimeDir, { op: 'status' }, 'status')).rejects.toBeInstanceOf(DaemonAbsentError);
    await expect(askDaemon(runtimeDir, { op: 'status' }, 'status')).rejects.toMatchObject({ message: 'the iot-agent daemon is not running', exitCode: 1 });
  });

  it('takes the first line of a connection as its one request and ignores what follows', async () => {
    const runtimeDir = dir();
    const seen: unknown[] = [];
    const server = await serveControlSocket(runtimeDir, handling((request, reply) => { seen.push(request); reply({ event: 'error', message: 'ok' }); }));
    try {
      const answer = await new Promise<string>((resolve) => {
        const socket = net.connect(controlSocketPath(runtimeDir));
        let text = '';
        socket.on('data', (c: Buffer) => { text += c.toString(); });
        socket.on('close', () => resolve(text));
        socket.write('{"op":"tpm"}\n{"op":"status"}\nmore');
      });
      expect(answer).toBe('{"event":"error","message":"ok"}\n');
      expect(seen).toEqual([{ op: 'tpm' }]);
    } finally {
      server.close();
    }
  });

  it('fails, rather than hangs, when its socket cannot be made', async () => {
    const deep = path.join(dir(), 'x'.repeat(120));
    await expect(serveControlSocket(deep, answering())).rejects.toThrow();
  });

  it('accepts every event the daemon sends', () => {
    for (const event of ['status', 'step', 'done', 'tpm', 'support', 'error']) expect(parseReply(JSON.stringify({ event }))).toEqual({ event });
    expect(parseReply('null')).toBe('reply is not a JSON object');
  });

  it('hands a reply\'s data on without its event tag', () => {
    expect(payloadOf({ event: 'step', step: 'tpm', message: 'm' })).toEqual({ step: 'tpm', message: 'm' });
  });
});

/** Writes each piece 10 ms after the one before, so the server reads a request in pieces. */
async function writeSlowly(socket: net.Socket, pieces: string[]): Promise<void> {
  for (const piece of pieces) {
    socket.write(piece);
    await new Promise((r) => setTimeout(r, 10));
  }
}
