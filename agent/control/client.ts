import net from 'node:net';
import { AgentError, ExitCode } from '../lib/errors.js';
import { controlSocketPath, type ControlEvent, type ControlReply, type ControlRequest } from './protocol.js';
import { parseReply } from './wire.js';

/**
 * The CLI's end of the daemon's control socket (agent/control/protocol.ts). Sends one request to the daemon and yields its reply lines. Rejects with `daemonAbsent`
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
  static override readonly errorName: string = 'DaemonAbsentError';

  constructor() {
    super('the iot-agent daemon is not running', { exitCode: ExitCode.failure });
  }
}
