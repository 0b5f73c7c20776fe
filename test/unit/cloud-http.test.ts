import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpsErrors, hubErrors, SimHttpError } from '../cloud/errors.js';
import { decodeSegment, readJsonBody, sendError, sendJson } from '../cloud/http.js';
import { stringMatching } from '../support/matchers.js';

const LIMIT = 1024;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

describe('the local cloud\'s request bodies, as DPS and the hub refuse them', () => {
  let server: http.Server;
  let port: number;

  beforeAll(async () => {
    // POST /dps or /hub: the body parsed with that service's refusals, echoed back.
    server = http.createServer((req, res) => {
      const refusals = req.url === '/dps' ? dpsErrors : hubErrors;
      readJsonBody(req, LIMIT, refusals).then((value) => sendJson(res, 200, { value }), (err: unknown) => {
        req.resume();
        sendError(res, err instanceof SimHttpError ? err : refusals.internal(String(err)), 'tracking-1');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /**
   * Sends `chunks` as the body: with their Content-Length, chunked without one (`streamed`),
   * or declaring `declared` bytes (the answer then ends the request).
   */
  function post(service: 'dps' | 'hub', chunks: Buffer[], streamed = false, declared?: number): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const length = declared ?? chunks.reduce((n, c) => n + c.length, 0);
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/${service}`, agent: false,
        headers: streamed ? {} : { 'content-length': length } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown> });
          req.destroy();
        });
      });
      req.on('error', reject);
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });
  }

  const text = (s: string) => [Buffer.from(s)];

  it('hands over a JSON body up to the limit, sent whole or in chunks', async () => {
    expect((await post('dps', text('{"a":[1,2]}'))).body).toEqual({ value: { a: [1, 2] } });
    const atLimit = JSON.stringify({ pad: 'x'.repeat(LIMIT - 10) });
    expect(Buffer.byteLength(atLimit)).toBe(LIMIT);
    expect((await post('hub', [Buffer.from(atLimit.slice(0, 500)), Buffer.from(atLimit.slice(500))], true)).status).toBe(200);
  });

  it.each([
    ['empty', ''], ['cut short', '{"methodName":'], ['a bare word', 'nul'], ['a NUL byte', '\u0000'], ['trailing garbage', '{"a":1}x'],
  ])('refuses a body that is %s with DPS\'s 400004 and IoT Hub\'s 400 IotHubFormatError', async (_what, body) => {
    const dps = await post('dps', text(body));
    expect(dps.status).toBe(400);
    expect(dps.body).toMatchObject({ errorCode: 400004, trackingId: 'tracking-1', message: stringMatching(/^Request body is (empty|not valid JSON)$/) });
    expect(dps.headers['x-ms-request-id']).toBe('tracking-1');
    const hub = await post('hub', text(body));
    expect(hub.status).toBe(400);
    expect(hub.headers['iothub-errorcode']).toBe('IotHubFormatError');
    expect(hub.body.Message).toMatch(/^ErrorCode:IotHubFormatError;Request body is (empty|not valid JSON)$/);
  });

  it('refuses random bytes with 400, never anything else', async () => {
    for (let i = 0; i < 20; i++) {
      const bytes = randomBytes(1 + i * 7);
      if (bytes[0]! >= 0x30 && bytes[0]! <= 0x39) bytes[0] = 0x7b; // a lone digit would be valid JSON
      expect((await post(i % 2 ? 'dps' : 'hub', [bytes])).status).toBe(400);
    }
  });

  it('refuses a body over the limit with 413 when its Content-Length says so', async () => {
    const dps = await post('dps', [Buffer.alloc(LIMIT + 1, 0x20)]);
    expect(dps.status).toBe(413);
    expect(dps.body).toMatchObject({ errorCode: 413001, message: `the request body exceeds ${LIMIT} bytes` });
    const hub = await post('hub', [Buffer.alloc(LIMIT + 1, 0x20)]);
    expect(hub.status).toBe(413);
    expect(hub.headers['iothub-errorcode']).toBe('MessageTooLarge');
  });

  it('refuses a body whose Content-Length is over the limit without waiting for it', async () => {
    const answer = await post('dps', text('{"a":'), false, 10 * 1024 * 1024);
    expect(answer.status).toBe(413);
    expect((await post('hub', text('{"a":'), false, LIMIT + 1)).headers['iothub-errorcode']).toBe('MessageTooLarge');
  });

  it('refuses a streamed body once it grows over the limit, and the client still reads the answer', async () => {
    const chunks = Array.from({ length: 20 }, () => Buffer.alloc(600, 0x20));
    const dps = await post('dps', chunks, true);
    expect(dps.status).toBe(413);
    expect(dps.body.errorCode).toBe(413001);
    expect((await post('hub', chunks, true)).status).toBe(413);
  });

  it('refuses a path segment that is not valid percent-encoding with 400', () => {
    expect(decodeSegment('dev%20one', dpsErrors)).toBe('dev one');
    expect(() => decodeSegment('%zz', dpsErrors)).toThrow(expect.objectContaining({ status: 400, errorCode: 400004 }));
    expect(() => decodeSegment('%E0%A4%A', hubErrors)).toThrow(expect.objectContaining({ status: 400, code: 'IotHubFormatError' }));
  });
});
