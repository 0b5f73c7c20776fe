import fs from 'node:fs';
import { promisify } from 'node:util';
import { isWholeResponse, SerialTransport, type TransportOptions } from './transport.js';

const open = promisify(fs.open);
const write = promisify(fs.write);
const read = promisify(fs.read);

/** TPM 2.0 responses fit in 4 KiB on every TPM the kernel drivers know (TPM_BUFSIZE). */
const READ_SIZE = 4096;

/**
 * The kernel's TPM character device (/dev/tpmrm0 by default) with asynchronous I/O.
 * Reads block in the kernel until the TPM answers, which can take seconds for key
 * generation; doing them on libuv's thread pool keeps the event loop (and with it the
 * MQTT keep-alives) running meanwhile.
 */
export class DeviceTransport extends SerialTransport {
  private fd: number | undefined;

  constructor(
    private readonly path: string,
    options: TransportOptions = {},
  ) {
    super(`TPM device ${path}`, { kind: 'device', path }, options);
  }

  protected async exchange(command: Buffer): Promise<Buffer> {
    const fd = this.fd ?? (this.fd = await open(this.path, fs.constants.O_RDWR));
    await write(fd, command, 0, command.length);
    const chunks: Buffer[] = [];
    for (;;) {
      const buffer = Buffer.alloc(READ_SIZE);
      const { bytesRead } = await read(fd, buffer, 0, buffer.length, null);
      if (bytesRead === 0) throw new Error(`${this.path} returned no data`);
      chunks.push(buffer.subarray(0, bytesRead));
      const response = Buffer.concat(chunks);
      if (isWholeResponse(response)) return response;
    }
  }

  protected reset(): void {
    // A read still blocked on the old descriptor keeps its pool thread until the TPM
    // answers; the next command opens a fresh descriptor and never sees that answer.
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) fs.close(fd, () => undefined);
  }
}
