import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hubErrors, SimHubError } from '../cloud/errors.js';
import { parseJsonBody } from '../cloud/http.js';
import { parseC2dBody } from '../cloud/hub/admin-api.js';
import { C2dQueues, c2dExpired, c2dPacket } from '../cloud/hub/c2d.js';
import { etagMatches } from '../cloud/hub/hub-core.js';
import { parseMethodRequest } from '../cloud/hub/method-request.js';
import { decodePropertyBag } from '../cloud/hub/property-bag.js';

describe('service request bodies', () => {
  it('fills the SDK\'s method defaults', () => {
    expect(parseMethodRequest({ methodName: 'reboot' })).toEqual({ methodName: 'reboot', payload: null, responseTimeoutInSeconds: 30, connectTimeoutInSeconds: 0 });
  });

  it('refuses method bodies IoT Hub refuses', () => {
    for (const body of [null, [], 'x', {}, { methodName: '' }, { methodName: 'a#' }, { methodName: 'x'.repeat(129) },
      { methodName: 'm', responseTimeoutInSeconds: 4 }, { methodName: 'm', responseTimeoutInSeconds: 301 },
      { methodName: 'm', responseTimeoutInSeconds: 5.5 }, { methodName: 'm', connectTimeoutInSeconds: -1 }, { methodName: 'm', connectTimeoutInSeconds: '5' }]) {
      expect(() => parseMethodRequest(body), JSON.stringify(body)).toThrow(SimHubError);
    }
  });

  it('refuses a method payload over 128 KiB with 413', () => {
    expect(() => parseMethodRequest({ methodName: 'm', payload: 'x'.repeat(128 * 1024) }))
      .toThrow(expect.objectContaining({ status: 413 }));
  });

  it('refuses empty and broken JSON with 400 IotHubFormatError', () => {
    for (const text of ['', '{', 'nul', '\u0000']) {
      expect(() => parseJsonBody(Buffer.from(text), hubErrors)).toThrow(expect.objectContaining({ status: 400, code: 'IotHubFormatError' }));
    }
    for (let i = 0; i < 500; i++) {
      try {
        parseJsonBody(randomBytes(1 + (i % 50)), hubErrors);
      } catch (err) {
        expect(err).toBeInstanceOf(SimHubError);
      }
    }
  });

  it('writes errors the way azure-iothub parses them', () => {
    const body = hubErrors.deviceNotFound('a;b').body('tracking-id');
    const [code, text] = (body.Message as string).split(';');
    expect(code).toBe('ErrorCode:DeviceNotFound');
    expect(text).toBe('Device a,b not registered');
  });

  it('matches If-Match the way IoT Hub does', () => {
    expect(etagMatches(undefined, 'AAA=')).toBe(true);
    expect(etagMatches('"*"', 'AAA=')).toBe(true);
    expect(etagMatches('"AAA="', 'AAA=')).toBe(true);
    expect(etagMatches('AAA=', 'AAA=')).toBe(true);
    expect(etagMatches('"AAB="', 'AAA=')).toBe(false);
  });
});

describe('C2D messages', () => {
  it('parses the admin API body and refuses the rest', () => {
    expect(parseC2dBody({ data: 'hi', messageId: 'm' })).toMatchObject({ data: 'hi', messageId: 'm' });
    for (const body of [null, {}, { data: 1 }, { data: 'a', dataBase64: 'YQ==' }, { dataBase64: 'a b' }, { data: 'a', properties: [] },
      { data: 'a', properties: { k: 1 } }, { data: 'a', messageId: 'x'.repeat(129) }]) {
      expect(() => parseC2dBody(body), JSON.stringify(body)).toThrow(SimHubError);
    }
  });

  it('puts system and application properties in the topic\'s property bag, with the expiry as $.exp (1 hour by default)', () => {
    const before = Date.now();
    const { topic, messageId, expiry } = c2dPacket('d1', { data: 'x', correlationId: 'c', properties: { 'a b': '1&2' } });
    const prefix = 'devices/d1/messages/devicebound/';
    expect(topic.startsWith(prefix)).toBe(true);
    expect(Object.fromEntries(decodePropertyBag(topic.slice(prefix.length)))).toEqual({
      '$.mid': messageId, '$.to': '/devices/d1/messages/deviceBound', '$.exp': expiry.toISOString(), '$.cid': 'c', 'a b': '1&2',
    });
    expect(expiry.getTime() - before).toBeGreaterThanOrEqual(3_600_000 - 50);
    expect(expiry.getTime() - before).toBeLessThanOrEqual(3_600_000 + 1_000);
  });

  it('knows an expired C2D topic by its $.exp, and holds no expired message in a queue', () => {
    const past = c2dPacket('d1', { data: 'x', expiryTimeUtc: new Date(Date.now() - 1) });
    const future = c2dPacket('d1', { data: 'y' });
    expect(c2dExpired(past.topic)).toBe(true);
    expect(c2dExpired(future.topic)).toBe(false);
    expect(c2dExpired('devices/d1/messages/devicebound/%24.exp=not-a-date')).toBe(false);
    const queues = new C2dQueues();
    queues.hold('d1', past);
    queues.hold('d1', future);
    expect(queues.take('d1')).toEqual([future]);
    expect(queues.expired).toBe(1);
  });
});
