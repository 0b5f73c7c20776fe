import type net from 'node:net';
import { TpmTcpDevice } from 'tss.js';
import { SerialTransport, type TransportOptions } from './transport.js';

type Callback<T> = (err: Error | null, result?: T) => void;

/** The parts of tss.js's TpmTcpDevice this transport relies on, its private sockets included. */
interface TcpDevice {
  connect(done: Callback<void>): void;
  dispatchCommand(command: Buffer, done: Callback<Buffer>): void;
  close(): void;
  tpmSocket?: net.Socket | null;
  tpmPlatSocket?: net.Socket | null;
  connectCont: Callback<void> | null;
  dispatchCont: Callback<Buffer> | null;
  onHandShake(fragment: Buffer): void;
}

/**
 * The Microsoft/IBM TPM simulator protocol through tss.js's TpmTcpDevice. That class
 * attaches no 'error' handler to its sockets, so an unreachable simulator would crash
 * the process; here every socket gets one and the failure reaches the caller instead.
 */
export class MssimTransport extends SerialTransport {
  private device: TcpDevice | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    options: TransportOptions = {},
  ) {
    super(`mssim ${host}:${port}`, options);
  }

  protected async exchange(command: Buffer): Promise<Buffer> {
    const device = this.device ?? (await this.connect());
    return new Promise<Buffer>((resolve, reject) => {
      device.dispatchCommand(command, (err, response) => {
        if (err || !response) reject(err ?? new Error('empty response'));
        else resolve(response);
      });
    });
  }

  protected reset(): void {
    const device = this.device;
    this.device = undefined;
    if (device) {
      device.tpmSocket?.destroy();
      device.tpmPlatSocket?.destroy();
      device.close();
    }
  }

  private connect(): Promise<TcpDevice> {
    const device = new TpmTcpDevice(this.host, this.port) as unknown as TcpDevice;
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        if (this.device === device) this.device = undefined;
        const connecting = device.connectCont;
        const dispatching = device.dispatchCont;
        device.connectCont = null;
        device.dispatchCont = null;
        device.tpmSocket?.destroy();
        device.tpmPlatSocket?.destroy();
        connecting?.(err);
        dispatching?.(err);
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
      device.connect((err) => {
        if (err) {
          reject(err);
        } else {
          this.device = device;
          resolve(device);
        }
      });
      guard(device.tpmSocket, 'command');
    });
  }
}
