import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { AgentError, ExitCode } from '../errors.js';
import type { TpmReport } from '../tpm/tpm-report.js';
import type { DaemonSnapshot, DaemonStatus } from './daemon.js';

/**
 * The daemon's local control socket: newline-delimited JSON, one request per connection.
 * `{"op":"status"}` answers one line; `{"op":"provision","force":true}` answers with one
 * line per step as it happens (`{"event":"step",...}`) and a last line `{"event":"done",...}`
 * or `{"event":"error",...}`; `{"op":"tpm"}` answers what the daemon's TPM holds (for
 * `check` and `tpm info`, which must not open a second connection to a TPM that serves
 * one), `{"op":"support"}` the daemon's live state for a support bundle. Owner-only
 * permissions: only root and the agent's user reach it.
 */
export const SOCKET_NAME = 'control.sock';
const MAX_REQUEST_BYTES = 4096;

export type ControlRequest =
  | { op: 'status' }
  | { op: 'provision'; force: boolean }
  | { op: 'tpm' }
  | { op: 'support' };
export type ControlOp = ControlRequest['op'];
const OPS: readonly ControlOp[] = ['status', 'provision', 'tpm', 'support'];

export type ControlReply =
  | ({ event: 'status' } & DaemonStatus)
  | { event: 'step'; step: string; message: string }
  | ({ event: 'done' } & DaemonStatus)
  | ({ event: 'tpm'; pid: number } & TpmReport)
  | ({ event: 'support' } & DaemonSnapshot)
  | { event: 'error'; message: string; step?: string };
export type ControlEvent = ControlReply['event'];
const EVENTS: readonly ControlEvent[] = ['status', 'step', 'done', 'tpm', 'support', 'error'];

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
  switch (op) {
    case 'status':
    case 'tpm':
    case 'support':
      return { op };
    case 'provision':
      if (force !== undefined && typeof force !== 'boolean') return 'force must be true or false';
      return { op, force: force === true };
    default:
      return `unknown op ${JSON.stringify(op)}: expected one of ${OPS.join(', ')}`;
  }
}

/**
 * A reply line from the daemon, or a message saying what is wrong with it. Only the shape
 * that tells replies apart is checked: the daemon on the other end is the same program.
 */
export function parseReply(line: string): ControlReply | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'reply is not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'reply is not a JSON object';
  const { event } = value as Record<string, unknown>;
  if (!EVENTS.includes(event as ControlEvent)) return `unknown event ${JSON.stringify(event)}`;
  return value as ControlReply;
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
      const reply = parseReply(text);
      if (typeof reply === 'string') failure = new AgentError(`the daemon sent an unreadable reply: ${reply}`);
      else lines.push(reply);
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

/**
 * The one reply of a single-answer request (status, tpm, support): the daemon's error
 * becomes an AgentError, any other event a protocol error.
 */
export async function askDaemon<E extends ControlEvent>(runtimeDir: string, request: ControlRequest, event: E,
  timeoutMs = 10_000): Promise<Extract<ControlReply, { event: E }>> {
  for await (const reply of requestDaemon(runtimeDir, request, timeoutMs)) {
    if (reply.event === event) return reply as Extract<ControlReply, { event: E }>;
    if (reply.event === 'error') throw new AgentError(`the daemon refused ${request.op}: ${reply.message}`);
    throw new AgentError(`the daemon answered ${request.op} with ${reply.event}, not ${event}`);
  }
  throw new AgentError(`the daemon ended the ${request.op} request without an answer`);
}

/** A reply's data without its event tag. */
export function payloadOf<R extends ControlReply>(reply: R): Omit<R, 'event'> {
  const copy: Partial<R> = { ...reply };
  delete copy.event;
  return copy as Omit<R, 'event'>;
}

export class DaemonAbsentError extends AgentError {
  constructor() {
    super('the iot-agent daemon is not running', { exitCode: ExitCode.failure });
  }
}
