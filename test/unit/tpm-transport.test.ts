import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ExitCode } from '../../agent/lib/errors.js';
import { DeviceTransport } from '../../agent/tpm/device-transport.js';
import { MssimTransport } from '../../agent/tpm/mssim-transport.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { SwtpmTransport } from '../../agent/tpm/swtpm-transport.js';
import {
  announcedSize, commandCodeOf, commandName, DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_KEY_GENERATION_TIMEOUT_MS, isWholeResponse,
  SerialTransport, TpmUnavailableError, type TransportOptions,
} from '../../agent/tpm/transport.js';

/** TPM2_GetRandom(8), an ordinary command. */
const GET_RANDOM = Buffer.from('80010000000c0000017b0008', 'hex');
/** The header of TPM2_CreatePrimary, a key-generating command. */
const CREATE_PRIMARY = Buffer.from('80020000000a00000131', 'hex');
/** The header of TPM2_Create and TPM2_CreateLoaded. */
const CREATE = Buffer.from('80020000000a00000153', 'hex');
const CREATE_LOADED = Buffer.from('80020000000a00000191', 'hex');
const SUCCESS = Buffer.from('80010000000a00000000', 'hex');

type Answer = (command: Buffer) => Promise<Buffer>;

/** A transport whose connection answers as the test says; it counts resets and overlapping exchanges. */
class TestTransport extends SerialTransport {
  resets = 0;
  inFlight = 0;
  mostInFlight = 0;

  constructor(private readonly answer: Answer, options: TransportOptions = {}) {
    super('test TPM', { kind: 'swtpm', host: '127.0.0.1', port: 1 }, options);
  }

  protected async exchange(command: Buffer): Promise<Buffer> {
    this.inFlight++;
    this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
    try {
      return await this.answer(command);
    } finally {
      this.inFlight--;
    }
  }

  protected reset(): void {
    this.resets++;
  }
}

function after<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code} from the connection`), { code });
}

async function failure(promise: Promise<unknown>): Promise<TpmUnavailableError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TpmUnavailableError);
  return err as TpmUnavailableError;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('TPM command headers', () => {
  it('name a command by its code, and an unknown one by its number', () => {
    expect(commandCodeOf(GET_RANDOM)).toBe(0x17b);
    expect(commandName(GET_RANDOM)).toBe('TPM2_GetRandom');
    expect(commandName(Buffer.from('80010000000a0000ffff', 'hex'))).toBe('TPM command 0xffff');
  });

  it('take a buffer shorter than a header for command code 0', () => {
    expect(commandCodeOf(Buffer.from('800100000009000001', 'hex'))).toBe(0);
    expect(commandCodeOf(Buffer.from('80010000000a00000181', 'hex'))).toBe(0x181);
  });

  it('read the size a response announces once its ten header bytes have arrived', () => {
    expect(announcedSize(SUCCESS)).toBe(10);
    expect(announcedSize(Buffer.from('8001000000ff', 'hex'))).toBeUndefined();
    expect(announcedSize(Buffer.from('800100000fff000000', 'hex'))).toBeUndefined();
    expect(announcedSize(Buffer.from('800100000fff00000000', 'hex'))).toBe(0xfff);
  });

  it('take a response for whole once it has the bytes its header announces, or announces less than a header', () => {
    expect(isWholeResponse(Buffer.from('8001000000', 'hex'))).toBe(false);
    expect(isWholeResponse(Buffer.from('80010000000c00000000ff', 'hex'))).toBe(false);
    expect(isWholeResponse(Buffer.from('80010000000c00000000ffff', 'hex'))).toBe(true);
    expect(isWholeResponse(SUCCESS)).toBe(true);
    expect(isWholeResponse(Buffer.from('80010000000400000000', 'hex'))).toBe(true);
    expect(isWholeResponse(Buffer.from('80010000000000000000', 'hex'))).toBe(true);
  });
});

describe('a serial TPM transport', () => {
  it('hands back the whole response', async () => {
    const transport = new TestTransport(() => Promise.resolve(SUCCESS));
    expect(await transport.transmit(GET_RANDOM)).toEqual(SUCCESS);
    expect(transport.resets).toBe(0);
  });

  it('sends one command at a time, in order, even when asked for several at once', async () => {
    const order: number[] = [];
    const transport = new TestTransport(async (command) => {
      order.push(command[11]!);
      return after(command[11] === 1 ? 30 : 1, SUCCESS);
    });
    const commands = [1, 2, 3].map((n) => Buffer.concat([GET_RANDOM.subarray(0, 11), Buffer.from([n])]));
    await Promise.all(commands.map((c) => transport.transmit(c)));
    expect(order).toEqual([1, 2, 3]);
    expect(transport.mostInFlight).toBe(1);
  });

  it('goes on with the next command after one failed', async () => {
    let calls = 0;
    const transport = new TestTransport(() => {
      calls++;
      if (calls === 1) return Promise.reject(errnoError('ECONNRESET'));
      return Promise.resolve(SUCCESS);
    });
    const first = transport.transmit(GET_RANDOM);
    const second = transport.transmit(GET_RANDOM);
    await failure(first);
    expect(await second).toEqual(SUCCESS);
  });

  it('gives up on a command at its deadline, names it, and resets the connection so a late answer is never taken for the next', async () => {
    const transport = new TestTransport(() => after(500, SUCCESS), { commandTimeoutMs: 20 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toBe('test TPM: no answer to TPM2_GetRandom within 20 ms');
    expect(err.hint).toMatch(/busy, hung or not there/);
    expect(err.exitCode).toBe(ExitCode.tpmUnavailable);
    expect(transport.resets).toBe(1);
  });

  it('waits the key generation deadline for CreatePrimary, Create and CreateLoaded', async () => {
    const transport = new TestTransport(() => after(60, SUCCESS), { commandTimeoutMs: 20, keyGenerationTimeoutMs: 2_000 });
    for (const command of [CREATE_PRIMARY, CREATE, CREATE_LOADED]) expect(await transport.transmit(command)).toEqual(SUCCESS);
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toContain('within 20 ms');
    const slow = new TestTransport(() => after(500, SUCCESS), { commandTimeoutMs: 2_000, keyGenerationTimeoutMs: 20 });
    expect((await failure(slow.transmit(CREATE_PRIMARY))).message).toBe('test TPM: no answer to TPM2_CreatePrimary within 20 ms');
  });

  it('waits 8 s for an ordinary command and 90 s for key generation unless told otherwise', async () => {
    vi.useFakeTimers();
    const transport = new TestTransport(() => new Promise<Buffer>(() => undefined));
    const ordinary = failure(transport.transmit(GET_RANDOM));
    await vi.advanceTimersByTimeAsync(DEFAULT_COMMAND_TIMEOUT_MS);
    expect((await ordinary).message).toContain(`within ${DEFAULT_COMMAND_TIMEOUT_MS} ms`);
    const keyGeneration = failure(transport.transmit(CREATE_PRIMARY));
    await vi.advanceTimersByTimeAsync(DEFAULT_KEY_GENERATION_TIMEOUT_MS);
    expect((await keyGeneration).message).toContain(`within ${DEFAULT_KEY_GENERATION_TIMEOUT_MS} ms`);
    expect([DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_KEY_GENERATION_TIMEOUT_MS]).toEqual([8_000, 90_000]);
  });

  it('does not keep a timer running after the answer came', async () => {
    vi.useFakeTimers();
    const transport = new TestTransport(() => Promise.resolve(SUCCESS));
    await transport.transmit(GET_RANDOM);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not keep a timer running after a failed exchange or a malformed answer', async () => {
    vi.useFakeTimers();
    const failing = new TestTransport(() => Promise.reject(errnoError('ECONNRESET')));
    await failure(failing.transmit(GET_RANDOM));
    expect(vi.getTimerCount()).toBe(0);
    const malformed = new TestTransport(() => Promise.resolve(Buffer.from('800100000009000000', 'hex')));
    await failure(malformed.transmit(GET_RANDOM));
    expect(vi.getTimerCount()).toBe(0);
  });

  it.each([
    ['shorter than a header', Buffer.from('800100000009000000', 'hex')],
    ['longer than it announces', Buffer.concat([SUCCESS, Buffer.from([0])])],
    ['shorter than it announces', Buffer.from('80010000000c00000000ff', 'hex')],
  ])('refuses a response %s, and resets the connection', async (_what, response) => {
    const transport = new TestTransport(() => Promise.resolve(response));
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toBe(`test TPM: malformed response to TPM2_GetRandom (${response.length} bytes)`);
    expect(transport.resets).toBe(1);
  });

  it.each([
    ['ECONNREFUSED', /start the TPM simulator/],
    ['ENOENT', /is the TPM enabled in firmware/],
    ['EACCES', /member of the tss group/],
    ['EPERM', /member of the tss group/],
    ['EBUSY', /use the resource manager \/dev\/tpmrm0/],
  ])('turns a connection failure (%s) into a TpmUnavailableError with its cause and a hint', async (code, hint) => {
    const cause = errnoError(code);
    const transport = new TestTransport(() => Promise.reject(cause));
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toBe('test TPM: TPM2_GetRandom failed');
    expect(err.cause).toBe(cause);
    expect(err.hint).toMatch(hint);
    expect(transport.resets).toBe(1);
  });

  it('does not reset again when a command given up at its deadline fails late: the next command may be on the connection by then', async () => {
    const transport = new TestTransport(() => after(100, undefined).then(() => Promise.reject(errnoError('ECONNRESET'))), { commandTimeoutMs: 20 });
    expect((await failure(transport.transmit(GET_RANDOM))).message).toBe('test TPM: no answer to TPM2_GetRandom within 20 ms');
    await after(200, undefined);
    expect(transport.resets).toBe(1);
    const malformed = new TestTransport(() => after(100, Buffer.from('80', 'hex')), { commandTimeoutMs: 20 });
    await failure(malformed.transmit(GET_RANDOM));
    await after(200, undefined);
    expect(malformed.resets).toBe(1);
  });

  it('fails a command whose connection fails without a reason', async () => {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a failure with nothing in it is what this test is about
    const transport = new TestTransport(() => Promise.reject(undefined), { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toBe('test TPM: TPM2_GetRandom failed');
    expect(err.hint).toBeUndefined();
  });

  it('has no hint for a failure it does not know', async () => {
    const transport = new TestTransport(() => Promise.reject(new Error('odd')));
    expect((await failure(transport.transmit(GET_RANDOM))).hint).toBeUndefined();
  });

  it('passes a TpmUnavailableError of the connection on as it is', async () => {
    const own = new TpmUnavailableError('test TPM: the simulator closed the connection', { hint: 'restart it' });
    const transport = new TestTransport(() => Promise.reject(own));
    expect(await failure(transport.transmit(GET_RANDOM))).toBe(own);
  });

  it('closes after the command in flight, and refuses commands once closed', async () => {
    const transport = new TestTransport(() => after(20, SUCCESS));
    const inFlight = transport.transmit(GET_RANDOM);
    await after(5, undefined);
    expect(transport.inFlight).toBe(1);
    const closed = transport.close();
    expect(transport.resets).toBe(0);
    expect(await inFlight).toEqual(SUCCESS);
    await closed;
    expect(transport.resets).toBe(1);
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toBe('test TPM: transport is closed');
  });
});

describe('lending a serial TPM transport', () => {
  it('waits for the commands queued before, drops the connection, and holds later commands until the borrower is done', async () => {
    const events: string[] = [];
    const transport = new TestTransport(async (command) => {
      events.push(`command ${command[11]}`);
      return after(20, SUCCESS);
    });
    const first = transport.transmit(GET_RANDOM);
    const lent = transport.lend(async () => {
      events.push(`lent after ${transport.resets} reset`);
      await after(30, undefined);
      events.push('given back');
      return 'borrowed';
    });
    const later = transport.transmit(Buffer.concat([GET_RANDOM.subarray(0, 11), Buffer.from([9])]));
    expect(await Promise.all([first, lent, later])).toEqual([SUCCESS, 'borrowed', SUCCESS]);
    expect(events).toEqual(['command 8', 'lent after 1 reset', 'given back', 'command 9']);
  });

  it('goes on with the next command after a borrower failed, and refuses to lend once closed', async () => {
    const transport = new TestTransport(() => Promise.resolve(SUCCESS));
    await expect(transport.lend(() => Promise.reject(new Error('child crashed')))).rejects.toThrow('child crashed');
    expect(await transport.transmit(GET_RANDOM)).toEqual(SUCCESS);
    await transport.close();
    const err = await failure(transport.lend(() => Promise.resolve('never')));
    expect(err.message).toBe('test TPM: transport is closed');
    expect(transport.resets).toBe(2); // the lend's and the close's: a refused lend does not reset
  });
});

describe('opening a transport from its spec', () => {
  it('makes the transport of each kind, named for where it goes, and knowing it: another process opens the same TPM from it', async () => {
    const device = openTransport({ kind: 'device', path: '/dev/tpmrm0' });
    const swtpm = openTransport({ kind: 'swtpm', host: '127.0.0.1', port: 2321 });
    const mssim = openTransport({ kind: 'mssim', host: 'tpm.local', port: 2400 });
    expect(device).toBeInstanceOf(DeviceTransport);
    expect(swtpm).toBeInstanceOf(SwtpmTransport);
    expect(mssim).toBeInstanceOf(MssimTransport);
    expect([device.name, swtpm.name, mssim.name]).toEqual(['TPM device /dev/tpmrm0', 'swtpm 127.0.0.1:2321', 'mssim tpm.local:2400']);
    expect([device.spec, swtpm.spec, mssim.spec]).toEqual([
      { kind: 'device', path: '/dev/tpmrm0' }, { kind: 'swtpm', host: '127.0.0.1', port: 2321 }, { kind: 'mssim', host: 'tpm.local', port: 2400 },
    ]);
    await Promise.all([device.close(), swtpm.close(), mssim.close()]);
  });

  it('passes the deadlines on', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const transport = openTransport({ kind: 'swtpm', host: '127.0.0.1', port }, { commandTimeoutMs: 30 });
      expect((await failure(transport.transmit(GET_RANDOM))).message).toBe(`swtpm 127.0.0.1:${port}: no answer to TPM2_GetRandom within 30 ms`);
      await transport.close();
    } finally {
      silent.close();
    }
  });
});
