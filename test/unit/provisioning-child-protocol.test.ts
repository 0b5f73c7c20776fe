import { describe, expect, it } from 'vitest';
import { ChildMessageError, parseChildEvent, parseRegisterRequest } from '../../agent/provisioning/child-protocol.js';
import { serializeError } from '../../agent/serialized-error.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const valid = {
  kind: 'register', transport: 'swtpm:host=127.0.0.1,port=2321', registrationId: 'board-17', idScope: '0ne00ABCDEF',
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
    ['another kind', { ...valid, kind: 'exec' }, /kind "exec" is not "register"/],
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

describe('the provisioning child\'s events', () => {
  it('are steps, an assignment or a failure', () => {
    expect(parseChildEvent({ kind: 'step', step: 'challenge' })).toEqual({ kind: 'step', step: 'challenge' });
    expect(parseChildEvent({ kind: 'step', step: 'assigned', detail: 'hub as dev' })).toEqual({ kind: 'step', step: 'assigned', detail: 'hub as dev' });
    expect(parseChildEvent({ kind: 'assigned', assignment: { assignedHub: 'hub', deviceId: 'dev' } }))
      .toEqual({ kind: 'assigned', assignment: { assignedHub: 'hub', deviceId: 'dev' } });
    const error = serializeError(new Error('x'));
    expect(parseChildEvent(JSON.parse(JSON.stringify({ kind: 'failed', error })))).toMatchObject({ kind: 'failed', error: { $error: 'Error', message: 'x' } });
  });

  it.each([
    ['no object', 7, /not a JSON object/],
    ['an unknown kind', { kind: 'shell' }, /unknown event kind "shell"/],
    ['a step without a name', { kind: 'step' }, /step undefined/],
    ['a step with a long detail', { kind: 'step', step: 'assigned', detail: 'x'.repeat(2000) }, /detail is longer/],
    ['an assignment without a hub', { kind: 'assigned', assignment: { deviceId: 'dev' } }, /assignedHub/],
    ['an assignment that is a string', { kind: 'assigned', assignment: 'hub' }, /assignment is not a JSON object/],
    ['a failure without an error', { kind: 'failed' }, /error is not a JSON object/],
  ])('are refused when they are %s', (_what, message, expected) => {
    expect(() => parseChildEvent(message)).toThrow(expected);
  });
});
