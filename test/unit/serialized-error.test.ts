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
    for (const order of [[UnnamedDpsError, DpsError], [DpsError, UnnamedDpsError]]) {
      const copy = across(new UnnamedDpsError('x', { retryable: true, operatorMustAct: false }), order);
      expect(copy.constructor).toBe(DpsError);
    }
  });

  it('finds the agent\'s error classes among a module\'s exports', () => {
    expect(errorClassesIn({ DpsError, AgentError, TypeError, notAClass: 1, fn: () => 1, Date })).toEqual([DpsError, AgentError]);
  });

  it('encode each kind of field in its own tagged form', () => {
    // A Buffer from Node's pool starts inside a larger block: only its own bytes cross.
    const bytes = Buffer.from('hi');
    const err = Object.assign(new Error('m'), {
      u: undefined, nan: NaN, inf: -Infinity, big: -12n, when: new Date(0), never: new Date(NaN), bytes,
      list: [1, 'a', null, true], nested: { a: { b: 2 } }, sym: Symbol('s'),
    });
    const data = serializeError(err);
    expect(data.$error).toBe('Error');
    expect(data.message).toBe('m');
    expect(data.stack).toBe(err.stack);
    expect('cause' in data).toBe(false);
    expect(data.fields).toEqual({
      u: { $undefined: true }, nan: { $number: 'NaN' }, inf: { $number: '-Infinity' }, big: { $bigint: '-12' },
      when: { $date: '1970-01-01T00:00:00.000Z' }, never: { $date: 'Invalid Date' }, bytes: { $bytes: 'aGk=' },
      list: [1, 'a', null, true], nested: { $object: { a: { $object: { b: 2 } } } }, sym: { $unsupported: 'symbol' },
    });
    const copy = across(err) as unknown as Record<string, unknown>;
    expect(copy).toMatchObject({ nan: NaN, inf: -Infinity, big: -12n, when: new Date(0), bytes: Buffer.from('hi'), list: [1, 'a', null, true], nested: { a: { b: 2 } }, sym: '[symbol]' });
    expect(Object.hasOwn(copy, 'u') && copy.u === undefined).toBe(true);
  });

  it('carry a cause given as undefined, and none when there was none', () => {
    const withCause = serializeError(new Error('m', { cause: undefined }));
    expect(withCause.cause).toEqual({ $undefined: true });
    const copy = deserializeError(withCause);
    expect(Object.hasOwn(copy, 'cause') && copy.cause === undefined).toBe(true);
    expect(Object.hasOwn(deserializeError(serializeError(new Error('m'))), 'cause')).toBe(false);
  });

  it('name an error without a usable name Error, and keep a name its class gives on the prototype', () => {
    expect(serializeError(Object.assign(new Error('m'), { name: '' })).$error).toBe('Error');
    expect(serializeError(Object.assign(new Error('m'), { name: 7 })).$error).toBe('Error');
    class SdkError extends Error {}
    Object.defineProperty(SdkError.prototype, 'name', { value: 'NotFoundError' });
    const copy = across(new SdkError('gone'));
    expect(copy.constructor).toBe(Error);
    expect(copy.name).toBe('NotFoundError');
    expect(Object.hasOwn(across(new Error('plain')), 'name')).toBe(false);
  });

  it('cut fields off eight levels deep on the way out, and nine on the way in', () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 12; i++) deep = deep.next = {};
    const copy = across(Object.assign(new Error('x'), { root })) as unknown as { root: Record<string, unknown> };
    let level: unknown = copy.root;
    const kinds: string[] = [];
    while (typeof level === 'object' && level !== null) {
      kinds.push('object');
      level = (level as Record<string, unknown>).next;
    }
    // The field itself is level 1; level 9 is too deep.
    expect(kinds).toHaveLength(8);
    expect(level).toBe('[nested too deep]');
    // Hand-made input deeper than anything this side sends is cut off as well: nothing there.
    let encoded: unknown = 'bottom';
    for (let i = 0; i < 12; i++) encoded = { $object: { next: encoded } };
    const decoded = deserializeError({ $error: 'Error', message: 'm', fields: { root: encoded } }) as unknown as { root: Record<string, unknown> };
    let walked: unknown = decoded.root;
    let depth = 0;
    while (typeof walked === 'object' && walked !== null) {
      depth++;
      walked = (walked as Record<string, unknown>).next;
    }
    expect(depth).toBe(9);
    expect(walked).toBeUndefined();
    // An array counts as a level too.
    let nestedList: unknown = 'bottom';
    for (let i = 0; i < 12; i++) nestedList = [nestedList];
    const listCopy = across(Object.assign(new Error('x'), { nestedList })) as unknown as { nestedList: unknown };
    let items = 0;
    let item: unknown = listCopy.nestedList;
    while (Array.isArray(item)) {
      items++;
      item = item[0];
    }
    expect([items, item]).toEqual([8, '[nested too deep]']);
  });

  it('read only the tags it knows, and nothing from a tag with a bad value', () => {
    const fields = {
      big: { $bigint: '12x' }, big2: { $bigint: 'x12' }, big3: { $bigint: 12 }, num: { $number: 'Infinity' }, badNum: { $number: 'Lots' },
      unsupported: { $unsupported: 'function' }, unknownTag: { $thing: 1 }, obj: { $object: [] }, date: { $date: 5 }, bytes: { $bytes: 5 },
    };
    const copy = deserializeError({ $error: 'Error', message: 'm', fields }) as unknown as Record<string, unknown>;
    expect(copy).toEqual(expect.objectContaining({ num: Infinity, unsupported: '[function]' }));
    for (const key of ['big', 'big2', 'big3', 'badNum', 'unknownTag', 'obj', 'date', 'bytes']) expect(copy[key], key).toBeUndefined();
    expect(copy.unknownTag).toBeUndefined();
  });

  it('show at most 120 characters of malformed input in the error that says so', () => {
    expect(deserializeError({ short: true }).message).toBe('malformed error from another process: {"short":true}');
    const long = deserializeError({ text: 'x'.repeat(500) }).message.replace('malformed error from another process: ', '');
    expect(long).toHaveLength(120);
    expect(long.endsWith('...')).toBe(true);
    expect(deserializeError(undefined).message).toBe('malformed error from another process: undefined');
    const exactly = { t: 'y'.repeat(112) };
    expect(JSON.stringify(exactly)).toHaveLength(120);
    expect(deserializeError(exactly).message).toBe(`malformed error from another process: ${JSON.stringify(exactly)}`);
    expect(deserializeError({ fields: {}, $error: 'E', message: 1 }).message).toMatch(/^malformed error/);
  });

  it('rebuild a malformed error among the fields as an Error that says so', () => {
    const copy = deserializeError({ $error: 'Error', message: 'm', fields: { inner: { $error: 'X' } } }) as unknown as { inner: Error };
    expect(copy.inner).toBeInstanceOf(Error);
    expect(copy.inner.message).toBe('malformed error: {"$error":"X"}');
  });
});
