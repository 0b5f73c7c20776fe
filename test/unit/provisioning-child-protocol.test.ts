import { describe, expect, it } from 'vitest';
import { ChildMessageError, parseChildMessage } from '../../agent/child/child-message.js';
import { serializeError } from '../../agent/child/serialized-error.js';
import { parseAssignment, parseProgressEvent, parseRegisterRequest } from '../../agent/provisioning/child-protocol.js';
import { stringNotContaining } from '../support/matchers.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const valid = {
  transport: 'swtpm:host=127.0.0.1,port=2321', registrationId: 'board-17', idScope: '0ne00ABCDEF',
  globalEndpoint: 'global.azure-devices-provisioning.net', ca: CA, identityKeyHandle: 0x81000101, clockOffsetMs: -7_200_000,
};
const proxy = { url: 'http://tech:s%40cret@10.0.0.8:3128', source: 'network.proxy' };

describe('the provisioning child\'s request', () => {
  it('is taken as it is when every field is valid, the CA, key slot, proxy and clock offset being optional', () => {
    expect(parseRegisterRequest(valid)).toEqual(valid);
    const minimal: Record<string, unknown> = { ...valid };
    for (const key of ['ca', 'identityKeyHandle', 'clockOffsetMs']) delete minimal[key];
    expect(parseRegisterRequest(minimal)).toEqual(minimal);
  });

  it('leaves out the optional fields the request did not carry, rather than carrying them as undefined', () => {
    const minimal: Record<string, unknown> = { ...valid };
    for (const key of ['ca', 'identityKeyHandle', 'clockOffsetMs']) delete minimal[key];
    expect(Object.keys(parseRegisterRequest(minimal)).sort()).toEqual(['globalEndpoint', 'idScope', 'registrationId', 'transport']);
  });

  it('takes clock offsets up to the ends of the board clock\'s range (year ~2286 either way)', () => {
    expect(parseRegisterRequest({ ...valid, clockOffsetMs: -1e13 }).clockOffsetMs).toBe(-1e13);
    expect(parseRegisterRequest({ ...valid, clockOffsetMs: 1e13 }).clockOffsetMs).toBe(1e13);
  });

  it('carries the proxy as its URL and source, parsed again by the config\'s rules (credentials decoded)', () => {
    expect(parseRegisterRequest({ ...valid, proxy }).proxy).toMatchObject({
      host: '10.0.0.8', port: 3128, username: 'tech', password: 's@cret', source: 'network.proxy', display: stringNotContaining('cret'),
    });
  });

  it.each([
    ['not an object', 'register', /^the request is not a JSON object$/],
    ['an array', [valid], /not a JSON object/],
    ['null', null, /not a JSON object/],
    ['an unknown field', { ...valid, argv: ['--inspect'] }, /^unknown field "argv" in the request$/],
    ['no transport', { ...valid, transport: undefined }, /transport undefined is not a non-empty string/],
    ['a bad transport', { ...valid, transport: 'tcp:127.0.0.1' }, /invalid TPM transport/],
    ['a transport with a shell in it', { ...valid, transport: 'device:/dev/tpm0; reboot' }, /invalid TPM transport/],
    ['a bad registration id', { ...valid, registrationId: 'Board 17' }, /invalid registration id/],
    ['a number as registration id', { ...valid, registrationId: 17 }, /registrationId 17 is not a non-empty string/],
    ['a bad ID scope', { ...valid, idScope: '0ne/../x' }, /idScope "0ne\/..\/x" is not valid/],
    ['an endpoint with a scheme', { ...valid, globalEndpoint: 'https://dps.example' }, /globalEndpoint .* is not valid/],
    ['a CA that is not PEM', { ...valid, ca: 'not a certificate' }, /ca is not a PEM certificate/],
    ['a huge CA', { ...valid, ca: CA + 'x'.repeat(1024 * 1024) }, /ca is longer than/],
    ['a key handle outside the identity slots', { ...valid, identityKeyHandle: 0x81010001 }, /identityKeyHandle 2164326401 is not one of the identity key slots/],
    ['a key handle that is text', { ...valid, identityKeyHandle: '0x81000100' }, /identityKeyHandle "0x81000100" is not one/],
    ['a clock offset that is not a number', { ...valid, clockOffsetMs: '5' }, /clockOffsetMs "5" is not a time/],
    ['a clock offset out of range', { ...valid, clockOffsetMs: 1e300 }, /clockOffsetMs 1e\+300 is not a time/],
    ['a clock offset that is not a number at all (NaN)', { ...valid, clockOffsetMs: NaN }, /^clockOffsetMs NaN is not a time in milliseconds$/],
    ['a clock offset just past the board clock\'s range', { ...valid, clockOffsetMs: -1e13 - 1 }, /clockOffsetMs -10000000000001 is not a time/],
    ['a proxy without a URL', { ...valid, proxy: { source: proxy.source } }, /^proxy\.url undefined is not a non-empty string$/],
    ['a proxy without its source', { ...valid, proxy: { url: proxy.url } }, /^proxy\.source undefined is not a non-empty string$/],
    ['a proxy as a bare string', { ...valid, proxy: proxy.url }, /proxy is not a JSON object/],
    ['a proxy with an unknown field', { ...valid, proxy: { ...proxy, noProxy: '*' } }, /unknown field "noProxy" in proxy/],
    ['a proxy that is not http://', { ...valid, proxy: { ...proxy, url: 'https://10.0.0.8:3128' } }, /proxy: network.proxy: the scheme must be http/],
    ['a proxy without a port', { ...valid, proxy: { ...proxy, url: 'http://tech:s%40cret@10.0.0.8' } }, /proxy: network.proxy: the proxy port is missing/],
  ])('is refused, naming the field, when it has %s', (_what, message, expected) => {
    let err: unknown;
    try {
      parseRegisterRequest(message);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ChildMessageError);
    expect((err as Error).message).toMatch(expected);
  });
});

describe('what the provisioning child sends back', () => {
  it('is progress events, then a result or a failure', () => {
    expect(parseChildMessage({ kind: 'progress', event: { step: 'challenge' } })).toEqual({ kind: 'progress', event: { step: 'challenge' } });
    expect(parseChildMessage({ kind: 'done', result: 1 })).toEqual({ kind: 'done', result: 1 });
    const error = serializeError(new Error('x'));
    expect(parseChildMessage(JSON.parse(JSON.stringify({ kind: 'failed', error })))).toMatchObject({ kind: 'failed', error: { $error: 'Error', message: 'x' } });
    expect(parseProgressEvent({ step: 'challenge' })).toEqual({ step: 'challenge' });
    expect(parseProgressEvent({ step: 'assigned', detail: 'hub as dev' })).toEqual({ step: 'assigned', detail: 'hub as dev' });
    const reading = { date: 'Tue, 02 Jan 2026 03:04:05 GMT', sentAt: 1_767_322_000_000, receivedAt: 1_767_322_000_250 };
    expect(parseProgressEvent(reading)).toEqual(reading);
    expect(parseProgressEvent({ sentAt: 1, receivedAt: 2 })).toEqual({ sentAt: 1, receivedAt: 2 });
    // The epoch and the far end of the range are times too (a board whose clock was never set).
    expect(parseProgressEvent({ sentAt: 0, receivedAt: 1e13 })).toEqual({ sentAt: 0, receivedAt: 1e13 });
    expect(parseAssignment({ assignedHub: 'hub', deviceId: 'dev', extra: 1 })).toEqual({ assignedHub: 'hub', deviceId: 'dev', extra: 1 });
  });

  it.each([
    ['no object', () => parseChildMessage(7), /the message is not a JSON object/],
    ['an unknown kind', () => parseChildMessage({ kind: 'shell' }), /unknown message kind "shell"/],
    ['a failure without an error', () => parseChildMessage({ kind: 'failed' }), /the error is not a JSON object/],
    ['neither a step nor a clock reading', () => parseProgressEvent({}), /is neither a step nor a clock reading/],
    ['a step that is a string', () => parseProgressEvent('challenge'), /the progress event is not a JSON object/],
    ['a step of no known name', () => parseProgressEvent({ step: 'connected' }), /step "connected" is not one of challenge, activated, assigned/],
    ['a step with a long detail', () => parseProgressEvent({ step: 'assigned', detail: 'x'.repeat(2000) }), /detail is longer/],
    ['a step with an extra field', () => parseProgressEvent({ step: 'challenge', sentAt: 1 }), /unknown field "sentAt" in the step/],
    ['a clock reading with a field of its own', () => parseProgressEvent({ sentAt: 1, receivedAt: 2, offset: 3 }), /^unknown field "offset" in the clock reading$/],
    ['a clock reading past the year ~2286', () => parseProgressEvent({ sentAt: 1, receivedAt: 1e13 + 1 }), /^receivedAt 10000000000001 is not a time in milliseconds$/],
    ['a clock reading without its receive time', () => parseProgressEvent({ sentAt: 1 }), /receivedAt undefined is not a time/],
    ['a clock reading with a negative time', () => parseProgressEvent({ sentAt: -1, receivedAt: 2 }), /sentAt -1 is not a time/],
    ['a clock reading with a long date', () => parseProgressEvent({ date: 'x'.repeat(100), sentAt: 1, receivedAt: 2 }), /date is longer than 64/],
    ['a clock reading with a date that is a number', () => parseProgressEvent({ date: 5, sentAt: 1, receivedAt: 2 }), /date 5 is not a non-empty string/],
    ['an assignment without a hub', () => parseAssignment({ deviceId: 'dev' }), /assignedHub/],
    ['an assignment without a device id', () => parseAssignment({ assignedHub: 'hub' }), /^deviceId undefined is not a non-empty string$/],
    ['an assignment that is a string', () => parseAssignment('hub'), /the assignment is not a JSON object/],
  ])('is refused when it is %s', (_what, parse, expected) => {
    expect(parse).toThrow(ChildMessageError);
    expect(parse).toThrow(expected);
  });
});
