import { mkdtempSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serveControlSocket, type ControlHandler } from '../../agent/daemon/control-socket.js';
import { readSharedTpm } from '../../agent/control/shared-tpm.js';
import { DAEMON_LOCK_OWNER, TpmLock } from '../../agent/tpm/tpm-lock.js';
import type { TpmReport } from '../../agent/tpm/tpm-report.js';
import { parseTransport } from '../../agent/config/transport-spec.js';
import { freePort } from '../support/ports.js';
import { answering, handling } from './control-handlers.js';

const servers: net.Server[] = [];
afterEach(() => { for (const server of servers.splice(0)) server.close(); });

const runtimeDir = () => mkdtempSync(path.join(tmpdir(), 'iot-agent-shared-tpm-'));

/** What a daemon's TPM holds, for the transport it uses. */
const daemonReport = (transport: string): TpmReport => ({
  transport,
  endorsementKey: { ok: true, value: 'RUs=' },
  storageRootKey: { ok: true, value: 'U1JL' },
  identityKey: { ok: true, value: null },
  facts: { ok: false, error: 'not read', refused: false },
});

/** This process plays the daemon: it holds the TPM lock under the daemon's name and answers on the control socket. */
async function daemonIn(dir: string, handle: ControlHandler): Promise<void> {
  await TpmLock.acquire(dir, DAEMON_LOCK_OWNER);
  servers.push(await serveControlSocket(dir, handle));
}

describe('the TPM report for a CLI command', () => {
  it('reads the TPM directly when no daemon holds it, and says the TPM did not answer', async () => {
    const port = await freePort();
    const { report, via } = await readSharedTpm({ runtimeDir: runtimeDir(), spec: parseTransport(`swtpm:port=${port}`), commandTimeoutMs: 2_000 });
    expect(via).toBe('direct');
    expect(report.transport).toBe(`swtpm:host=127.0.0.1,port=${port}`);
    expect(report.endorsementKey).toMatchObject({ ok: false, refused: false });
    expect(report.identityKey).toMatchObject({ ok: false, error: 'not read: the TPM did not answer (see the endorsement key)' });
  });

  it('asks the daemon that holds the TPM, over its control socket, when it uses the same transport', async () => {
    const dir = runtimeDir();
    const asked: string[] = [];
    await daemonIn(dir, handling((request, reply) => {
      asked.push(request.op);
      reply({ event: 'tpm', pid: 4242, ...daemonReport('swtpm:host=127.0.0.1,port=2321') });
    }));
    expect(await readSharedTpm({ runtimeDir: dir, spec: parseTransport('swtpm:port=2321') })).toEqual({
      report: daemonReport('swtpm:host=127.0.0.1,port=2321'), via: { daemonPid: 4242 },
    });
    expect(asked).toEqual(['tpm']);
  });

  it('reads the TPM itself when the daemon uses another one', async () => {
    const dir = runtimeDir();
    await daemonIn(dir, answering({ event: 'tpm', pid: 4242, ...daemonReport('device:/dev/tpmrm0') }));
    const port = await freePort();
    const { via, report } = await readSharedTpm({ runtimeDir: dir, spec: parseTransport(`swtpm:port=${port}`), commandTimeoutMs: 2_000 });
    expect(via).toBe('direct');
    expect(report.transport).toBe(`swtpm:host=127.0.0.1,port=${port}`);
  });

  it('reads the TPM itself when the daemon holds the lock but its socket is not up yet', async () => {
    const dir = runtimeDir();
    await TpmLock.acquire(dir, DAEMON_LOCK_OWNER);
    const port = await freePort();
    expect((await readSharedTpm({ runtimeDir: dir, spec: parseTransport(`swtpm:port=${port}`), commandTimeoutMs: 2_000 })).via).toBe('direct');
  });

  it('does not ask a lock holder that is not the daemon', async () => {
    const dir = runtimeDir();
    const asked: string[] = [];
    await TpmLock.acquire(dir, 'iot-agent provision');
    servers.push(await serveControlSocket(dir, handling((request) => { asked.push(request.op); })));
    const port = await freePort();
    expect((await readSharedTpm({ runtimeDir: dir, spec: parseTransport(`swtpm:port=${port}`), commandTimeoutMs: 2_000 })).via).toBe('direct');
    expect(asked).toEqual([]);
  });

  it('passes on the daemon\'s refusal rather than opening a second connection to its TPM', async () => {
    const dir = runtimeDir();
    await daemonIn(dir, answering({ event: 'error', message: 'the TPM is not open (starting)' }));
    await expect(readSharedTpm({ runtimeDir: dir, spec: parseTransport('swtpm:port=2321') })).rejects.toThrow('the daemon refused tpm: the TPM is not open (starting)');
  });

  it('gives a daemon that does not answer the time allowed, then gives up', async () => {
    const dir = runtimeDir();
    await daemonIn(dir, () => new Promise(() => undefined));
    const t0 = performance.now();
    await expect(readSharedTpm({ runtimeDir: dir, spec: parseTransport('swtpm:port=2321'), daemonTimeoutMs: 300 })).rejects.toThrow('the daemon did not answer in time');
    expect(performance.now() - t0).toBeLessThan(5_000);
  });
});
