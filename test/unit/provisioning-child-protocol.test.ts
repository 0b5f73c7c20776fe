import { describe, expect, it } from 'vitest';
import { ChildMessageError, parseChildMessage } from '../../agent/child/child-message.js';
import { serializeError } from '../../agent/child/serialized-error.js';
import { parseAssignment, parseRegisterRequest, parseStepEvent } from '../../agent/provisioning/child-protocol.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const valid = {
  transport: 'swtpm:host=127.0.0.1,port=2321', registrationId: 'board-17', idScope: '0ne00ABCDEF',
  globalEndpoint: 'global.azure-devices-provisioning.net', ca: CA,
};

describe('the provisioning child\'s request', () => {
  it('is taken as it is when every field is valid, the CA being optional', () => {
    expect(parseRegisterRequest(valid)).toEqual(valid);
    const withoutCa: Record<string, unknown> = { ...valid };
    delete withoutCa.ca;
    expect(parseRegisterRequest(withoutCa)).toEqual(withoutCa);
  });

  it.each([
    ['not an object', 'register', /not a JSON object/],
    ['an array', [valid], /not a JSON object/],
    ['null', null, /not a JSON object/],
    ['an unknown field', { ...valid, argv: ['--inspect'] }, /unknown field "argv"/],
    ['no transport', { ...valid, transport: undefined }, /transport undefined is not a non-empty string/],
    ['a bad transport', { ...valid, transport: 'tcp:127.0.0.1' }, /invalid TPM transport/],
    ['a transport with a shell in it', { ...valid, transport: 'device:/dev/tpm0; reboot' }, /invalid TPM transport/],
    ['a bad registration id', { ...valid, registrationId: 'Board 17' }, /invalid registration id/],
    ['a number as registration id', { ...valid, registrationId: 17 }, /registrationId 17 is not a non-empty string/],
    ['a bad ID scope', { ...valid, idScope: '0ne/../x' }, /idScope "0ne\/..\/x" is not valid/],
    ['an endpoint with a scheme', { ...valid, globalEndpoint: 'https://dps.example' }, /globalEndpoint .* is not valid/],
    ['a CA that is not PEM', { ...valid, ca: 'not a certificate' }, /ca is not a PEM certificate/],
    ['a huge CA', { ...valid, ca: CA + 'x'.repeat(1024 * 1024) }, /ca is longer than/],
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
    expect(parseStepEvent({ step: 'challenge' })).toEqual({ step: 'challenge' });
    expect(parseStepEvent({ step: 'assigned', detail: 'hub as dev' })).toEqual({ step: 'assigned', detail: 'hub as dev' });
    expect(parseAssignment({ assignedHub: 'hub', deviceId: 'dev', extra: 1 })).toEqual({ assignedHub: 'hub', deviceId: 'dev', extra: 1 });
  });

  it.each([
    ['no object', () => parseChildMessage(7), /the message is not a JSON object/],
    ['an unknown kind', () => parseChildMessage({ kind: 'shell' }), /unknown message kind "shell"/],
    ['a failure without an error', () => parseChildMessage({ kind: 'failed' }), /the error is not a JSON object/],
    ['a step without a name', () => parseStepEvent({}), /step undefined/],
    ['a step that is a string', () => parseStepEvent('challenge'), /the step is not a JSON object/],
    ['a step with a long detail', () => parseStepEvent({ step: 'assigned', detail: 'x'.repeat(2000) }), /detail is longer/],
    ['an assignment without a hub', () => parseAssignment({ deviceId: 'dev' }), /assignedHub/],
    ['an assignment that is a string', () => parseAssignment('hub'), /the assignment is not a JSON object/],
  ])('is refused when it is %s', (_what, parse, expected) => {
    expect(parse).toThrow(ChildMessageError);
    expect(parse).toThrow(expected);
  });
});
