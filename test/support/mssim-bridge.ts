import net from 'node:net';
import { freePortPair } from './ports.js';

/**
 * A stand-in for the Microsoft/IBM TPM 2.0 simulator (ms-tpm-20-ref's TcpServer), whose
 * TPM is a real swtpm: TPM commands arriving on the simulator protocol are forwarded
 * unchanged to swtpm's raw data port. Debian packages no Microsoft simulator; this lets
 * the agent's mssim transport be proved against a real TPM.
 *
 * Protocol (TpmTcpProtocol.h; every number a big-endian u32 unless said otherwise):
 * - command channel, port P:
 *   REMOTE_HANDSHAKE 15, client version (non-zero) -> server version 1, endpoint flags, 0
 *   SEND_COMMAND 8, u8 locality, size, command     -> size, response, 0
 *   SESSION_END 20 -> the server closes the connection, no answer; STOP 21 -> the server exits
 *   anything else  -> the server closes the connection
 * - platform channel, port P + 1: one u32 signal (SIGNAL_POWER_ON 1, SIGNAL_NV_ON 11, ...)
 *   -> 0; SESSION_END and STOP as above; an unknown signal -> 1, then the connection closes.
 *
 * swtpm runs powered on and started (not-need-init, startup-clear), as the simulator is
 * after its first power-on, when a further SIGNAL_POWER_ON changes nothing. So platform
 * signals are acknowledged and not forwarded, and a client's TPM2_Startup gets
 * TPM_RC_INITIALIZE, which clients (tss.js included) take as "already started".
 */

const HANDSHAKE = 15;
const SEND_COMMAND = 8;
const SESSION_END = 20;
const STOP = 21;
const SERVER_VERSION = 1;
/** tpmPlatformAvailable | tpmInRawMode | tpmSupportsPP, what the reference simulator announces. */
const ENDPOINT_FLAGS = 0x01 | 0x04 | 0x08;
/** Platform signals the reference simulator acknowledges: power, physical presence, cancel, NV, key cache, reset. */
const PLATFORM_SIGNALS = new Set([1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 17, 18]);
/** The reference simulator's MAX_BUFFER: a larger size announces a broken client. */
const MAX_COMMAND_SIZE = 4096;

export interface MssimBridgeOptions {
  /** swtpm's data port, where TPM commands go. */
  tpm: { host: string; port: number };
  /** Listen on the platform channel (port + 1); false leaves that port closed. Default true. */
  platform?: boolean;
  /** Accept connections and read requests but never answer: a hung simulator. */
  silent?: boolean;
  /** Send each TPM answer in two writes, split after this many bytes: TCP may deliver it so. */
  splitAnswersAt?: number;
}

export class MssimBridge {
  readonly host = '127.0.0.1';
  /** TPM commands forwarded to swtpm so far. */
  commandsForwarded = 0;
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private vanishAfterBytes = 0;
  private vanishOnCommand: 'before' | 'midResponse' | undefined;
  private nextAck = 0;

  private constructor(
    readonly port: number,
    private readonly options: MssimBridgeOptions,
  ) {}

  static async start(options: MssimBridgeOptions): Promise<MssimBridge> {
    const bridge = new MssimBridge(await freePortPair(), options);
    await bridge.listen(bridge.port, (socket) => void bridge.serveCommands(socket));
    if (options.platform !== false) await bridge.listen(bridge.port + 1, (socket) => void bridge.servePlatform(socket));
    return bridge;
  }

  get transport(): string {
    return `mssim:host=${this.host},port=${this.port}`;
  }

  /** Connections open right now, on both channels and to swtpm. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Cuts every connection open now and keeps listening, as a simulator that ended its sessions. */
  hangUp(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** The simulator goes away as a killed process would: listeners closed, connections cut. */
  async vanish(): Promise<void> {
    this.hangUp();
    await Promise.all(this.servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  /**
   * Vanish on the next TPM command: before it reaches swtpm (a crash mid-command), or after
   * `bytes` bytes of the framed answer have gone out (a crash mid-response).
   */
  vanishOnNextCommand(when: 'before' | 'midResponse' = 'before', bytes = 2): void {
    this.vanishOnCommand = when;
    this.vanishAfterBytes = bytes;
  }

  /** Acknowledge the next TPM answer with `ack` instead of 0, as a simulator whose TPM failed. */
  ackNextAnswerWith(ack: number): void {
    this.nextAck = ack;
  }

  stop(): Promise<void> {
    return this.vanish();
  }

  private listen(port: number, serve: (socket: net.Socket) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((socket) => {
        this.track(socket);
        serve(socket);
      });
      server.once('error', reject);
      server.listen(port, this.host, () => {
        server.off('error', reject);
        this.servers.push(server);
        resolve();
      });
    });
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy()); // a client that resets is not the bridge's failure
  }

  private async serveCommands(client: net.Socket): Promise<void> {
    const input = new ByteReader(client);
    const tpm = new TpmConnection(this.options.tpm, (socket) => this.track(socket));
    try {
      for (;;) {
        const code = (await input.read(4)).readUInt32BE(0);
        if (code === HANDSHAKE) {
          const clientVersion = (await input.read(4)).readUInt32BE(0);
          if (clientVersion === 0) return;
          if (!this.options.silent) client.write(u32s(SERVER_VERSION, ENDPOINT_FLAGS, 0));
        } else if (code === SEND_COMMAND) {
          await input.read(1); // locality: swtpm's data port takes commands at locality 0
          const size = (await input.read(4)).readUInt32BE(0);
          if (size > MAX_COMMAND_SIZE) return;
          const command = await input.read(size);
          if (this.vanishOnCommand === 'before') {
            await this.vanish();
            return;
          }
          if (this.options.silent) continue;
          const response = await tpm.transmit(command);
          this.commandsForwarded++;
          const framed = Buffer.concat([u32s(response.length), response, u32s(this.nextAck)]);
          this.nextAck = 0;
          if (this.vanishOnCommand === 'midResponse') {
            await new Promise<void>((resolve) => client.write(framed.subarray(0, this.vanishAfterBytes), () => resolve()));
            await this.vanish();
            return;
          }
          await this.send(client, framed);
        } else {
          if (code === STOP) await this.vanish();
          return; // SESSION_END, STOP and unknown commands end the session without an answer
        }
      }
    } catch {
      // The client left or swtpm failed: the session ends either way.
    } finally {
      client.destroy();
      tpm.close();
    }
  }

  private async send(client: net.Socket, framed: Buffer): Promise<void> {
    const split = this.options.splitAnswersAt;
    if (split === undefined) {
      client.write(framed);
      return;
    }
    client.setNoDelay(true);
    client.write(framed.subarray(0, split));
    await new Promise((resolve) => setTimeout(resolve, 5)); // long enough to arrive as its own read
    client.write(framed.subarray(split));
  }

  private async servePlatform(client: net.Socket): Promise<void> {
    const input = new ByteReader(client);
    try {
      for (;;) {
        const signal = (await input.read(4)).readUInt32BE(0);
        if (signal === SESSION_END || signal === STOP) {
          if (signal === STOP) await this.vanish();
          return;
        }
        if (this.options.silent) continue;
        const known = PLATFORM_SIGNALS.has(signal);
        client.write(u32s(known ? 0 : 1));
        if (!known) return;
      }
    } catch {
      // The client left.
    } finally {
      client.end();
    }
  }
}

function u32s(...values: number[]): Buffer {
  const buffer = Buffer.alloc(4 * values.length);
  values.forEach((value, i) => buffer.writeUInt32BE(value >>> 0, 4 * i));
  return buffer;
}

/** Reads exact byte counts from a socket, whatever the TCP segmentation. */
class ByteReader {
  private buffered: Buffer = Buffer.alloc(0);
  private wanted: { size: number; resolve: (bytes: Buffer) => void; reject: (err: Error) => void } | undefined;
  private ended = false;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.deliver();
    });
    socket.on('close', () => {
      this.ended = true;
      this.deliver();
    });
  }

  read(size: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.wanted = { size, resolve, reject };
      this.deliver();
    });
  }

  private deliver(): void {
    const wanted = this.wanted;
    if (!wanted) return;
    if (this.buffered.length >= wanted.size) {
      this.wanted = undefined;
      const bytes = this.buffered.subarray(0, wanted.size);
      this.buffered = this.buffered.subarray(wanted.size);
      wanted.resolve(bytes);
    } else if (this.ended) {
      this.wanted = undefined;
      wanted.reject(new Error('connection closed'));
    }
  }
}

/** The bridge's own connection to swtpm's data port, for one simulator session. */
class TpmConnection {
  private socket: net.Socket | undefined;
  private reader: ByteReader | undefined;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly onOpen: (socket: net.Socket) => void,
  ) {}

  async transmit(command: Buffer): Promise<Buffer> {
    const reader = this.reader ?? (await this.open());
    this.socket!.write(command);
    const header = await reader.read(10);
    const size = header.readUInt32BE(2);
    return size > 10 ? Buffer.concat([header, await reader.read(size - 10)]) : header;
  }

  close(): void {
    this.socket?.destroy();
  }

  private open(): Promise<ByteReader> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        this.onOpen(socket);
        this.socket = socket;
        this.reader = new ByteReader(socket);
        resolve(this.reader);
      });
    });
  }
}
