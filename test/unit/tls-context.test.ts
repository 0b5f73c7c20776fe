import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls, { type SecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedSecureContext } from '../../agent/lib/tls-context.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-tls-context-')); });
const made = new Map<string, Promise<ServerCredentials>>();
/** A private CA and a server certificate for 127.0.0.1 it issued (openssl), one per name, made once per file. */
function authority(name: string): Promise<ServerCredentials> {
  if (!made.has(name)) made.set(name, ensureServerCredentials(path.join(dir, name), ['127.0.0.1']));
  return made.get(name)!;
}

const servers: tls.Server[] = [];
afterAll(() => {
  for (const server of servers) server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Whether a client with `secureContext` (Node's default when undefined) accepts the server certificate of `name`'s CA. */
async function accepts(name: string, secureContext: SecureContext | undefined): Promise<boolean | string> {
  const { key, cert } = await authority(name);
  const server = tls.createServer({ key, cert }, (socket) => socket.end());
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...(secureContext ? { secureContext } : {}) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** The quickest of `n` builds of a context for each bundle in turn (alternating defeats the one-entry cache). */
function fastestBuildMs(bundles: string[], n = 5): number {
  let best = Infinity;
  for (let i = 0; i < n * bundles.length; i++) {
    const start = performance.now();
    sharedSecureContext(bundles[i % bundles.length]!);
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

describe('the shared TLS context', () => {
  it('is the same for the same CAs, given as a list or as one PEM text, and new when they change', async () => {
    const { ca } = await authority('a');
    const first = sharedSecureContext([ca]);
    expect(sharedSecureContext(ca)).toBe(first);
    const other = sharedSecureContext([...tls.rootCertificates, ca]);
    expect(other).not.toBe(first);
    expect(sharedSecureContext([...tls.rootCertificates, ca].join('\n'))).toBe(other);
  });

  // Each test asks for CAs no other test does: a context another test left in the cache would hide how it is made.
  it('trusts the system roots plus an extra CA, and not another CA; the default context stays as it was', async () => {
    const { ca } = await authority('extra');
    await authority('b');
    const context = sharedSecureContext([...tls.rootCertificates, ca]);
    expect(await accepts('extra', context)).toBe(true);
    expect(await accepts('b', context)).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED/);
    expect(await accepts('extra', undefined)).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED/);
  });

  it('trusts only the CAs it is given when they are not the system roots', async () => {
    const { ca } = await authority('only');
    const context = sharedSecureContext([ca]);
    expect(await accepts('only', context)).toBe(true);
    expect(await accepts('b', context)).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED/);
  });

  it('adds extra CAs to the root store Node parsed once instead of parsing the roots again', async () => {
    const [a, b] = [(await authority('a')).ca, (await authority('b')).ca];
    const withRoots = fastestBuildMs([[...tls.rootCertificates, a].join('\n'), [...tls.rootCertificates, b].join('\n')]);
    // One root short: the full parse, the only way to leave that root out.
    const short = tls.rootCertificates.slice(1);
    const parsed = fastestBuildMs([[...short, a].join('\n'), [...short, b].join('\n')]);
    expect(withRoots * 3).toBeLessThan(parsed);
  });

  it('relies on a method of Node\'s native context that Node\'s own `ca` option uses', () => {
    // A Node without it still works (the full parse), but the event loop stalls again: this says so.
    const native: unknown = tls.createSecureContext().context;
    expect(typeof (native as { addCACert?: unknown }).addCACert).toBe('function');
  });
});
