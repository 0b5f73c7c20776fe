import type { ControlReply, ControlRequest } from '../../agent/control/protocol.js';
import type { ControlHandler } from '../../agent/daemon/control-socket.js';

type Reply = (line: ControlReply) => void;

/** A daemon's control handler that answers every request with these lines. */
export function answering(...lines: ControlReply[]): ControlHandler {
  return handling((_request, reply) => { for (const line of lines) reply(line); });
}

/**
 * A daemon's control handler written without promises. What it throws rejects, as it would from
 * the daemon's own async handler, rather than escaping into the socket's event handler.
 */
export function handling(handle: (request: ControlRequest, reply: Reply) => void): ControlHandler {
  return (request, reply) => new Promise((resolve) => { handle(request, reply); resolve(); });
}
