import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readPersistent } from '../../agent/tpm/identity.js';
import { SwtpmTransport } from '../../agent/tpm/swtpm-transport.js';
import { TpmClient, TpmCommandError } from '../../agent/tpm/tpm-client.js';
import { readTpmFacts } from '../../agent/tpm/tpm-facts.js';
import { readTpmReport } from '../../agent/tpm/tpm-report.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';
import { freePortPair } from '../support/ports.js';

/**
 * The TPM layer against answers no healthy swtpm gives: a TPM on loopback sockets whose every
 * answer the test writes (refusals, odd vendors, answers in pieces, a libtpms quirk), and a
 * swtpm control channel on port + 1.
 */

const GET_RANDOM_8 = Buffer.from('80010000000c0000017b0008', 'hex');
const READ_CLOCK = 0x181;
const GET_CAPABILITY = 0x17a;

/** A response: tag NO_SESSIONS, its size, `rc`, then `body`. */
function response(rc: number, body = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(10);
  header.writeUInt16BE(0x8001, 0);
  header.writeUInt32BE(10 + body.length, 2);
  header.writeUInt32BE(rc, 6);
  return Buffer.concat([header, body]);
}

/**
 * A successful answer to `command`, TPM2_GetCapability(TPM_PROPERTIES, property, propertyCount):
 * those of `values` in the range asked for, as a TPM answers.
 */
function properties(values: Record<number, number>, command: Buffer): Buffer {
  const first = command.readUInt32BE(14);
  const count = command.readUInt32BE(18);
  const entries = Object.entries(values).filter(([property]) => Number(property) >= first && Number(property) < first + count);
  const body = Buffer.alloc(1 + 4 + 4 + 8 * entries.length);
  body.writeUInt32BE(6, 1); // TPM_CAP_TPM_PROPERTIES, after moreData
  body.writeUInt32BE(entries.length, 5);
  entries.forEach(([property, value], i) => {
    body.writeUInt32BE(Number(property), 9 + 8 * i);
    body.writeUInt32BE(value >>> 0, 13 + 8 * i);
  });
  return response(0, body);
}

/** Four characters as a TPM property holds them. */
function chars(text: string): number {
  return Buffer.from(text.padEnd(4, '\0'), 'latin1').readUInt32BE(0);
}

interface ScriptedTpm {
  port: number;
  transport: string;
  /** The command codes received, in order. */
  commands: number[];
  /** The swtpm control requests received on port + 1, as hex. */
  controls: string[];
  /** Control connections not closed yet. */
  openControls: number;
}

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) server.close();
});

async function listen(port: number, onConnection: (socket: net.Socket) => void): Promise<void> {
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
}

/**
 * A TPM speaking swtpm's socket protocol: `answer` gives the bytes to send back for each command
 * (several buffers: sent as pieces, a few milliseconds apart). The control channel answers each
 * request with `controlResult` (in two pieces when `controlInPieces`), or closes the connection without one.
 */
async function scriptedTpm(
  answer: (command: Buffer) => Buffer | Buffer[], controlResult: number | 'hang up' = 0, controlInPieces = false,
): Promise<ScriptedTpm> {
  const port = await freePortPair();
  const tpm: ScriptedTpm = { port, transport: `swtpm 127.0.0.1:${port}`, commands: [], controls: [], openControls: 0 };
  await listen(port, (socket) => {
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 10 && buffered.length >= buffered.readUInt32BE(2)) {
        const command = buffered.subarray(0, buffered.readUInt32BE(2));
        buffered = buffered.subarray(command.length);
        tpm.commands.push(command.readUInt32BE(6));
        void sendPieces(socket, [answer(command)].flat());
      }
    });
  });
  await listen(port + 1, (socket) => socket.on('data', (chunk: Buffer) => {
    tpm.openControls++;
    socket.once('close', () => tpm.openControls--);
    tpm.controls.push(chunk.toString('hex'));
    if (controlResult === 'hang up') {
      socket.end();
      return;
    }
    const result = Buffer.alloc(4);
    result.writeUInt32BE(controlResult);
    void sendPieces(socket, controlInPieces ? [result.subarray(0, 2), result.subarray(2)] : [result]);
  }));
  return tpm;
}

async function sendPieces(socket: net.Socket, pieces: Buffer[]): Promise<void> {
  for (const [i, piece] of pieces.entries()) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 15));
    socket.write(piece);
  }
}

function clientOf(tpm: ScriptedTpm): TpmClient {
  return new TpmClient(new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 }));
}

describe('TPM facts', () => {
  it('are read from the fixed properties, in words', async () => {
    const tpm = await scriptedTpm((command) => properties({
      0x100: chars('2.0'), 0x101: 0, 0x102: 138, 0x103: 250, 0x104: 2019, 0x105: chars('IFX'),
      0x106: chars('SLB9'), 0x107: chars('670 '), 0x108: chars('TPM '), 0x109: chars('2.0'),
      0x10b: 0x0007003d, 0x10c: 0x000a1234,
    }, command));
    const client = clientOf(tpm);
    expect(await readTpmFacts(client)).toEqual({
      manufacturer: 'IFX', manufacturerName: 'Infineon', vendorString: 'SLB9670 TPM 2.0', firmwareVersion: '7.61.10.4660',
      specLevel: '2.0, level 0, revision 1.38 (2019)', family: '2.0', revision: '1.38',
    });
    expect(tpm.commands).toEqual([GET_CAPABILITY]);
    await client.close();
  });

  it('keep the spaces inside the vendor string, as swtpm\'s "SW   TPM", and drop those around it', async () => {
    const tpm = await scriptedTpm((command) => properties({ 0x100: chars(' 2.0'), 0x105: chars('IBM '), 0x106: chars(' SW '), 0x107: chars('  TP'), 0x108: chars('M   '), 0x109: 0 }, command));
    const client = clientOf(tpm);
    expect(await readTpmFacts(client)).toMatchObject({ manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW   TPM', family: '2.0' });
    await client.close();
  });

  it('take a property the TPM does not report as zero, and the top of each firmware word as its first number', async () => {
    const tpm = await scriptedTpm((command) => properties({ 0x101: 1, 0x102: 100, 0x10b: 0xfffe0001, 0x10c: 0x80000000, 0x10d: 7 }, command));
    const client = clientOf(tpm);
    expect(await readTpmFacts(client)).toEqual({
      manufacturer: '', manufacturerName: '', vendorString: '', firmwareVersion: '65534.1.32768.0',
      specLevel: ', level 1, revision 1.00 (0)', family: '', revision: '1.00',
    });
    await client.close();
  });

  it('name the manufacturer from the TCG vendor registry, and show an id it does not know as it is', async () => {
    const vendors: [string, string][] = [
      ['AMD', 'AMD'], ['ATML', 'Atmel'], ['BRCM', 'Broadcom'], ['CSCO', 'Cisco'], ['FLYS', 'Flyslice'], ['GOOG', 'Google'], ['HPE', 'HPE'],
      ['HISI', 'Huawei'], ['IBM', 'IBM'], ['IFX', 'Infineon'], ['INTC', 'Intel'], ['LEN', 'Lenovo'], ['MSFT', 'Microsoft'],
      ['NSM', 'National Semiconductor'], ['NTZ', 'Nationz'], ['NTC', 'Nuvoton'], ['QCOM', 'Qualcomm'], ['ROCC', 'Fuzhou Rockchip'],
      ['SMSC', 'SMSC'], ['SNS', 'Samsung'], ['STM', 'STMicroelectronics'], ['TXN', 'Texas Instruments'], ['WEC', 'Winbond'], ['XYZ', 'XYZ'],
    ];
    let manufacturer = '';
    const tpm = await scriptedTpm((command) => properties({ 0x105: chars(manufacturer) }, command));
    const client = clientOf(tpm);
    const names: [string, string][] = [];
    for (const [id] of vendors) {
      manufacturer = id;
      const facts = await readTpmFacts(client);
      names.push([facts.manufacturer, facts.manufacturerName]);
    }
    expect(names).toEqual(vendors);
    await client.close();
  });
});

describe('a TPM report from a TPM that refuses', () => {
  it('reads on after a refusal, and marks each reading refused', async () => {
    const tpm = await scriptedTpm(() => response(0x921));
    const client = clientOf(tpm);
    const report = await readTpmReport(client, 'swtpm:host=127.0.0.1,port=1');
    const lockout = 'TPM_RC_LOCKOUT (0x921): authorisations for objects subject to DA protection are not allowed at this time because the TPM is in DA lockout mode';
    const refused = (command: string) => ({ ok: false, error: `TPM2_${command} failed on ${tpm.transport}: ${lockout}`, refused: true });
    expect(report).toEqual({
      transport: 'swtpm:host=127.0.0.1,port=1',
      endorsementKey: refused('ReadPublic'), storageRootKey: refused('ReadPublic'), identityKey: refused('ReadPublic'), facts: refused('GetCapability'),
    });
    expect(tpm.commands).toEqual([0x173, 0x173, 0x173, GET_CAPABILITY]);
    await client.close();
  });
});

describe('reading a persistent handle', () => {
  it.each([
    ['TPM_RC_HANDLE for handle 1', 0x18b, undefined],
    ['TPM_RC_HANDLE without a handle number', 0x08b, undefined],
  ])('takes %s as an empty handle', async (_what, rc, expected) => {
    const tpm = await scriptedTpm(() => response(rc));
    const client = clientOf(tpm);
    expect(await readPersistent(client, 0x81000100)).toBe(expected);
    await client.close();
  });

  it.each([
    ['a format-zero code with the same low bits (TPM_RC_PRIVATE)', 0x10b],
    ['TPM_RC_VALUE', 0x184],
  ])('passes on %s', async (_what, rc) => {
    const tpm = await scriptedTpm(() => response(rc));
    const client = clientOf(tpm);
    const err = await readPersistent(client, 0x81000100).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TpmCommandError);
    expect((err as TpmCommandError).responseCode).toBe(rc);
    await client.close();
  });
});

describe('the swtpm transport and what swtpm answers', () => {
  it('collects an answer that arrives in pieces', async () => {
    const whole = response(0, Buffer.from('000401020304', 'hex'));
    const tpm = await scriptedTpm(() => [whole.subarray(0, 3), whole.subarray(3, 12), whole.subarray(12)]);
    const transport = new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 });
    expect(await transport.transmit(GET_RANDOM_8)).toEqual(whole);
    await transport.close();
  });

  it('does not wait for more than an answer that announces less than its header, and refuses it', async () => {
    const short = Buffer.from('8001000000040000000000', 'hex');
    const tpm = await scriptedTpm(() => short);
    const transport = new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 });
    await expect(transport.transmit(GET_RANDOM_8)).rejects.toThrow(`${tpm.transport}: malformed response to TPM2_GetRandom (11 bytes)`);
    await transport.close();
  });

  it('passes TPM_RC_FAILURE on when a harmless command succeeds: libtpms\'s answer to a failed decryption, not an uninitialised TPM', async () => {
    const tpm = await scriptedTpm((command) => response(command.readUInt32BE(6) === READ_CLOCK ? 0 : 0x101));
    const transport = new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 });
    expect(await transport.transmit(GET_RANDOM_8)).toEqual(response(0x101));
    expect(tpm.commands).toEqual([0x17b, READ_CLOCK]);
    expect(tpm.controls).toEqual([]);
    await transport.close();
  });

  it('initialises a TPM that fails every command (CMD_INIT, TPM2_Startup), then sends the command again; the control answer may come in pieces', async () => {
    // Uninitialised until the control channel got its CMD_INIT.
    const scripted: { tpm?: ScriptedTpm } = {};
    const tpm = scripted.tpm = await scriptedTpm(() => response(scripted.tpm?.controls.length ? 0 : 0x101), 0, true);
    const transport = new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 });
    expect(await transport.transmit(GET_RANDOM_8)).toEqual(response(0));
    expect(tpm.controls).toEqual(['0000000200000000']);
    expect(tpm.commands).toEqual([0x17b, READ_CLOCK, 0x144, 0x17b]);
    await transport.close();
  });

  it('fails, naming the control command and its result, when swtpm refuses CMD_INIT', async () => {
    const tpm = await scriptedTpm(() => response(0x101), 0x0a);
    const transport = new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 });
    const err = await transport.transmit(GET_RANDOM_8).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TpmUnavailableError);
    expect((err as Error).cause).toMatchObject({ message: 'swtpm control command 2 failed with result 0xa' });
    expect(tpm.controls).toEqual(['0000000200000000']);
    await vi.waitFor(() => expect(tpm.openControls).toBe(0), { timeout: 2_000 });
    await transport.close();
  });

  it('names the control channel when it hangs up without an answer', async () => {
    const tpm = await scriptedTpm(() => response(0x101), 'hang up');
    const transport = new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 });
    const err = await transport.transmit(GET_RANDOM_8).then(() => undefined, (e: unknown) => e);
    expect((err as Error).cause).toMatchObject({ message: `swtpm control 127.0.0.1:${tpm.port + 1} closed the connection` });
    await transport.close();
  });

  it('passes any other answer on as it is', async () => {
    const tpm = await scriptedTpm(() => response(0x18b));
    const transport = new SwtpmTransport('127.0.0.1', tpm.port, { commandTimeoutMs: 5_000 });
    expect(await transport.transmit(GET_RANDOM_8)).toEqual(response(0x18b));
    expect(tpm.commands).toEqual([0x17b]);
    await transport.close();
  });
});
