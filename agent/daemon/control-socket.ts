import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { AgentError, ExitCode } from '../errors.js';

/**
 * The daemon's local control socket: newline-delimited JSON, one request per connection.
 * `{"op":"status"}` answers one line; `{"op":"provision","force":true}` answers with one
 * line per step as it happens (`{"event":"step",...}`) and a last line `{"event":"done",...}`
 * or `{"event":"error",...}`. Owner-only permissions: only root and the agent's user reach it.
 */
export const SOCKET_NAME = 'control.sock';
const MAX_REQUEST_BYTES = 4096;

export type ControlRequest = { op: 'status' } | { op: 'provision'; force: boolean };
export type ControlReply = Record<string, unknown>;
export type ControlHandler = (request: ControlRequest, reply: (line: ControlReply) => void) => Promise<void>;

export function controlSocketPath(runtimeDir: string): string {
  return path.join(runtimeDir, SOCKET_NAME);
}

export async function serveControlSocket(runtimeDir: string, handle: ControlHandler): Promise<net.Server> {
  await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
  const file = controlSocketPath(runtimeDir);
  await rm(file, { force: true }); // left behind by a crash
  const server = net.createServer((socket) => serveConnection(socket, handle));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(file, 0o600);
  return server;
}

function serveConnection(socket: net.Socket, handle: ControlHandler): void {
  socket.on('error', () => undefined);
  socket.setTimeout(10_000, () => socket.destroy());
  let buffered = '';
  const onData = (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    if (buffered.length > MAX_REQUEST_BYTES) {
      send({ event: 'error', message: 'request too large' });
      socket.end();
      return;
    }
    const newline = buffered.indexOf('\n');
    if (newline === -1) return;
    socket.off('data', onData);
    socket.setTimeout(0);
    const request = parseRequest(buffered.slice(0, newline));
    if (typeof request === 'string') {
      send({ event: 'error', message: request });
      socket.end();
      return;
    }
    handle(request, send).then(
      () => socket.end(),
      (err: unknown) => {
        send({ event: 'error', message: err instanceof Error ? err.message : String(err) });
        socket.end();
      },
    );
  };
  const send = (line: ControlReply) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(line)}\n`);
  };
  socket.on('data', onData);
}

/** A request, or a message saying what is wrong with it. */
export function parseRequest(line: string): ControlRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'request is not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'request is not a JSON object';
  const { op, force } = value as Record<string, unknown>;
  if (op === 'status') return { op };
  if (op === 'provision') {
    if (force !== undefined && typeof force !== 'boolean') return 'force must be true or false';
    return { op, force: force === true };
  }
  return `unknown op ${JSON.stringify(op)}: expected status or provision`;
}

/**
 * Sends one request to the daemon and yields its reply lines. Rejects with `daemonAbsent`
 * true when no daemon listens, so the CLI can fall back to working on its own.
 */
export async function* requestDaemon(runtimeDir: string, request: ControlRequest, timeoutMs = 120_000): AsyncGenerator<ControlReply> {
  const socket = net.connect(controlSocketPath(runtimeDir));
  const lines: ControlReply[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  let partial = '';
  const notify = () => { wake?.(); wake = undefined; };
  socket.setTimeout(timeoutMs, () => { failure = new AgentError('the daemon did not answer in time'); socket.destroy(); notify(); });
  socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
  socket.on('data', (chunk: Buffer) => {
    partial += chunk.toString('utf8');
    let newline: number;
    while ((newline = partial.indexOf('\n')) !== -1) {
      const text = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      try {
        lines.push(JSON.parse(text) as ControlReply);
      } catch {
        failure = new AgentError('the daemon sent an unreadable reply');
      }
    }
    notify();
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    failure = ['ENOENT', 'ECONNREFUSED'].includes(err.code ?? '') ? new DaemonAbsentError() : err;
    notify();
  });
  socket.on('close', () => { ended = true; notify(); });
  try {
    for (;;) {
      while (lines.length) yield lines.shift()!;
      if (failure) throw failure;
      if (ended) return;
      await new Promise<void>((resolve) => { wake = resolve; });
    }
  } finally {
    socket.destroy();
  }
}

export class DaemonAbsentError extends AgentError {
  constructor() {
    super('the iot-agent daemon is not running', { exitCode: ExitCode.failure });
  }
}
