import net from 'node:net';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';
import { freePortPair } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

/** Anything escaping as an uncaught exception or unhandled rejection fails the test. */
function watchForEscapes() {
  const escaped: unknown[] = [];
  const onError = (err: unknown) => escaped.push(err);
  beforeEach(() => {
    escaped.length = 0;
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
  });
  afterEach(async () => {
    await new Promise((r) => setTimeout(r, 50)); // let late socket events surface
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
    expect(escaped).toEqual([]);
  });
}

async function failureOf(promise: Promise<unknown>): Promise<TpmUnavailableError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TpmUnavailableError);
  return err as TpmUnavailableError;
}

/** A TCP server that accepts connections and reads commands but never answers. */
async function silentServer(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => { sockets.add(socket); socket.resume(); });
  const port = await freePortPair();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

describe('TPM transport faults', () => {
  watchForEscapes();
  const started: SwtpmInstance[] = [];
  afterAll(async () => { await Promise.all(started.map((s) => s.stop())); });

  it('names the transport and the cause when nothing listens', async () => {
    const port = await freePortPair();
    const client = clientFor(`swtpm:host=127.0.0.1,port=${port}`);
    const t0 = Date.now();
    const err = await failureOf(ensureIdentity(client));
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(err.message).toBe(`swtpm 127.0.0.1:${port}: TPM2_ReadPublic failed`);
    expect((err.cause as Error).message).toContain('ECONNREFUSED');
    expect(err.hint).toMatch(/nothing listens there/);
    await client.close();
  });

  it('times out a TPM that never answers, and again for the next command, without hanging', async () => {
    const server = await silentServer();
    const client = clientFor(`swtpm:host=127.0.0.1,port=${server.port}`, { commandTimeoutMs: 300 });
    try {
      const t0 = Date.now();
      const err = await failureOf(ensureIdentity(client));
      expect(err.message).toBe(`swtpm 127.0.0.1:${server.port}: no answer to TPM2_ReadPublic within 300 ms`);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      expect(Date.now() - t0).toBeLessThan(1_500);
      await failureOf(ensureIdentity(client));
    } finally {
      await client.close();
      server.close();
    }
  });

  it('fails the command in flight when swtpm is killed mid-session, then reconnects once it is back', async () => {
    const swtpm = await SwtpmInstance.start();
    started.push(swtpm);
    const client = clientFor(swtpm.transport);
    try {
      // A fresh TPM creates two RSA-2048 primaries: plenty of time to pull the plug in between.
      const inFlight = failureOf(ensureIdentity(client));
      await new Promise((r) => setTimeout(r, 15));
      await swtpm.kill();
      const err = await inFlight;
      expect(err.message).toMatch(new RegExp(`^swtpm 127\\.0\\.0\\.1:${swtpm.port}: TPM2_\\w+ failed`));
      expect(String((err.cause as Error)?.message)).toMatch(/closed the connection|ECONNRESET|ECONNREFUSED/);

      await failureOf(ensureIdentity(client)); // still down: a clear error, not a hang
      await swtpm.restart();
      const identity = await ensureIdentity(client);
      expect(identity.registrationId).toMatch(/^[a-z2-7]{52}$/);
    } finally {
      await client.close();
    }
  });

  it('reconnects transparently after swtpm restarts between commands', async () => {
    const swtpm = await SwtpmInstance.start();
    started.push(swtpm);
    const client = clientFor(swtpm.transport);
    try {
      const before = await ensureIdentity(client);
      await swtpm.restart();
      const after = await ensureIdentity(client);
      expect(after.endorsementKey.equals(before.endorsementKey)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('initialises a swtpm that was started without not-need-init (CMD_INIT, then TPM2_Startup)', async () => {
    const swtpm = await SwtpmInstance.start({ uninitialised: true });
    started.push(swtpm);
    const client = clientFor(swtpm.transport);
    try {
      const identity = await ensureIdentity(client);
      expect(identity.created).toEqual(['EK', 'SRK']);
    } finally {
      await client.close();
    }
  });

  it('reports a missing device node with a hint', async () => {
    const client = clientFor('device:/dev/iot-agent-no-such-tpm');
    const err = await failureOf(ensureIdentity(client));
    expect(err.message).toBe('TPM device /dev/iot-agent-no-such-tpm: TPM2_ReadPublic failed');
    expect(err.hint).toMatch(/no such device/);
    await client.close();
  });
});
