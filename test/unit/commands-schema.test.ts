import { describe, expect, it } from 'vitest';
import { clip, InvalidArgument, kindOf, validateArgs } from '../../agent/commands/schema.js';

const schema = {
  seconds: { type: 'integer', min: 1, max: 10 },
  name: { type: 'string', pattern: /^[a-z]+$/, maxLength: 8, expected: 'lowercase letters', optional: true },
} as const;

function reasonOf(raw: unknown): [string, string] {
  try {
    validateArgs(schema, raw);
  } catch (err) {
    if (err instanceof InvalidArgument) return [err.field, err.reason];
    throw err;
  }
  return ['', 'valid'];
}

describe('command argument schemas', () => {
  it('accepts valid arguments and leaves optional ones out', () => {
    expect(validateArgs(schema, { seconds: 3 })).toEqual({ seconds: 3 });
    expect(validateArgs(schema, { seconds: 10, name: 'abc' })).toEqual({ seconds: 10, name: 'abc' });
  });

  it.each([
    [{}, 'seconds', 'is required'],
    [{ seconds: 0 }, 'seconds', '0 is out of range: expected 1 to 10'],
    [{ seconds: 2.5 }, 'seconds', 'expected a whole number from 1 to 10, got the number 2.5'],
    [{ seconds: '3' }, 'seconds', 'expected a whole number from 1 to 10, got a string of 1 characters'],
    [{ seconds: 3, name: 'ABC' }, 'name', 'expected lowercase letters'],
    [{ seconds: 3, name: 'abcdefghij' }, 'name', 'too long (10 characters; at most 8)'],
    [{ seconds: 3, name: 5 }, 'name', 'expected lowercase letters, got the number 5'],
    [{ seconds: 3, other: 1 }, 'other', 'unknown argument; expected one of seconds, name'],
    [[1], 'args', 'expected a JSON object of arguments, got an array'],
    ['x', 'args', 'expected a JSON object of arguments, got a string of 1 characters'],
    [JSON.parse('{"__proto__": {"seconds": 1}, "seconds": 1}'), '__proto__', 'unknown argument; expected one of seconds, name'],
  ])('refuses %j: %s %s', (raw, field, reason) => {
    expect(reasonOf(raw)).toEqual([field, reason]);
  });

  it('clips and sanitises an unknown key it echoes', () => {
    const [field] = reasonOf({ seconds: 1, ['\u0000'.repeat(3) + 'k'.repeat(500)]: 1 });
    expect(field.length).toBeLessThanOrEqual(64);
    expect(field.includes("\u0000")).toBe(false);
  });

  it('takes both ends of an integer range and a string of exactly its maximum length', () => {
    expect(validateArgs(schema, { seconds: 1, name: 'abcdefgh' })).toEqual({ seconds: 1, name: 'abcdefgh' });
    expect(reasonOf({ seconds: 11 })).toEqual(['seconds', '11 is out of range: expected 1 to 10']);
  });

  it('treats absent, null and an explicit null argument as not given', () => {
    expect(validateArgs(schema, JSON.parse('{"seconds": 2, "name": null}'))).toEqual({ seconds: 2 });
    expect(reasonOf(null)).toEqual(['seconds', 'is required']);
    expect(reasonOf(undefined)).toEqual(['seconds', 'is required']);
    expect(reasonOf({ seconds: null })).toEqual(['seconds', 'is required']);
    expect(validateArgs({}, null)).toEqual({});
  });

  it('says a command takes no arguments when one is given anyway', () => {
    expect(() => validateArgs({}, { force: true })).toThrow(expect.objectContaining({ field: 'force', reason: 'unknown argument; expected no arguments', message: 'force: unknown argument; expected no arguments' }));
  });

  it('refuses a pattern match that is longer than allowed before trying the pattern', () => {
    expect(reasonOf({ seconds: 1, name: 'A'.repeat(9) })).toEqual(['name', 'too long (9 characters; at most 8)']);
  });

  it.each([
    [null, 'null'], [[1], 'an array'], [7, 'the number 7'], [-0.5, 'the number -0.5'], [1 / 3, 'the number 0.3333333333333333'], [-0.0000012345678901234567, 'the number -0.000001234567890123456'],
    ['abc', 'a string of 3 characters'], [{ a: 1 }, 'an object'], [true, 'a boolean'], [undefined, 'a undefined'],
  ])('describes %j as %s when echoing what it got', (value, words) => {
    expect(kindOf(value)).toBe(words);
  });

  it('clips echoed text to 64 printable characters, or to the length asked', () => {
    expect(clip('a'.repeat(64))).toBe('a'.repeat(64));
    expect(clip('a'.repeat(65))).toBe(`${'a'.repeat(61)}...`);
    expect(clip('tab\there\u00e9\u007f~')).toBe('tab?here??~');
    expect(clip('abcdefghij', 8)).toBe('abcde...');
    expect(clip('')).toBe('');
  });
});
