import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls, { type TLSSocket } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { ProxyTunnel } from '../../agent/network/proxy-agent.js';
import { fetchServiceDate } from '../../agent/time/service-date.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { tlsContextsBuilt } from '../support/tls-contexts.js';
import { allClosed, closeListeners, connectProxy } from './loopback-proxy.js';

const SERVICE_DATE = 'Tue, 01 Dec 2026 12:00:00 GMT';

let certificates: Promise<{ dir: string; credentials: ServerCredentials }> | undefined;
/** A private CA and a server certificate for localhost and 127.0.0.1, made once per file (openssl). */
function credentials(): Promise<ServerCredentials> {
  certificates ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-service-date-'));
    return { dir, credentials: await ensureServerCredentials(dir, ['localhost', '127.0.0.1']) };
  })();
  return certificates.then((c) => c.credentials);
}

interface Seen { method: string | undefined; url: string | undefined; userAgent: string | undefined; servername: string | false | null | undefined }

const servers: https.Server[] = [];
/** A loopback HTTPS server that answers every request with `status` and the service's Date, or never answers. */
async function service(options: { answer?: boolean } = {}): Promise<{ port: number; seen: Seen[] }> {
  const { key, cert } = await credentials();
  const seen: Seen[] = [];
  const server = https.createServer({ key, cert }, (request, response) => {
    seen.push({ method: request.method, url: request.url, userAgent: request.headers['user-agent'], servername: (request.socket as TLSSocket).servername });
    if (options.answer === false) return;
    response.writeHead(401, { date: SERVICE_DATE });
    response.end();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen };
}

afterEach(() => {
  for (const server of servers.splice(0)) server.close();
  closeListeners();
});

afterAll(async () => {
  if (certificates) rmSync((await certificates).dir, { recursive: true, force: true });
});

describe('asking a service for its time', () => {
  it('reads the Date header of one HEAD request, whatever the status, with the local times around it', async () => {
    const { port, seen } = await service();
    const { ca } = await credentials();
    const before = Date.now();
    const answer = await fetchServiceDate('127.0.0.1', port, [ca], 5_000);
    expect(answer.date).toBe(SERVICE_DATE);
    expect(answer.sentAt).toBeGreaterThanOrEqual(before);
    expect(answer.receivedAt).toBeGreaterThanOrEqual(answer.sentAt);
    expect(answer.receivedAt).toBeLessThanOrEqual(Date.now());
    expect(seen).toMatchObject([{ method: 'HEAD', url: '/', userAgent: 'iot-agent' }]);
  });

  it('names a host by SNI, and an address not at all', async () => {
    const { port, seen } = await service();
    const { ca } = await credentials();
    await fetchServiceDate('localhost', port, [ca], 5_000);
    await fetchServiceDate('127.0.0.1', port, [ca], 5_000);
    expect(seen.map((s) => s.servername)).toEqual(['localhost', false]);
  });

  it('refuses a service whose certificate no trusted CA issued', async () => {
    const { port, seen } = await service();
    await expect(fetchServiceDate('127.0.0.1', port, undefined, 5_000)).rejects.toThrow(/certificate/);
    expect(seen).toEqual([]);
  });

  it('gives up on a service that does not answer within the deadline, naming it', async () => {
    const { port } = await service({ answer: false });
    const { ca } = await credentials();
    await expect(fetchServiceDate('127.0.0.1', port, [ca], 200)).rejects.toThrow(`no answer from 127.0.0.1:${port} within 200 ms`);
  });

  it('gives up within the deadline on a proxy that never answers the CONNECT, and closes the connection to it', async () => {
    const { url, open } = await connectProxy(0, 'silent');
    const tunnel = new ProxyTunnel(parseProxyUrl(url, 'network.proxy'));
    await expect(fetchServiceDate('127.0.0.1', 443, undefined, 200, tunnel.agent)).rejects.toThrow(`the proxy ${url} did not answer the CONNECT to 127.0.0.1:443 within 200 ms`);
    await allClosed(open);
  });

  it('fails when nothing listens', async () => {
    const { port } = await service();
    for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
    await expect(fetchServiceDate('127.0.0.1', port, undefined, 5_000)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('goes through the agent it is given (a proxy\'s tunnel) when there is one', async () => {
    const { port, seen } = await service();
    const { ca } = await credentials();
    let connections = 0;
    const agent = new (class extends https.Agent {
      override createConnection(...args: Parameters<https.Agent['createConnection']>): ReturnType<https.Agent['createConnection']> {
        connections++;
        return super.createConnection(...args);
      }
    })();
    try {
      expect((await fetchServiceDate('127.0.0.1', port, [ca], 5_000, agent)).date).toBe(SERVICE_DATE);
    } finally {
      agent.destroy();
    }
    expect(connections).toBe(1);
    expect(seen).toHaveLength(1);
  });

  it('asks again and again through one TLS context made from the CAs, not one per request', async () => {
    const { port } = await service();
    const { ca } = await credentials();
    const made = await tlsContextsBuilt(async () => {
      for (let i = 0; i < 3; i++) expect((await fetchServiceDate('127.0.0.1', port, [...tls.rootCertificates, ca], 5_000)).date).toBe(SERVICE_DATE);
    });
    expect(made).toBeLessThanOrEqual(1);
  });
});
