import type net from 'node:net';
import { TpmTcpDevice } from './tss-lib.js';
import { SerialTransport, type TransportOptions } from './transport.js';

type Callback<T> = (err: Error | null, result?: T) => void;

/** The parts of tss.js's TpmTcpDevice this transport relies on, its private sockets included. */
interface TcpDevice {
  connect(done: Callback<void>): void;
  dispatchCommand(command: Buffer, done: Callback<Buffer>): void;
  /** Made by connect(), which runs right after the device is. */
  tpmSocket: net.Socket;
  tpmPlatSocket?: net.Socket | null;
  readonly connectCont: Callback<void> | null;
  readonly dispatchCont: Callback<Buffer> | null;
  onHandShake(fragment: Buffer): void;
  onDispatch(fragment: Buffer): void;
  /** The response bytes received so far for the command in flight. */
  tcpResp: Buffer;
}

/**
 * The Microsoft/IBM TPM simulator protocol through tss.js's TpmTcpDevice. That class
 * attaches no 'error' handler to its sockets, so an unreachable simulator would crash
 * the process; here every socket gets one and the failure reaches the caller instead.
 */
export class MssimTransport extends SerialTransport {
  private device: TcpDevice | undefined;
  /** The device connected last: a deadline can expire in its handshake too, and reset() must reach it there. */
  private connecting: TcpDevice | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    options: TransportOptions = {},
  ) {
    super(`mssim ${host}:${port}`, { kind: 'mssim', host, port }, options);
  }

  protected async exchange(command: Buffer): Promise<Buffer> {
    const device = this.device ?? (await this.connect());
    return new Promise<Buffer>((resolve, reject) => {
      // tss.js hands over a response buffer whenever it reports no error.
      device.dispatchCommand(command, (err, response) => (err ? reject(err) : resolve(response as Buffer)));
    });
  }

  protected reset(): void {
    hangUp(this.device);
    hangUp(this.connecting);
    this.device = this.connecting = undefined;
  }

  private connect(): Promise<TcpDevice> {
    const device = new TpmTcpDevice(this.host, this.port) as unknown as TcpDevice;
    this.connecting = device;
    let connected = false;
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        if (this.device === device) this.device = undefined;
        hangUp(device);
        // Until connected, the command in flight is tss.js's own TPM2_Startup: the connect
        // fails, and the startup's continuation, which would hand on to it, is left out.
        // Once settled, a promise ignores being settled again by a second event. Both
        // continuations are set by then: connect() sets the one, its TPM2_Startup the other.
        (connected ? device.dispatchCont : device.connectCont)!(err);
      };
      const guard = (socket: net.Socket | null | undefined, what: string) => {
        socket?.on('error', fail);
        socket?.on('close', () => fail(new Error(`simulator closed the ${what} connection`)));
      };
      // The platform socket is made inside the handshake handler; guard it right after.
      const handShake = device.onHandShake.bind(device);
      device.onHandShake = (fragment: Buffer) => {
        handShake(fragment);
        guard(device.tpmPlatSocket, 'platform');
      };
      // tss.js reads a response's u32 size before checking that four bytes have arrived, so a
      // shorter first fragment (a simulator dying mid-answer) threw out of the socket's 'data'
      // event and ended the process. Keep such a fragment until the size is whole.
      const dispatch = device.onDispatch.bind(device);
      device.onDispatch = (fragment: Buffer) => {
        if (device.tcpResp.length + fragment.length < 4) device.tcpResp = Buffer.concat([device.tcpResp, fragment]);
        else dispatch(fragment);
      };
      device.connect((err) => {
        if (err) {
          reject(err);
        } else {
          connected = true;
          this.device = device;
          resolve(device);
        }
      });
      guard(device.tpmSocket, 'command');
    });
  }
}

/** Destroys both sockets: tss.js's own close() only ends them, which a hung simulator never answers. */
function hangUp(device: TcpDevice | undefined): void {
  device?.tpmSocket.destroy();
  device?.tpmPlatSocket?.destroy();
}
