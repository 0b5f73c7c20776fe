import { describe, expect, it } from 'vitest';
import { AgentError, describeError, ExitCode, oneLine } from '../../agent/lib/errors.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { deserializeError, errorClassesIn, serializeError, type ErrorClass } from '../../agent/child/serialized-error.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';

/** Through JSON, as over the IPC channel. */
const across = (err: unknown, classes: ErrorClass[] = [DpsError, AgentError, TpmUnavailableError]) =>
  deserializeError(JSON.parse(JSON.stringify(serializeError(err))), classes);

/** A class with a field nobody listed anywhere, as a later change to an error class would add. */
class DpsStatusError extends DpsError {
  static override readonly errorName: string = 'DpsStatusError';
  readonly details = { attempts: [1, 2], at: new Date('2026-01-02T03:04:05Z'), raw: Buffer.from([1, 2, 3]), nothing: undefined };
}

describe('errors across a process boundary', () => {
  it('come back as the same class with every own enumerable field, the message, the stack and the cause chain', () => {
    const cause = new TpmUnavailableError('swtpm 127.0.0.1:2321: TPM2_HMAC failed', { hint: 'start swtpm' });
    const original = new DpsStatusError('DPS refused the device (failed)', {
      retryable: false, retryAfterMs: 7_000, httpStatus: 200, status: 'failed', errorCode: 400207, errorMessage: 'Custom allocation failed', operatorMustAct: false,
    }, { cause, hint: 'check the enrollment' });
    const copy = across(original, [DpsStatusError, TpmUnavailableError]);
    expect(copy).toBeInstanceOf(DpsStatusError);
    expect(copy).toBeInstanceOf(DpsError);
    expect(copy).toBeInstanceOf(AgentError);
    expect(Object.keys(copy)).toEqual(Object.keys(original));
    for (const key of Object.keys(original)) expect((copy as never)[key], key).toEqual((original as never)[key]);
    expect('nothing' in (copy as DpsStatusError).details).toBe(true);
    expect(Buffer.isBuffer((copy as DpsStatusError).details.raw)).toBe(true);
    expect(copy.message).toBe(original.message);
    expect(copy.stack).toBe(original.stack);
    expect(copy.cause).toBeInstanceOf(TpmUnavailableError);
    expect((copy.cause as TpmUnavailableError).exitCode).toBe(ExitCode.tpmUnavailable);
    expect(describeError(copy)).toBe(describeError(original));
    expect(oneLine(copy)).toBe(oneLine(original));
  });

  it('keep fields that are undefined, and numbers JSON cannot carry', () => {
    const original = new DpsError('x', { retryable: true, operatorMustAct: false });
    (original as unknown as Record<string, unknown>).ratio = Number.NaN;
    (original as unknown as Record<string, unknown>).big = 12345678901234567890n;
    const copy = across(original) as DpsError & { ratio: number; big: bigint };
    expect(Object.keys(copy)).toContain('retryAfterMs');
    expect(copy.retryAfterMs).toBeUndefined();
    expect(copy.ratio).toBeNaN();
    expect(copy.big).toBe(12345678901234567890n);
  });

  it('come back as an Error keeping their name when the class is not known on this side', () => {
    const sdk = Object.assign(new Error('registration failed'), { name: 'DeviceRegistrationFailedError', result: { status: 'failed' } });
    const copy = across(sdk);
    expect(copy.constructor).toBe(Error);
    expect(copy.name).toBe('DeviceRegistrationFailedError');
    expect((copy as unknown as { result: unknown }).result).toEqual({ status: 'failed' });
    expect(across(new TypeError('bad'))).toBeInstanceOf(TypeError);
  });

  it('survive circular and very deep fields, and values that are not errors', () => {
    const looped: Record<string, unknown> = {};
    looped.self = looped;
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 50; i++) deep = deep.next = {};
    const err = Object.assign(new AgentError('x'), { looped, root, fn: () => 1 });
    const copy = across(err) as AgentError & { looped: { self: unknown }; fn: unknown };
    expect(copy.looped.self).toBe('[circular reference]');
    expect(copy.fn).toBe('[function]');
    expect(across('a plain string').message).toBe('a plain string');
  });

  it('turn malformed input into an Error that says so, without throwing', () => {
    for (const bad of [null, 42, 'x', [], {}, { $error: 'DpsError' }, { $error: 1, message: 'm', fields: {} }, { $error: 'E', message: 'm', fields: [] }]) {
      const err = deserializeError(bad, [DpsError]);
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toMatch(/malformed error/);
    }
  });

  it('never change a prototype, whatever the field names', () => {
    const data = { $error: 'AgentError', message: 'm', fields: { ['__proto__']: { $object: { polluted: true } }, constructor: 'c' } };
    const err = deserializeError(JSON.parse(JSON.stringify(data)), [AgentError]);
    expect(err).toBeInstanceOf(AgentError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(err, '__proto__')?.value).toEqual({ polluted: true });
  });

  it('come back as the class that declares their name, whatever the bundle renamed the classes to', () => {
    // Two classes a minifier named alike, in two chunks.
    class ProbeError extends AgentError {
      static override readonly errorName: string = 'ProbeError';
    }
    class ClockError extends AgentError {
      static override readonly errorName: string = 'ClockError';
    }
    for (const cls of [ProbeError, ClockError]) Object.defineProperty(cls, 'name', { value: 'e' });
    expect(serializeError(new ProbeError('p')).$error).toBe('ProbeError');
    expect(across(new ProbeError('p'), [ProbeError, ClockError])).toBeInstanceOf(ProbeError);
    expect(across(new ClockError('c'), [ProbeError, ClockError])).toBeInstanceOf(ClockError);
  });

  it('come back as the parent class when their own class does not name itself', () => {
    class UnnamedDpsError extends DpsError {}
    const copy = across(new UnnamedDpsError('x', { retryable: true, operatorMustAct: false }), [UnnamedDpsError, DpsError]);
    expect(copy.constructor).toBe(DpsError);
  });

  it('finds the agent\'s error classes among a module\'s exports', () => {
    expect(errorClassesIn({ DpsError, AgentError, TypeError, notAClass: 1, fn: () => 1, Date })).toEqual([DpsError, AgentError]);
  });
});
