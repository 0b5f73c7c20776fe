import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { controlSocketPath, type ControlReply, type ControlRequest } from '../control/protocol.js';
import { parseRequest } from '../control/wire.js';

/** The daemon's end of the control socket (agent/control/protocol.ts): one request per connection, bounded in size and time. */
const MAX_REQUEST_BYTES = 4096;

export type ControlHandler = (request: ControlRequest, reply: (line: ControlReply) => void) => Promise<void>;

export async function serveControlSocket(runtimeDir: string, handle: ControlHandler): Promise<net.Server> {
  const file = controlSocketPath(runtimeDir);
  await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
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
