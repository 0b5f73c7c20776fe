import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { ProxyTunnel } from '../../agent/network/proxy-agent.js';
import { createDpsTransport, MIN_POLL_SECONDS, type DateObserver } from '../../agent/provisioning/dps-transport.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { tlsContextsBuilt } from '../support/tls-contexts.js';

/**
 * The SDK's own DPS transport with the agent's request builder, talking plain HTTP to a
 * server in this process over a Unix socket (azure-iot-http-base takes `{ socketPath }` as
 * the host): DPS's answers are real HTTP responses, and what the SDK makes of them is its own.
 */
interface Answer { status: number; headers?: Record<string, string>; body?: unknown }

const servers: (http.Server | net.Server)[] = [];
const sockets = new Set<net.Socket>();
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => {
    if (s instanceof http.Server) s.closeAllConnections();
    s.close(resolve);
  })));
});

let made: Promise<ServerCredentials> | undefined;
/** A private test CA and a DPS certificate for 127.0.0.1 and dps.example, made once per file (openssl). */
let credentialsDir: string | undefined;
const credentials = () => (made ??= ensureServerCredentials(credentialsDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-dps-tls-')), ['127.0.0.1', 'dps.example']));
afterAll(() => {
  if (credentialsDir) rmSync(credentialsDir, { recursive: true, force: true });
});

/** DPS over HTTPS on 127.0.0.1 with the private CA's certificate: answers 200; counts the connections open. */
async function httpsDps(): Promise<{ port: number; open: () => number }> {
  const { key, cert } = await credentials();
  const server = https.createServer({ key, cert }, (request, response) => {
    request.resume();
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ status: 'assigned' }));
  });
  let open = 0;
  server.on('secureConnection', (socket: net.Socket) => {
    open++;
    socket.on('close', () => open--);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, open: () => open };
}

/** An HTTP CONNECT proxy on loopback that tunnels every CONNECT to `port` on 127.0.0.1, whatever it asks for. */
async function connectProxy(port: number): Promise<{ url: string; asked: string[] }> {
  const asked: string[] = [];
  const server = http.createServer();
  server.on('connect', (request: http.IncomingMessage, socket: net.Socket) => {
    asked.push(request.url ?? '');
    sockets.add(socket);
    socket.on('error', () => undefined);
    const upstream = net.connect(port, '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      upstream.pipe(socket).pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('error', () => socket.destroy());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, asked };
}

/** The HTTP layer under the SDK's DPS transport (its `_httpBase`, pinned by azure-sdk-contract.test.ts). */
interface HttpLayer {
  buildRequest(method: string, path: string, headers: object, host: string, options: object, done: (err?: Error, body?: unknown) => void): http.ClientRequest;
}

/** One GET through the transport's HTTP layer over HTTPS; `options` as azure-iot-http-base takes them (a port, the request function). */
function httpsGet(transport: object, host: string, options: object): Promise<{ err: Error | undefined; body: unknown }> {
  const layer = (transport as { _httpBase: HttpLayer })._httpBase;
  return new Promise((resolve) => {
    layer.buildRequest('GET', '/0ne1/registrations/r1/operations/op-1', {}, host, { request: https.request, ...options },
      (err, body) => resolve({ err: err ?? undefined, body })).end();
  });
}

async function dpsAnswering(answer: Answer): Promise<{ socketPath: string; seen: http.IncomingHttpHeaders[] }> {
  const socketPath = path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-dps-transport-')), 'dps.sock');
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((request, response) => {
    seen.push(request.headers);
    request.resume();
    response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    response.end(JSON.stringify(answer.body ?? {}));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return { socketPath, seen };
}

interface PollResult { err: Error | undefined; result: unknown; retryAfterMs: number | undefined }

/** One operation-status poll through the SDK transport, signed when `sas` is given. */
function poll(socketPath: string, options: { sas?: string; onDate?: DateObserver } = {}) {
  const dps = createDpsTransport(undefined, options.onDate);
  const transport = dps.transport as unknown as {
    setSharedAccessSignature(sas: string): void;
    queryOperationStatus(request: object, operationId: string, done: (err: Error | undefined, result: unknown, response: unknown, retryAfterMs?: number) => void): void;
  };
  if (options.sas) transport.setSharedAccessSignature(options.sas);
  const result = new Promise<PollResult>((resolve) => {
    transport.queryOperationStatus({ provisioningHost: { socketPath }, idScope: '0ne1', registrationId: 'r1' }, 'op-1',
      (err, res, _response, retryAfterMs) => resolve({ err: err ?? undefined, result: res, retryAfterMs }));
  });
  return { result, lastResponse: () => dps.lastResponse() };
}

const SAS = 'SharedAccessSignature sr=0ne1%2Fregistrations%2Fr1&sig=x&se=1&skn=registration';

describe('the DPS transport: what the agent sees of DPS\'s answers', () => {
  it('remembers the status and Retry-After of the last answer, and hands the SDK its own error', async () => {
    const { socketPath } = await dpsAnswering({ status: 429, headers: { 'retry-after': '7' } });
    const { result, lastResponse } = poll(socketPath);
    expect((await result).err).toBeDefined();
    expect(lastResponse()).toEqual({ statusCode: 429, retryAfter: '7', error: undefined });
  });

  it('keeps the failure below HTTP when no answer came', async () => {
    const { result, lastResponse } = poll(path.join(tmpdir(), 'iot-agent-no-such-dps.sock'));
    const { err } = await result;
    expect(lastResponse()).toMatchObject({ statusCode: undefined, retryAfter: undefined, error: err });
    expect((lastResponse()!.error as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('lets the SDK wait and poll again when DPS throttles a signed poll, instead of ending the registration', async () => {
    const { socketPath, seen } = await dpsAnswering({ status: 429, headers: { 'retry-after': '5' } });
    const { err, result, retryAfterMs } = await poll(socketPath, { sas: SAS }).result;
    expect(seen[0]!.authorization).toBe(SAS);
    expect(err).toBeUndefined();
    expect(result).toEqual({ status: 'assigning', operationId: 'op-1' });
    expect(retryAfterMs).toBe(5_000);
  });

  it(`stretches a signed poll's Retry-After below ${MIN_POLL_SECONDS} s to ${MIN_POLL_SECONDS} s, as DPS allows 5 polls in 10 s`, async () => {
    for (const [answer, seconds] of [['1', 3], ['0', 3], ['soon', 3], ['3', 3], ['9', 9]] as const) {
      const { socketPath } = await dpsAnswering({ status: 202, headers: { 'retry-after': answer }, body: { operationId: 'op-1', status: 'assigning' } });
      expect((await poll(socketPath, { sas: SAS }).result).retryAfterMs, answer).toBe(seconds * 1000);
    }
    const { socketPath } = await dpsAnswering({ status: 202, body: { operationId: 'op-1', status: 'assigning' } });
    expect((await poll(socketPath, { sas: SAS }).result).retryAfterMs).toBe(MIN_POLL_SECONDS * 1000);
    expect(MIN_POLL_SECONDS).toBe(3);
  });

  it('leaves Retry-After alone on an unsigned request and on a final answer', async () => {
    const unsigned = await dpsAnswering({ status: 202, headers: { 'retry-after': '1' }, body: { status: 'assigning' } });
    expect((await poll(unsigned.socketPath).result).retryAfterMs).toBe(1_000);
    const assigned = await dpsAnswering({ status: 200, headers: { 'retry-after': '1' }, body: { status: 'assigned' } });
    expect((await poll(assigned.socketPath, { sas: SAS }).result).retryAfterMs).toBe(1_000);
  });

  it('does not hide a signed request\'s other failures from the SDK', async () => {
    const { socketPath } = await dpsAnswering({ status: 401, body: { message: 'unauthorized' } });
    const { result, lastResponse } = poll(socketPath, { sas: SAS });
    expect((await result).err).toBeDefined();
    expect(lastResponse()?.statusCode).toBe(401);
  });

  it('shows each answer\'s Date header, between the times the request was sent and answered', async () => {
    const { socketPath } = await dpsAnswering({ status: 200, headers: { date: 'Thu, 26 Nov 2026 12:00:00 GMT' }, body: { status: 'assigned' } });
    const dates: [string | undefined, number, number][] = [];
    const before = Date.now();
    await poll(socketPath, { onDate: (date, sentAt, receivedAt) => dates.push([date, sentAt, receivedAt]) }).result;
    expect(dates).toHaveLength(1);
    const [date, sentAt, receivedAt] = dates[0]!;
    expect(date).toBe('Thu, 26 Nov 2026 12:00:00 GMT');
    expect(sentAt).toBeGreaterThanOrEqual(before);
    expect(receivedAt).toBeGreaterThanOrEqual(sentAt);
    expect(receivedAt).toBeLessThanOrEqual(Date.now());
  });

  it('stretches a throttled signed poll\'s short Retry-After too', async () => {
    const { socketPath } = await dpsAnswering({ status: 429, headers: { 'retry-after': '1' } });
    expect((await poll(socketPath, { sas: SAS }).result).retryAfterMs).toBe(MIN_POLL_SECONDS * 1000);
  });

  it('hands a signed request that got no answer the failure below HTTP, and shows no Date', async () => {
    const dates: unknown[] = [];
    const { result, lastResponse } = poll(path.join(tmpdir(), 'iot-agent-no-such-dps.sock'), { sas: SAS, onDate: (date) => dates.push(date) });
    const { err } = await result;
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(lastResponse()?.error).toBe(err);
    expect(dates).toEqual([]);
  });

  it('trusts a private CA through one shared TLS context, and leaves no connection open after an answer', async () => {
    const { ca } = await credentials();
    const dps = await httpsDps();
    const { transport, lastResponse } = createDpsTransport(ca);
    const built = await tlsContextsBuilt(async () => {
      for (let i = 0; i < 2; i++) expect(await httpsGet(transport, '127.0.0.1', { port: dps.port })).toEqual({ err: undefined, body: '{"status":"assigned"}' });
    });
    expect(built).toBe(0);
    expect(lastResponse()).toEqual({ statusCode: 200, retryAfter: undefined, error: undefined });
    await expect.poll(dps.open).toBe(0);
  });

  it('goes through the proxy tunnel when one applies, verifying DPS against the private CA inside it', async () => {
    const { ca } = await credentials();
    const dps = await httpsDps();
    const proxy = await connectProxy(dps.port);
    const tunnel = new ProxyTunnel(parseProxyUrl(proxy.url, 'network.proxy'));
    const { transport } = createDpsTransport(ca, undefined, tunnel);
    expect(await httpsGet(transport, 'dps.example', {})).toEqual({ err: undefined, body: '{"status":"assigned"}' });
    expect(proxy.asked).toEqual(['dps.example:443']);
  });

  it('shows the Date header of an answer the SDK counts as an error too', async () => {
    const { socketPath } = await dpsAnswering({ status: 401, headers: { date: 'Thu, 26 Nov 2026 12:00:00 GMT' } });
    const dates: (string | undefined)[] = [];
    await poll(socketPath, { onDate: (date) => dates.push(date) }).result;
    expect(dates).toEqual(['Thu, 26 Nov 2026 12:00:00 GMT']);
  });
});
