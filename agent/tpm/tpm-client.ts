import { ReadPublicResponse, TPM_CC, TPM2_ReadPublic_REQUEST, Tpm, type ReqStructure, type RespStructure, type TpmError, type TPM_HANDLE } from './tss-lib.js';
import { AgentError } from '../lib/errors.js';
import { frameCommand, parseResponse } from './command-frame.js';
import { describeResponseCode, responseCodeOf } from './response-code.js';
import { TpmUnavailableError, type TpmTransport } from './transport.js';

/** A TPM command that reached the TPM and was refused by it. */
export class TpmCommandError extends AgentError {
  static override readonly errorName: string = 'TpmCommandError';

  constructor(
    readonly command: string,
    readonly responseCode: number,
    transportName: string,
  ) {
    super(`TPM2_${command} failed on ${transportName}: ${describeResponseCode(responseCode)}`);
  }
}

type Continuation<T> = (err: TpmError | null, result?: T) => void;

/** tss.js's device interface (connect, dispatchCommand, close) over one of the agent's transports. */
class TransportDevice {
  /** The untrimmed code of the last response: tss.js keeps only a masked copy. */
  lastResponseCode = 0;
  lastTransportError: unknown;

  constructor(private readonly transport: TpmTransport) {}

  connect(done: (err: Error | null) => void): null {
    setImmediate(done, null); // the transport connects on first use
    return null;
  }

  dispatchCommand(command: Buffer, done: (err: Error | null, response?: Buffer) => void): void {
    this.lastTransportError = undefined;
    this.transport.transmit(command).then(
      (response) => {
        this.lastResponseCode = responseCodeOf(response);
        done(null, response);
      },
      (err: unknown) => {
        this.lastTransportError = err;
        done(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  close(): void {
    void this.transport.close();
  }
}

/**
 * tss.js's Tpm over one of the agent's transports, with a promise API whose errors name
 * the command, the transport and the response code in words.
 *
 * sdkTpm() gives the Azure SDK's TpmSecurityClients tss.js objects of their own on the same
 * transport. A tss.js Tpm keeps per-command state (the pending response handler), so two
 * users must never share one: a stopped hub session's last command may still be on its way
 * when the next session starts. The transport below serialises their commands.
 */
export class TpmClient {
  private readonly own: Tpm;
  private readonly device: TransportDevice;
  private queue: Promise<unknown> = Promise.resolve();
  private lease: AbortController | undefined;

  constructor(readonly transport: TpmTransport) {
    this.device = new TransportDevice(transport);
    this.own = tssTpmOn(this.device);
  }

  /** A tss.js Tpm for one SDK user (a hub session, a registration), on this client's transport. */
  sdkTpm(): Tpm {
    return tssTpmOn(new TransportDevice(this.transport));
  }

  /**
   * One command in the agent's own framing (command-frame.ts): the request's parameters
   * marshalled by tss.js, straight onto the transport, which orders it among the others.
   * Authorized handles get an empty-password session. The way for anything frequent.
   */
  async execute<R extends RespStructure>(commandCode: TPM_CC, request: ReqStructure, responseType: new () => R): Promise<R>;
  async execute(commandCode: TPM_CC, request: ReqStructure): Promise<void>;
  async execute<R extends RespStructure>(commandCode: TPM_CC, request: ReqStructure, responseType?: new () => R): Promise<R | void> {
    const response = await this.transport.transmit(frameCommand(commandCode, request));
    const { responseCode, result } = parseResponse(response, responseType);
    if (responseCode !== 0) throw new TpmCommandError(TPM_CC[commandCode] ?? `0x${commandCode.toString(16)}`, responseCode, this.transport.name);
    return result;
  }

  /** Runs one tss.js command, after any command already running from this client. */
  run<T>(command: string, invoke: (tpm: Tpm, done: Continuation<T>) => void): Promise<T> {
    const result = this.queue.then(() => this.runNow(command, invoke));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Lets another process use the TPM while `use` runs (see TpmTransport.lend); commands
   * meanwhile wait for it. Closing this client aborts `signal`: the borrower must give the
   * TPM back at once.
   */
  async lend<T>(use: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const lease = new AbortController();
    this.lease = lease;
    try {
      return await this.transport.lend(() => use(lease.signal));
    } finally {
      if (this.lease === lease) this.lease = undefined;
    }
  }

  async close(): Promise<void> {
    this.lease?.abort();
    await this.queue;
    await this.transport.close();
  }

  readPublic(handle: TPM_HANDLE): Promise<ReadPublicResponse> {
    return this.execute(TPM_CC.ReadPublic, new TPM2_ReadPublic_REQUEST(handle), ReadPublicResponse);
  }

  private runNow<T>(command: string, invoke: (tpm: Tpm, done: Continuation<T>) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      invoke(this.own, (err, result) => {
        if (!err) {
          resolve(result as T);
        } else if (this.device.lastTransportError !== undefined) {
          const cause = this.device.lastTransportError;
          reject(cause instanceof AgentError ? cause : new TpmUnavailableError(`${this.transport.name}: TPM2_${command} failed`, { cause }));
        } else {
          const rc = this.device.lastResponseCode || err.responseCode;
          reject(new TpmCommandError(command, rc, this.transport.name));
        }
      });
    });
  }
}

/** tss.js accepts any object with connect/dispatchCommand/close as its device. */
function tssTpmOn(device: TransportDevice): Tpm {
  const tpm = new Tpm(false);
  (tpm as unknown as { device: TransportDevice }).device = device;
  return tpm;
}
