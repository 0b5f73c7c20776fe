import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Tpm, TpmTcpDevice } from '../../agent/tpm/tss-lib.js';

/**
 * tss.js's private members that agent/tpm relies on, read from (and driven through) the real
 * package: tpm-client.ts gives a Tpm its own device in `Tpm.device`; mssim-transport.ts guards
 * TpmTcpDevice's sockets and wraps its data handlers. An update of tss.js that renames one fails
 * here, naming it.
 */
const member = (owner: unknown, name: string): unknown => (owner as Record<string, unknown> | undefined)?.[name];

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A loopback listener that answers each connection's first bytes with `reply`. */
async function listener(reply: Buffer): Promise<number> {
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.once('data', () => socket.write(reply));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

describe('the tss.js members agent/tpm relies on', () => {
  it('tpm-client.ts: a Tpm sends through the object in its `device` field', () => {
    const tpm = new Tpm(false);
    expect(typeof member(tpm, 'device')).toBe('object');
    const calls: string[] = [];
    (tpm as unknown as { device: object }).device = {
      connect: (done: (err: Error | null) => void) => {
        calls.push('connect');
        done(null);
        return null;
      },
    };
    tpm.connect(() => undefined);
    expect(calls).toEqual(['connect']);
  });

  it('mssim-transport.ts: TpmTcpDevice starts with connectCont and dispatchCont null', () => {
    const device = new TpmTcpDevice('127.0.0.1', 1);
    expect(member(device, 'connectCont')).toBeNull();
    expect(member(device, 'dispatchCont')).toBeNull();
  });

  it('mssim-transport.ts: TpmTcpDevice keeps its socket, continuation and response bytes where the transport reads them, and takes its handshake handler from the instance', async () => {
    const port = await listener(Buffer.alloc(12));
    const device = new TpmTcpDevice('127.0.0.1', port) as unknown as Record<string, unknown> & { connect(done: () => void): void };
    const done = () => undefined;
    const handShake = await new Promise<Buffer>((resolve) => {
      device.onHandShake = resolve;
      device.connect(done);
    });
    expect(handShake).toHaveLength(12);
    expect(device.tpmSocket).toBeInstanceOf(net.Socket);
    expect(device.connectCont).toBe(done);
    expect(Buffer.isBuffer(device.tcpResp)).toBe(true);
    sockets.push(device.tpmSocket as net.Socket);
  });

  it('mssim-transport.ts: TpmTcpDevice takes its response handler from the instance and names its platform socket tpmPlatSocket', () => {
    expect(typeof member(TpmTcpDevice.prototype, 'onDispatch')).toBe('function');
    expect(String(member(TpmTcpDevice.prototype, 'dispatchCommand'))).toContain('this.onDispatch.bind(this)');
    expect(String(member(TpmTcpDevice.prototype, 'onHandShake'))).toContain('this.tpmPlatSocket = ');
  });
});
