import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls, { rootCertificates } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { checkNetwork } from '../../agent/check/network-checks.js';
import type { CheckResult } from '../../agent/check/result.js';
import { describeTls } from '../../agent/check/tls-check.js';
import { probeTls, type TlsTarget } from '../../agent/check/tls-probe.js';
import type { Trust } from '../../agent/check/trust.js';
import { DEFAULTS } from '../../agent/config.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { stringContaining, stringMatching } from '../support/matchers.js';
import { selfSignedCertificate } from './self-signed.js';

let dir: string | undefined;
let made: Promise<ServerCredentials> | undefined;
/** A private test CA and a certificate for localhost and 127.0.0.1, made once per file (openssl) in a directory removed after the file. */
const credentials = () => (made ??= ensureServerCredentials(dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-tls-probe-')), ['localhost', '127.0.0.1']));
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen(server: net.Server): Promise<number> {
  servers.push(server);
  server.on('connection', (socket: net.Socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** A TLS server on loopback with the test certificate; records the SNI name each client sent. */
async function tlsServer(): Promise<{ port: number; servernames: string[] }> {
  const { key, cert } = await credentials();
  const servernames: string[] = [];
  const context = tls.createSecureContext({ key, cert });
  const server = tls.createServer({
    key, cert,
    SNICallback: (servername, done) => {
      servernames.push(servername);
      done(null, context);
    },
  }, (socket) => socket.end());
  server.on('tlsClientError', () => undefined);
  return { port: await listen(server), servernames };
}

const loopback = [{ address: '127.0.0.1', family: 4 }];
const target = (overrides: Partial<TlsTarget>): TlsTarget => ({ host: 'localhost', port: 1, addresses: loopback, ca: undefined, timeoutMs: 5_000, ...overrides });

describe('check: the TLS probe against a real handshake', () => {
  it('verifies the chain against the CAs given and names the certificate, its issuer and the protocol', async () => {
    const { ca } = await credentials();
    const { port, servernames } = await tlsServer();
    const outcome = await probeTls(target({ port, ca: [ca] }));
    expect(outcome).toEqual({
      ok: true, address: `127.0.0.1:${port}`, protocol: 'TLSv1.3', subject: 'CN=localhost',
      issuer: 'CN=iot-agent local cloud test CA', validTo: stringMatching(/ GMT$/),
    });
    expect(servernames).toEqual(['localhost']);
  });

  it('sends no server name for an IP address, and checks the certificate against the address', async () => {
    const { ca } = await credentials();
    const { port, servernames } = await tlsServer();
    expect(await probeTls(target({ host: '127.0.0.1', port, ca: [ca] }))).toMatchObject({ ok: true });
    expect(servernames).toEqual([]);
  });

  it('refuses a server whose CA is not trusted: Node\'s default roots do not know a private CA', async () => {
    const { port } = await tlsServer();
    expect(await probeTls(target({ port }))).toMatchObject({ ok: false, code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', phase: 'tls', timedOut: false });
  });

  it('connects to the addresses the DNS check found, and refuses a certificate for another name', async () => {
    const { ca } = await credentials();
    const { port } = await tlsServer();
    const outcome = await probeTls(target({ host: 'dps.example.invalid', port, ca: [ca] }));
    expect(outcome).toMatchObject({ ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID', phase: 'tls', timedOut: false });
    expect(outcome.ok === false && outcome.detail).toContain('dps.example.invalid');
  });

  it('also hands the addresses over when the connection asks for a single one', async () => {
    const { ca } = await credentials();
    const { port } = await tlsServer();
    const before = net.getDefaultAutoSelectFamily();
    net.setDefaultAutoSelectFamily(false);
    try {
      expect(await probeTls(target({ host: 'dps.example.invalid', port, ca: [ca] }))).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    } finally {
      net.setDefaultAutoSelectFamily(before);
    }
  });

  it('tells a refused TCP connection apart, in the TCP phase', async () => {
    const port = await listen(net.createServer());
    await new Promise((resolve) => servers.pop()!.close(resolve));
    expect(await probeTls(target({ port }))).toMatchObject({ ok: false, code: 'ECONNREFUSED', phase: 'tcp', timedOut: false });
  });

  it('gives up on a server that accepts TCP but never answers the handshake, in the TLS phase', async () => {
    const port = await listen(net.createServer());
    const t0 = performance.now();
    const outcome = await probeTls(target({ port, timeoutMs: 300 }));
    expect(outcome).toEqual({ ok: false, code: 'ETIMEDOUT', detail: '', phase: 'tls', timedOut: true });
    expect(performance.now() - t0).toBeLessThan(3_000);
  });

  it('reports a server that closes the connection during the handshake', async () => {
    const port = await listen(net.createServer((socket) => socket.end()));
    const outcome = await probeTls(target({ port }));
    expect(outcome).toMatchObject({ ok: false, phase: 'tls', timedOut: false });
    expect(['ECONNRESET', 'EPIPE']).toContain(outcome.ok === false ? outcome.code : '');
  });

  it('refuses a server that does not speak TLS', async () => {
    const port = await listen(net.createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
    expect(await probeTls(target({ port }))).toMatchObject({ ok: false, code: 'ERR_SSL_WRONG_VERSION_NUMBER', phase: 'tls' });
  });
});

describe('check: an endpoint resolved, then shaken hands with', () => {
  /** A board whose DPS and cached hub are `host`; no proxy in the config or the environment. */
  const network = (host: string, trust: Trust) => checkNetwork({
    config: { ...DEFAULTS, provisioning: { ...DEFAULTS.provisioning, globalEndpoint: host } },
    trust, hub: host, noHub: 'not provisioned', memory: undefined, stepMs: 5_000, env: {},
  });
  const byId = (results: CheckResult[], id: string) => results.find((r) => r.id === id);

  it('describes a handshake with a trusted server at the address that answered', async () => {
    const { ca } = await credentials();
    const { port } = await tlsServer();
    const outcome = await probeTls(target({ port, ca: [ca] }));
    expect(describeTls({ id: 'hub-tls', role: 'hub', host: 'localhost', port, extraCaFile: '/etc/iot-agent/ca.pem', timeoutMs: 5_000 }, outcome))
      .toMatchObject({ id: 'hub-tls', status: 'pass', message: stringContaining(`TLS handshake with hub localhost:${port} (127.0.0.1:${port}, TLSv1.3)`) });
  });

  it('names the extra CA file when the server is not trusted', async () => {
    const { port } = await tlsServer();
    const outcome = await probeTls(target({ port, ca: [...rootCertificates] }));
    expect(describeTls({ id: 'hub-tls', role: 'hub', host: 'localhost', port, extraCaFile: '/etc/iot-agent/ca.pem', timeoutMs: 5_000 }, outcome))
      .toMatchObject({ status: 'fail', message: stringContaining('nor tls.extraCaFile (/etc/iot-agent/ca.pem)') });
  });

  it('does not try TLS when the name does not resolve, and says which check to fix first', async () => {
    const results = await network('', { ok: true, ca: undefined, extraCaFile: undefined });
    expect(byId(results, 'dps-dns')).toMatchObject({ status: 'fail', message: stringMatching(/^DPS {2}does not resolve \(ENODATA\)/),
      hint: stringMatching(/^check provisioning\.globalEndpoint in the config for a typo/) });
    expect(byId(results, 'hub-dns')).toMatchObject({ status: 'fail',
      hint: stringMatching(new RegExp(`^check the cached assignment in ${DEFAULTS.stateDir} \\(re-provision if the hub moved\\) for a typo`)) });
    expect(byId(results, 'dps-tls')).toEqual({ id: 'dps-tls', status: 'fail', message: 'not tried:  does not resolve', hint: 'fix the name resolution first' });
    expect(byId(results, 'hub-tls')).toMatchObject({ status: 'fail', message: 'not tried:  does not resolve' });
  });

  it('does not try TLS with an unusable CA file, and passes on its problem and hint', async () => {
    const results = await network('127.0.0.1', { ok: false, problem: 'tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
    expect(byId(results, 'dps-dns')!.status).toBe('pass');
    expect(byId(results, 'dps-tls')).toEqual({ id: 'dps-tls', status: 'fail', message: 'not tried: tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
    expect(byId(results, 'hub-tls')).toEqual({ id: 'hub-tls', status: 'fail', message: 'not tried: tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
  });
});

describe('check: how the TLS probe names a certificate', () => {
  /** A TLS server on loopback with this certificate; the probe trusts the certificate itself. */
  async function probeWith(subject: string) {
    const { key, cert } = await selfSignedCertificate(subject, ['localhost']);
    const server = tls.createServer({ key, cert }, (socket) => socket.end());
    server.on('tlsClientError', () => undefined);
    return probeTls(target({ port: await listen(server), ca: [cert] }));
  }

  it('names a certificate without a common name by its other attributes, several values of one joined by +', async () => {
    expect(await probeWith('/O=Acme Devices/O=Field Team/OU=Boards')).toMatchObject({
      ok: true, subject: 'O=Acme Devices+Field Team, OU=Boards', issuer: 'O=Acme Devices+Field Team, OU=Boards',
    });
  });

  it('shows a certificate with an empty subject as "?"', async () => {
    expect(await probeWith('/')).toMatchObject({ ok: true, subject: '?', issuer: '?' });
  });

  it('joins several common names by +', async () => {
    expect(await probeWith('/CN=board/CN=gateway/O=Acme')).toMatchObject({ ok: true, subject: 'CN=board+gateway', issuer: 'CN=board+gateway' });
  });
});
