import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MssimTransport } from '../../agent/tpm/mssim-transport.js';
import { SwtpmTransport } from '../../agent/tpm/swtpm-transport.js';
import { unavailableWithoutEscapes, watchEscapes } from '../support/escapes.js';
import { freePort, freePortPair } from '../support/ports.js';

/**
 * The simulator transports when the simulator is missing, hangs up or hangs: every failure
 * reaches the caller as a TpmUnavailableError and none crashes the process (tss.js's
 * TpmTcpDevice has no 'error' handlers of its own). Talking to a real TPM behind them is
 * proved against swtpm in the integration tests.
 */

const GET_RANDOM = Buffer.from('80010000000c0000017b0008', 'hex');

let escapes: ReturnType<typeof watchEscapes>;
const servers: net.Server[] = [];
const connections: net.Socket[] = [];

/**
 * A loopback server on `port` (a free one whose successor is free too, unless given);
 * `onConnection` decides what a peer does with each connection. `open` counts the connections
 * the client has not closed.
 */
async function peer(onConnection: (socket: net.Socket) => void, port?: number): Promise<{ port: number; closed: Promise<void>; open: () => number }> {
  const at = port ?? (await freePortPair());
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => { markClosed = resolve; });
  let open = 0;
  const server = net.createServer((socket) => {
    open++;
    connections.push(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => { open--; markClosed(); });
    onConnection(socket);
    socket.resume(); // read on, so that the client's closing is seen
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(at, '127.0.0.1', resolve));
  return { port: at, closed, open: () => open };
}

const failure = (promise: Promise<unknown>) => unavailableWithoutEscapes(promise, escapes);

beforeEach(() => { escapes = watchEscapes(); });
afterEach(() => {
  escapes.stop();
  for (const socket of connections.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) server.close();
});

describe('the mssim transport', () => {
  it('fails, with a hint, when nothing listens', async () => {
    const port = await freePort();
    const transport = new MssimTransport('127.0.0.1', port, { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toBe(`mssim 127.0.0.1:${port}: TPM2_GetRandom failed`);
    expect(err.hint).toMatch(/nothing listens there/);
    await transport.close();
  });

  it('fails when the simulator hangs up during the handshake', async () => {
    const { port } = await peer((socket) => socket.once('data', () => socket.end()));
    const transport = new MssimTransport('127.0.0.1', port, { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect((err.cause as Error).message).toBe('simulator closed the command connection');
    await transport.close();
  });

  it('fails with the reason tss.js gives when the simulator answers the handshake in pieces, but as a version it does not speak', async () => {
    const handshake = Buffer.from('00000002' + '0000000d' + '00000000', 'hex');
    const { port } = await peer((socket) => socket.once('data', () => {
      socket.write(handshake.subarray(0, 5));
      setTimeout(() => socket.write(handshake.subarray(5)), 20);
    }));
    const transport = new MssimTransport('127.0.0.1', port, { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect((err.cause as Error).message).toMatch(/Too old TCP server version: 2/);
    await transport.close();
  });

  it('fails when the platform channel (port + 1) is not there after the handshake', async () => {
    const handshake = Buffer.from('00000001' + '0000000d' + '00000000', 'hex'); // server version 1, endpoint flags, ack
    const { port } = await peer((socket) => socket.once('data', () => socket.write(handshake)));
    const transport = new MssimTransport('127.0.0.1', port, { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.cause).toMatchObject({ code: 'ECONNREFUSED', port: port + 1 });
    await transport.close();
  });

  it('fails, naming the channel, when the simulator closes the platform channel', async () => {
    const handshake = Buffer.from('00000001' + '0000000d' + '00000000', 'hex');
    const { port } = await peer((socket) => socket.once('data', () => socket.write(handshake)));
    await peer((socket) => socket.once('data', () => socket.end()), port + 1);
    const transport = new MssimTransport('127.0.0.1', port, { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect((err.cause as Error).message).toBe('simulator closed the platform connection');
    await transport.close();
  });

  it('closes the connection of each handshake that outlives the deadline, also of commands queued behind', async () => {
    const { port, open } = await peer(() => undefined);
    const transport = new MssimTransport('127.0.0.1', port, { commandTimeoutMs: 100 });
    const [first, second] = await Promise.all([failure(transport.transmit(GET_RANDOM)), failure(transport.transmit(GET_RANDOM))]);
    expect([first.message, second.message]).toEqual(Array(2).fill(`mssim 127.0.0.1:${port}: no answer to TPM2_GetRandom within 100 ms`));
    await vi.waitFor(() => expect(open()).toBe(0), { timeout: 2_000 });
    await transport.close();
  });

  it('closes the connection of a handshake that outlives the deadline', async () => {
    const { port, closed } = await peer(() => undefined);
    const transport = new MssimTransport('127.0.0.1', port, { commandTimeoutMs: 100 });
    expect((await failure(transport.transmit(GET_RANDOM))).message).toBe(`mssim 127.0.0.1:${port}: no answer to TPM2_GetRandom within 100 ms`);
    await closed;
    await transport.close();
  });
});

describe('the swtpm transport', () => {
  it('fails when swtpm hangs up, naming it', async () => {
    const { port } = await peer((socket) => socket.once('data', () => socket.end()));
    const transport = new SwtpmTransport('127.0.0.1', port, { commandTimeoutMs: 5_000 });
    const err = await failure(transport.transmit(GET_RANDOM));
    expect(err.message).toBe(`swtpm 127.0.0.1:${port}: TPM2_GetRandom failed`);
    expect((err.cause as Error).message).toBe(`swtpm 127.0.0.1:${port} closed the connection`);
    await transport.close();
  });

  it('closes the connection of a command that outlives the deadline', async () => {
    const { port, closed } = await peer(() => undefined);
    const transport = new SwtpmTransport('127.0.0.1', port, { commandTimeoutMs: 100 });
    await failure(transport.transmit(GET_RANDOM));
    await closed;
    await transport.close();
  });
});
