import { describe, expect, it } from 'vitest';
import { InvalidArgument, validateArgs } from '../../agent/commands/schema.js';

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
});
