import type net from 'node:net';

/**
 * Stops a listener and drops the connections it accepted, as a hub outage does: `close` alone
 * would wait for every device to hang up by itself.
 */
export function closeServer(server: net.Server, sockets: Iterable<net.Socket>): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of sockets) socket.destroy();
  return closed;
}
