import net from 'node:net';

/**
 * A TCP relay in front of a server that can make its open connections go silent — no data,
 * no FIN, no RST — as a link does when a NAT or mobile network drops its state. New
 * connections still go through. Loopback only.
 */
export class FreezableProxy {
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private readonly frozen: [net.Socket, net.Socket][] = [];

  private constructor(private readonly server: net.Server) {}

  static async start(listen: { host: string; port: number }, target: { host: string; port: number }): Promise<FreezableProxy> {
    const server = net.createServer();
    const proxy = new FreezableProxy(server);
    server.on('connection', (client) => {
      const upstream = net.connect(target);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      proxy.pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => {
        proxy.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => resolve());
    });
    return proxy;
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  /** Every open connection stops carrying bytes, in both directions, and stays open. */
  freezeOpenConnections(): void {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
      this.frozen.push([client, upstream]);
    }
    this.pairs.clear(); // no longer relayed, not closed: the peers must find out by themselves
  }

  async stop(): Promise<void> {
    for (const [client, upstream] of [...this.pairs, ...this.frozen]) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
