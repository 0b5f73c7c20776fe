import net from 'node:net';

/**
 * A TCP connection that carries one request at a time and hands back bytes until
 * the caller says the reply is whole. The TPM TCP protocols differ only in framing.
 */
export class SocketExchange {
  private socket: net.Socket | undefined;
  private pending: { accept: (chunk: Buffer) => boolean; resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly peer: string,
  ) {}

  get connected(): boolean {
    return this.socket !== undefined;
  }

  /**
   * Writes `request` and resolves with everything received until `isComplete` says the
   * reply is whole. Connects first when there is no live connection.
   */
  async request(request: Buffer, isComplete: (received: Buffer) => boolean): Promise<Buffer> {
    const socket = this.socket ?? (await this.connect());
    let whole = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      this.pending = {
        accept: (chunk) => {
          whole = Buffer.concat([whole, chunk]);
          return isComplete(whole);
        },
        resolve,
        reject,
      };
      socket.write(request);
    });
    return whole;
  }

  reset(): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.failPending(new Error(`connection to ${this.peer} was reset`));
  }

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
      // A failure before 'connect' fails the connect; after it, rejecting changes nothing.
      socket.once('error', reject);
      socket.once('connect', () => {
        this.socket = socket;
        socket.on('data', (chunk: Buffer) => this.onData(chunk));
        // Every failure lands here and in 'close', never as an unhandled 'error' event.
        socket.on('error', (err) => this.drop(socket, err));
        socket.on('close', () => this.drop(socket, new Error(`${this.peer} closed the connection`)));
        resolve(socket);
      });
    });
  }

  private onData(chunk: Buffer): void {
    const pending = this.pending;
    if (!pending) return; // bytes nobody asked for; the next request starts clean
    if (pending.accept(chunk)) {
      this.pending = undefined;
      pending.resolve();
    }
  }

  private drop(socket: net.Socket, err: Error): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    socket.destroy();
    this.failPending(err);
  }

  private failPending(err: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }
}
