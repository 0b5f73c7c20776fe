import net from 'node:net';
import { closeServer } from './close-server.js';

/**
 * 8883 as many corporate and school networks leave it (IoT Hub MQTT guide: the port "is
 * blocked in many corporate and educational networking environments"): `closed` refuses
 * the connection; `silent` takes it and never answers, as a firewall that drops packets
 * looks to a client that waits for its TLS handshake. `open` is the hub's own listener.
 */
export type Port8883 = 'open' | 'closed' | 'silent';

export class SilentListener {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  accepted = 0;

  async listen(host: string, port: number): Promise<void> {
    if (this.server) return;
    const server = net.createServer((socket) => {
      this.accepted++;
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => this.sockets.delete(socket));
      socket.resume(); // read and drop whatever the client sends
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeServer(server, this.sockets);
  }
}
