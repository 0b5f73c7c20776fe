import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { observedDpsHttp, type RequestDone } from '../../agent/azure-sdk/dps-requests.js';

/**
 * The HTTP layer under the SDK's DPS transport (its `_httpBase`, pinned by
 * azure-sdk-contract.test.ts), called the ways azure-iot-http-base allows:
 * buildRequest(method, path, headers, host, [options], done). Plain HTTP to a server on loopback.
 */
interface HttpLayer {
  buildRequest(method: string, path: string, headers: object | undefined, host: unknown, ...rest: unknown[]): http.ClientRequest;
}
const layerOf = (transport: object) => (transport as { _httpBase: HttpLayer })._httpBase;

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => { s.closeAllConnections(); s.close(resolve); })));
});

/** A server on 127.0.0.1 that answers every request 200 with the request's method and path. */
async function answering(): Promise<number> {
  const server = http.createServer((request, response) => {
    request.resume();
    response.end(`${request.method} ${request.url}`);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** An observer that records whether each request was signed and passes every answer on unchanged. */
function recording(): { signed: boolean[]; observe: (signed: boolean, done: RequestDone) => RequestDone } {
  const signed: boolean[] = [];
  return { signed, observe: (isSigned, done) => { signed.push(isSigned); return done; } };
}

function sent(layer: HttpLayer, headers: object | undefined, host: unknown, ...options: unknown[]): Promise<{ err: Error | undefined; body: unknown }> {
  return new Promise((resolve) => {
    layer.buildRequest('GET', '/0ne1/registrations/r1', headers, host, ...options, (err: Error | undefined, body: unknown) => resolve({ err: err ?? undefined, body })).end();
  });
}

describe('the DPS transport\'s HTTP layer, observed', () => {
  it('sees a request with request options (the six-argument form) and keeps the options: port and request function', async () => {
    const port = await answering();
    const { signed, observe } = recording();
    const layer = layerOf(observedDpsHttp(observe));
    const answer = await sent(layer, { Authorization: 'SharedAccessSignature sr=x' }, '127.0.0.1', { port, request: http.request });
    expect(answer).toEqual({ err: undefined, body: 'GET /0ne1/registrations/r1' });
    expect(signed).toEqual([true]);
  });

  it('counts a request without any headers as unsigned', async () => {
    const port = await answering();
    const { signed, observe } = recording();
    const answer = await sent(layerOf(observedDpsHttp(observe)), undefined, '127.0.0.1', { port, request: http.request });
    expect(answer.err).toBeUndefined();
    expect(signed).toEqual([false]);
  });

  it('sends through the HTTP agent it is given as an option (how a proxy tunnel or a shared TLS context gets in)', async () => {
    const port = await answering();
    let connections = 0;
    const agent = new (class extends http.Agent {
      override createConnection(...args: Parameters<http.Agent['createConnection']>) {
        connections++;
        return super.createConnection(...args);
      }
    })();
    const { observe } = recording();
    const answer = await sent(layerOf(observedDpsHttp(observe, { http: { agent } })), {}, '127.0.0.1', { port, request: http.request });
    expect(answer.err).toBeUndefined();
    expect(connections).toBe(1);
    agent.destroy();
  });
});
