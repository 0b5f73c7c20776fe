import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { classifyDpsFailure, DpsError } from '../../agent/provisioning/dps-error.js';
import type { DpsResponse } from '../../agent/provisioning/dps-transport.js';

const target = () => ({ globalEndpoint: 'dps.example', idScope: '0ne1', registrationId: 'r1' });
const where = 'DPS dps.example (ID scope 0ne1, registration r1)';
const answered = (statusCode: number, retryAfter?: string): DpsResponse => ({ statusCode, retryAfter, error: undefined });
/** What the SDK rejects with when DPS ends a registration with a status: DPS's body as `result`. */
const endedWith = (result: unknown) => Object.assign(new Error('registration ended'), { result });

describe('DPS failures: what the agent does next', () => {
  it('blames the TPM, not DPS, when the TPM failed under the SDK, and tries again', () => {
    const cause = new AgentError('TPM2_ActivateCredential timed out');
    const err = classifyDpsFailure(cause, answered(401), target(), true);
    expect(err).toMatchObject({ message: `TPM failed during registration with ${where}`, retryable: true, operatorMustAct: false, httpStatus: 401, cause });
  });

  it('honours DPS\'s throttling with its Retry-After', () => {
    expect(classifyDpsFailure(new Error('x'), answered(429, '12'), target(), false)).toMatchObject({
      message: `${where} is throttling registrations (429)`, retryable: true, operatorMustAct: false, retryAfterMs: 12_000, httpStatus: 429,
    });
  });

  it.each([500, 503, 599])('tries again when DPS is unavailable (%i)', (status) => {
    expect(classifyDpsFailure(new Error('x'), answered(status), target(), false)).toMatchObject({
      message: `${where} is unavailable (${status})`, retryable: true, operatorMustAct: false, retryAfterMs: undefined,
    });
  });

  it.each([401, 403])('leaves a refusal (%i) to an operator, pointing at the enrollment', (status) => {
    const err = classifyDpsFailure(new Error('x'), answered(status), target(), false);
    expect(err).toMatchObject({ message: `${where} refused the device (${status})`, retryable: false, operatorMustAct: true });
    expect(err.hint).toBe('check that an individual enrollment exists for this registration id with this EK (iot-agent tpm info) and is enabled');
  });

  it('leaves an unknown device (404) to an operator, pointing at the ID scope', () => {
    expect(classifyDpsFailure(new Error('x'), answered(404), target(), false)).toMatchObject({
      message: `${where} does not know this device (404)`, retryable: false, operatorMustAct: true, hint: 'check the ID scope and that the enrollment exists',
    });
  });

  it('leaves a rejected request (400) to an operator', () => {
    expect(classifyDpsFailure(new Error('x'), answered(400), target(), false)).toMatchObject({
      message: `${where} rejected the request (400)`, retryable: false, operatorMustAct: true, hint: undefined,
    });
  });

  it('calls any other answer, or none, a network problem worth retrying, keeping the lower-level cause', () => {
    const below = new Error('getaddrinfo ENOTFOUND dps.example');
    const unreached = classifyDpsFailure(new Error('vague'), { statusCode: undefined, retryAfter: undefined, error: below }, target(), false);
    expect(unreached).toMatchObject({ message: `${where} could not be reached`, retryable: true, operatorMustAct: false, cause: below });
    expect(unreached.hint).toBe('check the network, DNS, the clock and tls.extraCaFile for a private CA');
    const sdk = new Error('vague');
    expect(classifyDpsFailure(sdk, undefined, target(), false)).toMatchObject({ message: `${where} could not be reached`, cause: sdk, httpStatus: undefined });
    expect(classifyDpsFailure(sdk, answered(409), target(), false)).toMatchObject({ message: `${where} could not be reached`, retryable: true, httpStatus: 409 });
  });

  it('reads a status DPS ended the registration with from the registration state first, then from the operation', () => {
    const fromState = classifyDpsFailure(endedWith({ status: 'assigning', registrationState: { status: 'failed', errorCode: 1, errorMessage: 'a' } }), undefined, target(), false);
    expect(fromState).toMatchObject({ status: 'failed', errorCode: 1, errorMessage: 'a' });
    const fromOperation = classifyDpsFailure(endedWith({ status: 'disabled', errorCode: 2, errorMessage: 'b' }), undefined, target(), false);
    expect(fromOperation).toMatchObject({ status: 'disabled', errorCode: 2, errorMessage: 'b', operatorMustAct: true });
    const mixed = classifyDpsFailure(endedWith({ errorCode: 3, errorMessage: 'c', registrationState: { status: 'failed' } }), undefined, target(), false);
    expect(mixed).toMatchObject({ status: 'failed', errorCode: 3, errorMessage: 'c' });
  });

  it('names an unexpected status as DPS gave it, cut short, and retries it on the ordinary backoff', () => {
    const err = classifyDpsFailure(endedWith({ status: `weird-${'x'.repeat(60)}` }), answered(200), target(), false);
    expect(err.message).toBe(`${where} ended the registration with status "weird-${'x'.repeat(34)}"`);
    expect(err).toMatchObject({ retryable: true, operatorMustAct: false, errorCode: undefined, errorMessage: undefined });
    expect(err.hint).toBe('DPS could not assign the device to an IoT hub; if this persists, check the linked hubs and the enrollment\'s allocation');
  });

  it('keeps DPS\'s reason short and only when it is of the right type', () => {
    const long = classifyDpsFailure(endedWith({ registrationState: { status: 'failed', errorCode: '400209', errorMessage: 'm'.repeat(400) } }), undefined, target(), false);
    expect(long.errorCode).toBeUndefined();
    expect(long.errorMessage).toBe('m'.repeat(300));
    expect(long.message).toBe(`${where} ended the registration with status "failed" (${'m'.repeat(300)})`);
    const codeOnly = classifyDpsFailure(endedWith({ registrationState: { status: 'failed', errorCode: 400209, errorMessage: 7 } }), undefined, target(), false);
    expect(codeOnly.message).toBe(`${where} ended the registration with status "failed" (400209)`);
    expect(codeOnly.errorMessage).toBeUndefined();
  });

  it('ignores a result without a status, or one that is not an object', () => {
    for (const result of [null, 'failed', 7, { registrationState: null }, { status: 5 }, { registrationState: { status: 5 } }]) {
      expect(classifyDpsFailure(endedWith(result), answered(503), target(), false).message, JSON.stringify(result)).toBe(`${where} is unavailable (503)`);
    }
  });

  it('keeps what the SDK reported as the cause of a throttled, unavailable or rejected request', () => {
    for (const status of [429, 503, 400]) {
      const sdk = new Error(`status ${status}`);
      expect(classifyDpsFailure(sdk, answered(status), target(), false).cause, String(status)).toBe(sdk);
    }
  });

  it('calls a failure that came without any error object a network problem', () => {
    const err = classifyDpsFailure(undefined, undefined, target(), false);
    expect(err.message).toBe(`${where} could not be reached`);
    expect(err.retryable).toBe(true);
  });

  it('carries what it knows as plain fields', () => {
    const err = new DpsError('m', { retryable: false, retryAfterMs: 5, httpStatus: 200, status: 'failed', errorCode: 1, errorMessage: 'e', operatorMustAct: true }, { hint: 'h' });
    expect({ ...err }).toMatchObject({ retryable: false, retryAfterMs: 5, httpStatus: 200, status: 'failed', errorCode: 1, errorMessage: 'e', operatorMustAct: true, hint: 'h' });
    expect(err).toBeInstanceOf(AgentError);
  });
});
