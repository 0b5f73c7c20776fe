import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { probeThroughProxy } from '../../agent/check/proxy-probe.js';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { ProxyError } from '../../agent/network/proxy-agent.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { stringMatching } from '../support/matchers.js';
import { allClosed, closedPort, closeListeners, connectProxy, httpsServer, listen } from './loopback-proxy.js';
import { selfSignedCertificate } from './self-signed.js';

/**
 * `check`'s probe through an HTTPS proxy, against a CONNECT proxy and an HTTPS server in this
 * process on loopback: the proxy tunnels every CONNECT it accepts to that server, whose
 * certificate names dps.example and 127.0.0.1, so no name is ever resolved and nothing but
 * loopback is reached.
 */
let dir: string | undefined;
let made: Promise<ServerCredentials> | undefined;
const credentials = () => (made ??= ensureServerCredentials(dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-proxy-probe-')), ['dps.example', '127.0.0.1']));
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(closeListeners);

const proxyAt = (url: string) => parseProxyUrl(url, 'network.proxy');
const probe = async (url: string, overrides: Partial<Parameters<typeof probeThroughProxy>[1]> = {}) =>
  probeThroughProxy(proxyAt(url), { host: 'dps.example', port: 443, ca: [(await credentials()).ca], timeoutMs: 5_000, ...overrides });

describe('check: one probe through the proxy', () => {
  it('sends one HEAD through the tunnel, verifies the server, and names the certificate and the way taken', async () => {
    const server = await httpsServer(await credentials());
    const { url, asked } = await connectProxy(server.port, 200);
    expect(await probe(url)).toEqual({
      connect: 'accepted',
      tls: {
        ok: true, address: `${url} → dps.example:443`, protocol: 'TLSv1.3', subject: 'CN=dps.example', issuer: 'CN=iot-agent local cloud test CA',
        validTo: stringMatching(/ GMT$/),
      },
    });
    expect(asked).toEqual(['dps.example:443']);
    expect(server.seen).toEqual([{ method: 'HEAD', path: '/', userAgent: 'iot-agent check', servername: 'dps.example' }]);
  });

  it('names a certificate without a common name by its other attributes, as the probe without a proxy does', async () => {
    const { key, cert } = await selfSignedCertificate('/O=Acme Devices/OU=Boards', ['dps.example']);
    const { url } = await connectProxy((await httpsServer({ key, cert })).port, 200);
    expect(await probe(url, { ca: [cert] })).toMatchObject({ connect: 'accepted', tls: { ok: true, subject: 'O=Acme Devices, OU=Boards', issuer: 'O=Acme Devices, OU=Boards' } });
  });

  it('sends no server name for an endpoint given by address, and checks the certificate against the address', async () => {
    const server = await httpsServer(await credentials());
    const { url, asked } = await connectProxy(server.port, 200);
    expect(await probe(url, { host: '127.0.0.1', port: 8443 })).toMatchObject({ connect: 'accepted', tls: { ok: true, address: `${url} → 127.0.0.1:8443` } });
    expect(asked).toEqual(['127.0.0.1:8443']);
    expect(server.seen.map((s) => s.servername)).toEqual([false]);
  });

  it('fails the handshake inside an accepted tunnel when the server\'s CA is not trusted', async () => {
    const server = await httpsServer(await credentials());
    const { url } = await connectProxy(server.port, 200);
    expect(await probe(url, { ca: undefined })).toEqual({
      connect: 'accepted', tls: { ok: false, code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', detail: 'unable to verify the first certificate', phase: 'tls', timedOut: false },
    });
    expect(server.seen).toEqual([]);
  });

  it('fails the handshake inside an accepted tunnel when the server hangs up', async () => {
    const { url } = await connectProxy(await listen(net.createServer((socket) => socket.destroy())), 200);
    expect(await probe(url)).toMatchObject({ connect: 'accepted', tls: { ok: false, code: 'ECONNRESET', phase: 'tls', timedOut: false } });
  });

  it('tells the proxy\'s refusal of the tunnel apart from the endpoint\'s failures', async () => {
    const { url } = await connectProxy(0, 403);
    const outcome = await probe(url);
    expect(outcome).toEqual({ connect: 'refused', error: new ProxyError(`the proxy ${url} (network.proxy) does not allow a tunnel to dps.example (403)`, 403, {
      hint: 'the proxy must allow CONNECT to port 443 of DPS and of the hub; or list the host in network.noProxy',
    }) });
    expect(outcome.connect === 'refused' && outcome.error).toBeInstanceOf(ProxyError);
  });

  it('names a refusal as the proxy\'s even when its answer cannot be read as HTTP', async () => {
    const { url } = await connectProxy(0, { reply: 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: abc\r\n\r\n' });
    expect(await probe(url)).toMatchObject({ connect: 'refused', error: { statusCode: 407, message: `the proxy ${url} (network.proxy) requires credentials (407)` } });
  });

  it('names a proxy that hangs up on the CONNECT as the problem, not the endpoint', async () => {
    const { url } = await connectProxy(0, { reply: '' });
    const outcome = await probe(url);
    expect(outcome).toEqual({ connect: 'refused', error: new ProxyError(
      `the proxy ${url} (network.proxy) did not answer the CONNECT to dps.example:443: Proxy connection ended before receiving CONNECT response`, undefined,
      { hint: 'the proxy closed the connection or answered with something other than HTTP: see the proxy\'s log' }) });
    expect(outcome.connect === 'refused' && outcome.error.cause).toBeInstanceOf(Error);
  });

  it('names a proxy nobody listens on as unreachable', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    expect(await probe(url)).toMatchObject({ connect: 'unreachable', error: { statusCode: undefined, message: `the proxy ${url} (network.proxy) could not be reached (ECONNREFUSED)` } });
  });

  it('gives up in the TCP phase on a proxy that never answers the CONNECT, and closes the connection to it', async () => {
    const { url, open } = await connectProxy(0, 'silent');
    const t0 = performance.now();
    expect(await probe(url, { timeoutMs: 300 })).toEqual({ connect: 'timeout', tls: { ok: false, code: 'ETIMEDOUT', detail: '', phase: 'tcp', timedOut: true } });
    expect(performance.now() - t0).toBeLessThan(3_000);
    // https-proxy-agent would wait for the answer as long as the proxy keeps the connection: in the daemon, for ever.
    expect(open.size).toBe(1);
    await allClosed(open);
  });

  it('gives up in the TLS phase when the tunnel opened but the endpoint never answers the handshake, and closes the tunnel', async () => {
    const { url, open } = await connectProxy(await listen(net.createServer()), 200);
    expect(await probe(url, { timeoutMs: 300 })).toEqual({ connect: 'timeout', tls: { ok: false, code: 'ETIMEDOUT', detail: '', phase: 'tls', timedOut: true } });
    await allClosed(open);
  });

  it('counts only a tunnel the proxy opened as reaching the TLS phase', async () => {
    const { url } = await connectProxy(0, { reply: 'HTTP/1.1 200 OK\r\n\r\n' });
    // The proxy said 200 and hung up: the tunnel opened, and the handshake inside it failed.
    expect(await probe(url)).toMatchObject({ connect: 'accepted', tls: { ok: false, code: 'ECONNRESET', phase: 'tls' } });
  });
});
