import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { askDaemon, DaemonAbsentError, payloadOf, requestDaemon } from '../../agent/control/client.js';
import { controlSocketPath, type ControlRequest, type DaemonStatus } from '../../agent/control/protocol.js';
import { parseReply, parseRequest } from '../../agent/control/wire.js';
import { AgentError } from '../../agent/lib/errors.js';
import { serveControlSocket } from '../../agent/daemon/control-socket.js';
import type { TpmReport } from '../../agent/tpm/tpm-report.js';
import { answering, handling } from './control-handlers.js';

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
const dirs: string[] = [];
/** A runtime directory of its own, removed after the file's tests. */
const tempDir = () => {
  const made = mkdtempSync(path.join(tmpdir(), 'iot-agent-control-'));
  dirs.push(made);
  return made;
};
afterAll(() => {
  for (const made of dirs) rmSync(made, { recursive: true, force: true });
});


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

  it('answers a request, and reports a malformed or oversized one without dying', async () => {
    const runtimeDir = tempDir();
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
    const runtimeDir = tempDir();
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
    const lines = requestDaemon(tempDir(), { op: 'status' });
    await expect(lines.next()).rejects.toBeInstanceOf(DaemonAbsentError);
  });
});

describe('control socket: edges', () => {
  const lines = async (runtimeDir: string, request: ControlRequest) => {
    const got = [];
    for await (const line of requestDaemon(runtimeDir, request)) got.push(line);
    return got;
  };

  it('is reachable by its owner only, and replaces a socket file a crash left behind', async () => {
    const runtimeDir = tempDir();
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
    const runtimeDir = tempDir();
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
    const runtimeDir = tempDir();
    const server = await serveControlSocket(runtimeDir, () => Promise.reject(new Error('the TPM is not open (starting)')));
    const otherDir = tempDir();
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
    const runtimeDir = tempDir();
    const seen: unknown[] = [];
    const server = await serveControlSocket(runtimeDir, handling((request, reply) => { seen.push(request); reply({ event: 'error', message: 'ok' }); }));
    const raw = (pieces: string[]) => exchange(runtimeDir, pieces);
    try {
      // Padded with JSON whitespace: a field the protocol does not know is refused.
      const padded = `{"op":"status"${' '.repeat(4096 - 16)}}\n`;
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
    const runtimeDir = tempDir();
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
    const runtimeDir = tempDir();
    const server = await serveControlSocket(runtimeDir, answering());
    try {
      await expect(askDaemon(runtimeDir, { op: 'status' }, 'status')).rejects.toThrow('the daemon ended the status request without an answer');
    } finally {
      server.close();
    }
  });

  it('gives up on a daemon that does not answer in the time given', async () => {
    const runtimeDir = tempDir();
    const server = await serveControlSocket(runtimeDir, () => new Promise(() => undefined));
    try {
      await expect(askDaemon(runtimeDir, { op: 'status' }, 'status', 200)).rejects.toThrow('the daemon did not answer in time');
    } finally {
      server.close();
    }
  });

  it('tells the CLI no daemon listens when the socket file is stale', async () => {
    const runtimeDir = tempDir();
    const server = await serveControlSocket(runtimeDir, answering());
    await new Promise((resolve) => server.close(resolve));
    writeFileSync(controlSocketPath(runtimeDir), '');
    await expect(askDaemon(runtimeDir, { op: 'status' }, 'status')).rejects.toBeInstanceOf(DaemonAbsentError);
    await expect(askDaemon(runtimeDir, { op: 'status' }, 'status')).rejects.toMatchObject({ message: 'the iot-agent daemon is not running', exitCode: 1 });
  });

  it('takes the first line of a connection as its one request and ignores what follows', async () => {
    const runtimeDir = tempDir();
    const seen: unknown[] = [];
    const server = await serveControlSocket(runtimeDir, handling((request, reply) => { seen.push(request); reply({ event: 'error', message: 'ok' }); }));
    try {
      expect(await exchange(runtimeDir, ['{"op":"tpm"}\n{"op":"status"}\nmore'])).toBe('{"event":"error","message":"ok"}\n');
      expect(seen).toEqual([{ op: 'tpm' }]);
    } finally {
      server.close();
    }
  });

  it('reads nothing after the request line, even when more comes while the request is handled', async () => {
    const runtimeDir = tempDir();
    const seen: unknown[] = [];
    const server = await serveControlSocket(runtimeDir, async (request, reply) => {
      seen.push(request);
      await new Promise((resolve) => setTimeout(resolve, 60));
      reply({ event: 'error', message: 'ok' });
    });
    try {
      expect(await exchange(runtimeDir, ['{"op":"tpm"}\n', '{"op":"status"}\n', 'x'.repeat(5_000)])).toBe('{"event":"error","message":"ok"}\n');
      expect(seen).toEqual([{ op: 'tpm' }]);
    } finally {
      server.close();
    }
  });

  it('outlives a client that hangs up with its answer unread: the connection\'s reset reaches no further', async () => {
    const runtimeDir = tempDir();
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    let hangUp!: () => void;
    const hungUp = new Promise<void>((resolve) => { hangUp = resolve; });
    let finished = false;
    const server = await serveControlSocket(runtimeDir, async (request, reply) => {
      if (request.op !== 'provision') return reply({ event: 'error', message: 'still here' });
      // More than the client reads: closing with data unread resets the connection.
      for (let i = 0; i < 64; i++) reply({ event: 'step', step: 'tpm', message: 'x'.repeat(1_000) });
      await hungUp;
      await new Promise((resolve) => setTimeout(resolve, 50));
      reply({ event: 'step', step: 'challenge', message: 'nobody reads this' });
      finished = true;
    });
    try {
      const socket = net.connect(controlSocketPath(runtimeDir));
      socket.pause();
      socket.on('error', () => undefined);
      socket.write('{"op":"provision"}\n');
      await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
      hangUp();
      await expect.poll(() => finished).toBe(true);
      expect(await lines(runtimeDir, { op: 'status' })).toEqual([{ event: 'error', message: 'still here' }]);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      server.close();
    }
  });

  it('makes its runtime directory, parents too, for its owner only', async () => {
    const runtimeDir = path.join(tempDir(), 'run', 'iot-agent');
    const server = await serveControlSocket(runtimeDir, answering({ event: 'error', message: 'here' }));
    try {
      expect(statSync(runtimeDir).mode & 0o777).toBe(0o700);
      expect(await lines(runtimeDir, { op: 'status' })).toEqual([{ event: 'error', message: 'here' }]);
    } finally {
      server.close();
    }
  });

  it('takes over a socket file a crashed daemon left behind', async () => {
    const runtimeDir = tempDir();
    writeFileSync(controlSocketPath(runtimeDir), 'left by a crash');
    const server = await serveControlSocket(runtimeDir, answering({ event: 'error', message: 'new daemon' }));
    try {
      expect(statSync(controlSocketPath(runtimeDir)).isSocket()).toBe(true);
      expect(await lines(runtimeDir, { op: 'status' })).toEqual([{ event: 'error', message: 'new daemon' }]);
    } finally {
      server.close();
    }
  });

  it('refuses a runtime directory whose socket path a Unix socket cannot hold, leaving no socket cut short beside it', async () => {
    const parent = tempDir();
    const deep = path.join(parent, 'x'.repeat(120));
    const file = path.join(deep, 'control.sock');
    const err = await serveControlSocket(deep, answering()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ message: `the control socket ${file} is longer than the 107 bytes a Unix socket's path can hold`, hint: 'choose a shorter runtimeDir in the config' });
    expect(readdirSync(parent)).toEqual([]);
  });

  it('takes a socket path of exactly 107 bytes', async () => {
    const base = tempDir();
    const runtimeDir = path.join(base, 'x'.repeat(107 - base.length - '/control.sock'.length - 1));
    expect(Buffer.byteLength(controlSocketPath(runtimeDir))).toBe(107);
    const server = await serveControlSocket(runtimeDir, answering({ event: 'error', message: 'here' }));
    try {
      expect(await lines(runtimeDir, { op: 'status' })).toEqual([{ event: 'error', message: 'here' }]);
    } finally {
      server.close();
    }
  });

  it('asks no daemon at a socket path a Unix socket cannot hold', async () => {
    const deep = path.join(tempDir(), 'x'.repeat(120));
    await expect(askDaemon(deep, { op: 'status' }, 'status')).rejects.toThrow(/is longer than the 107 bytes/);
  });

  it('refuses a reply that is not a JSON object', () => {
    expect(parseReply('null')).toBe('reply is not a JSON object');
  });

  it('hands a reply\'s data on without its event tag', () => {
    expect(payloadOf({ event: 'step', step: 'tpm', message: 'm' })).toEqual({ step: 'tpm', message: 'm' });
  });
});

/** What the daemon answers on one connection to the `pieces` written, each 10 ms after the one before; '' when it only closes it. */
function exchange(runtimeDir: string, pieces: string[]): Promise<string> {
  return new Promise<string>((resolve) => {
    const socket = net.connect(controlSocketPath(runtimeDir));
    let text = '';
    socket.on('data', (c: Buffer) => { text += c.toString(); });
    socket.on('close', () => resolve(text));
    socket.on('error', () => undefined);
    socket.on('connect', () => void writeSlowly(socket, pieces));
  });
}

/** Writes each piece 10 ms after the one before, so the server reads a request in pieces. */
async function writeSlowly(socket: net.Socket, pieces: string[]): Promise<void> {
  for (const piece of pieces) {
    socket.write(piece);
    await new Promise((r) => setTimeout(r, 10));
  }
}
