import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeviceTransport } from '../../agent/tpm/device-transport.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';

/**
 * A named pipe stands in for the character device: opened read-write, it hands back what was
 * written to it, so each "response" is the command itself, read through the very same
 * descriptor, on the thread pool, as from /dev/tpmrm0.
 */
function pipeAt(file: string): string {
  execFileSync('mkfifo', ['-m', '0600', file]);
  return file;
}

function scratch(): string {
  return mkdtempSync(path.join(tmpdir(), 'iot-agent-device-'));
}

/** A TPM header announcing `size` bytes (TPM_ST_NO_SESSIONS, success), padded to `length`. */
function message(size: number, length = size): Buffer {
  const out = Buffer.alloc(length, 0x5a);
  out.writeUInt16BE(0x8001, 0);
  out.writeUInt32BE(size, 2);
  out.writeUInt32BE(0, 6);
  return out;
}

async function failure(promise: Promise<unknown>): Promise<TpmUnavailableError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TpmUnavailableError);
  return err as TpmUnavailableError;
}

describe('the TPM character device transport', () => {
  it('writes a command and reads the answer from the same descriptor, and names the device', async () => {
    const transport = new DeviceTransport(pipeAt(path.join(scratch(), 'tpmrm0')), { commandTimeoutMs: 5_000 });
    expect(transport.name).toMatch(/^TPM device \/.*\/tpmrm0$/);
    const command = message(12);
    expect(await transport.transmit(command)).toEqual(command);
    expect(await transport.transmit(message(14))).toEqual(message(14));
    await transport.close();
  });

  it('reads an answer larger than one 4 KiB read whole', async () => {
    const transport = new DeviceTransport(pipeAt(path.join(scratch(), 'tpmrm0')), { commandTimeoutMs: 5_000 });
    const large = message(9_000);
    expect(await transport.transmit(large)).toEqual(large);
    await transport.close();
  });

  it('does not wait for more when the answer announces less than a header', async () => {
    const transport = new DeviceTransport(pipeAt(path.join(scratch(), 'tpmrm0')), { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(message(4, 10)));
    expect(err.message).toMatch(/malformed response to TPM command 0x0 \(10 bytes\)/);
    await transport.close();
  });

  it('fails at once, with a hint, when the device does not exist', async () => {
    const transport = new DeviceTransport(path.join(scratch(), 'tpmrm0'), { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(message(10)));
    expect(err.message).toMatch(/^TPM device .*tpmrm0: TPM command 0x0 failed$/);
    expect(err.hint).toMatch(/no such device/);
  });

  it('takes a device that answers nothing as a failure, and opens the device afresh for the next command', async () => {
    const file = path.join(scratch(), 'tpmrm0');
    writeFileSync(file, '');
    const transport = new DeviceTransport(file, { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(message(10)));
    expect((err.cause as Error).message).toBe(`${file} returned no data`);
    rmSync(file);
    pipeAt(file);
    expect(await transport.transmit(message(10))).toEqual(message(10));
    await transport.close();
  });

  it('closes the descriptor of a failed command: a device that keeps failing does not use up descriptors', async () => {
    const file = path.join(scratch(), 'tpmrm0');
    writeFileSync(file, '');
    const transport = new DeviceTransport(file, { commandTimeoutMs: 5_000 });
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 40; i++) await failure(transport.transmit(message(10)));
    await new Promise((resolve) => setTimeout(resolve, 50)); // fs.close completes on the thread pool
    expect(readdirSync('/proc/self/fd').length - before).toBeLessThan(10);
  });
});
