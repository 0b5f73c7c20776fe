import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SocketExchange } from '../../agent/tpm/socket-exchange.js';
import { freePort } from '../support/ports.js';

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

/** A loopback TCP server; `onData` answers each chunk a client sends on its connection. */
async function server(onData: (socket: net.Socket, chunk: Buffer) => void): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const s = net.createServer((socket) => {
    connections++;
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => onData(socket, chunk));
  });
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { port: (s.address() as AddressInfo).port, connections: () => connections };
}

function after(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whole once `n` bytes have arrived. */
const bytes = (n: number) => (received: Buffer) => received.length >= n;

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const s of servers.splice(0)) s.close();
});

describe('a request/reply TCP exchange', () => {
  it('connects on the first request and keeps the connection for the next', async () => {
    const { port, connections } = await server((socket, chunk) => socket.write(chunk));
    const exchange = new SocketExchange('127.0.0.1', port, 'test peer');
    expect(exchange.connected).toBe(false);
    expect(await exchange.request(Buffer.from('ping'), bytes(4))).toEqual(Buffer.from('ping'));
    expect(exchange.connected).toBe(true);
    expect(await exchange.request(Buffer.from('pong'), bytes(4))).toEqual(Buffer.from('pong'));
    expect(connections()).toBe(1);
    exchange.reset();
  });

  it('collects a reply that arrives in pieces until the caller says it is whole', async () => {
    const { port } = await server((socket) => {
      socket.write('ab');
      setTimeout(() => socket.write('cd'), 30);
      setTimeout(() => socket.write('ef'), 60);
    });
    const exchange = new SocketExchange('127.0.0.1', port, 'test peer');
    const seen: string[] = [];
    const reply = await exchange.request(Buffer.from('?'), (received) => {
      seen.push(received.toString());
      return received.length >= 6;
    });
    expect(reply.toString()).toBe('abcdef');
    // Each look is at everything received so far (pieces may merge on a loaded machine).
    expect(seen.at(-1)).toBe('abcdef');
    expect(seen.every((s, i) => 'abcdef'.startsWith(s) && (i === 0 || s.length > seen[i - 1]!.length))).toBe(true);
    exchange.reset();
  });

  it('drops bytes nobody asked for, so the next reply starts clean', async () => {
    const { port } = await server((socket, chunk) => {
      socket.write(chunk);
      if (chunk.toString() === 'one') setTimeout(() => socket.write('stray'), 10);
    });
    const exchange = new SocketExchange('127.0.0.1', port, 'test peer');
    expect((await exchange.request(Buffer.from('one'), bytes(3))).toString()).toBe('one');
    await after(50);
    expect((await exchange.request(Buffer.from('two'), bytes(3))).toString()).toBe('two');
    exchange.reset();
  });

  it('fails the request in flight when the peer closes the connection, and connects afresh for the next', async () => {
    const { port, connections } = await server((socket, chunk) => {
      if (chunk.toString() === 'hang up') socket.end();
      else socket.write(chunk);
    });
    const exchange = new SocketExchange('127.0.0.1', port, 'test peer');
    await expect(exchange.request(Buffer.from('hang up'), bytes(1))).rejects.toThrow('test peer closed the connection');
    expect(exchange.connected).toBe(false);
    expect((await exchange.request(Buffer.from('again'), bytes(5))).toString()).toBe('again');
    expect(connections()).toBe(2);
    exchange.reset();
  });

  it('fails the request in flight when reset, naming the peer', async () => {
    const { port } = await server(() => undefined);
    const exchange = new SocketExchange('127.0.0.1', port, 'test peer');
    const pending = exchange.request(Buffer.from('?'), bytes(1));
    await after(50);
    exchange.reset();
    await expect(pending).rejects.toThrow('connection to test peer was reset');
    expect(exchange.connected).toBe(false);
  });

  it('fails with the connection error when nothing listens, and raises no unhandled error', async () => {
    const exchange = new SocketExchange('127.0.0.1', await freePort(), 'test peer');
    await expect(exchange.request(Buffer.from('?'), bytes(1))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(exchange.connected).toBe(false);
  });

  it('fails the request in flight when the connection breaks', async () => {
    const { port } = await server((socket) => socket.resetAndDestroy());
    const exchange = new SocketExchange('127.0.0.1', port, 'test peer');
    await expect(exchange.request(Buffer.from('?'), bytes(1))).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(exchange.connected).toBe(false);
  });
});
