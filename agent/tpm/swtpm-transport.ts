import { SocketExchange } from './socket-exchange.js';
import { isWholeResponse, SerialTransport, type TransportOptions } from './transport.js';
import { responseCodeOf, TPM_RC_FAILURE, TPM_RC_INITIALIZE } from './response-code.js';

/** swtpm control channel commands (swtpm's tpm_ioctl.h); values are big-endian u32. */
const CMD_INIT = 2;
/** TPM2_Startup(TPM_SU_CLEAR), made afresh for each use. */
function startupClear(): Buffer {
  return Buffer.from('80010000000c000001440000', 'hex');
}

/** TPM2_ReadClock, made afresh for each use. */
function readClock(): Buffer {
  return Buffer.from('80010000000a00000181', 'hex');
}

/**
 * swtpm's socket mode spoken natively: raw TPM commands on the data port, swtpm's own
 * control protocol on port + 1. swtpm serves one data connection at a time, so the
 * connection is kept open and re-made after swtpm restarts.
 */
export class SwtpmTransport extends SerialTransport {
  private readonly data: SocketExchange;

  constructor(
    private readonly host: string,
    private readonly port: number,
    options: TransportOptions = {},
  ) {
    super(`swtpm ${host}:${port}`, { kind: 'swtpm', host, port }, options);
    this.data = new SocketExchange(host, port, `swtpm ${host}:${port}`);
  }

  protected async exchange(command: Buffer): Promise<Buffer> {
    const response = await this.send(command);
    const rc = responseCodeOf(response);
    // Until CMD_INIT, swtpm answers everything with TPM_RC_FAILURE; after it, TPM_RC_INITIALIZE
    // until TPM2_Startup. Bring it up the way a platform would at power-on, then retry once.
    if (rc === TPM_RC_FAILURE) {
      // libtpms before 0.10 also answers TPM_RC_FAILURE to a failed RSA decryption (an
      // ActivateCredential with a credential made for another EK). Initialising then would
      // reset the TPM and its PCRs: only a TPM that fails a harmless command too is uninitialised.
      if (responseCodeOf(await this.send(readClock())) !== TPM_RC_FAILURE) return response;
      await this.control(CMD_INIT, Buffer.alloc(4));
      await this.send(startupClear());
      return this.send(command);
    }
    if (rc === TPM_RC_INITIALIZE) {
      await this.send(startupClear());
      return this.send(command);
    }
    return response;
  }

  protected reset(): void {
    this.data.reset();
  }

  private send(command: Buffer): Promise<Buffer> {
    return this.data.request(command, isWholeResponse);
  }

  /** One control command on its own connection: u32 code, payload; the answer starts with a u32 result. */
  private async control(code: number, payload: Buffer): Promise<void> {
    const ctrl = new SocketExchange(this.host, this.port + 1, `swtpm control ${this.host}:${this.port + 1}`);
    try {
      const request = Buffer.alloc(4 + payload.length);
      request.writeUInt32BE(code, 0);
      payload.copy(request, 4);
      const answer = await ctrl.request(request, (received) => received.length >= 4);
      const result = answer.readUInt32BE(0);
      if (result !== 0) throw new Error(`swtpm control command ${code} failed with result 0x${result.toString(16)}`);
    } finally {
      ctrl.reset();
    }
  }
}
