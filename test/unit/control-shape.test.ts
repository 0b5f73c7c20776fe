import { describe, expect, it } from 'vitest';
import { arrayOf, boolean, integer, literal, number, object, optional, string, WireError } from '../../agent/control/shape.js';

/** The message a shape refuses `value` with, or undefined when it takes it. */
function refusal(check: () => unknown): string | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(WireError);
    expect((err as Error).name).toBe('WireError');
    return (err as Error).message;
  }
}

describe('control socket shapes: what a refusal says it got', () => {
  it.each([
    ['nothing', undefined],
    ['null', null],
    ['an array', [1, 2]],
    ['a string of 3 characters', 'abc'],
    ['an object', { a: 1 }],
    ['the number 42', 42],
    ['the boolean true', true],
    ['the bigint 12', 12n],
    ['the bigint 126765060022822940149670', 2n ** 100n],
    ['a function', () => 1],
  ])('describes a value as %s', (described, value) => {
    expect(refusal(() => literal('x')(value, 'reply.f'))).toBe(`reply.f: expected "x", got ${described}`);
  });
});

describe('control socket shapes: each shape', () => {
  it('takes only finite numbers as numbers', () => {
    expect(number(-1.5, 'f')).toBe(-1.5);
    expect(refusal(() => number(Number.NaN, 'f'))).toBe('f: expected a number, got the number NaN');
    expect(refusal(() => number(Infinity, 'f'))).toBe('f: expected a number, got the number Infinity');
    expect(refusal(() => number('1', 'f'))).toBe('f: expected a number, got a string of 1 characters');
  });

  it('takes only safe whole numbers as whole numbers', () => {
    expect(integer(7, 'f')).toBe(7);
    expect(refusal(() => integer(2 ** 53, 'f'))).toBe('f: expected a whole number, got the number 9007199254740992');
    expect(refusal(() => integer('7', 'f'))).toBe('f: expected a whole number, got a string of 1 characters');
  });

  it('takes exactly its literal', () => {
    expect(literal('status')('status', 'op')).toBe('status');
    expect(literal(true)(true, 'ok')).toBe(true);
    expect(refusal(() => literal('status')('tpm', 'op'))).toBe('op: expected "status", got a string of 3 characters');
    expect(refusal(() => literal(true)('true', 'ok'))).toBe('ok: expected true, got a string of 4 characters');
  });

  it('takes an array of its items only, naming the item at fault', () => {
    expect(arrayOf(string)(['a', 'b'], 'log')).toEqual(['a', 'b']);
    expect(refusal(() => arrayOf(string)({ 0: 'a' }, 'log'))).toBe('log: expected an array, got an object');
    expect(refusal(() => arrayOf(string)(['a', 2], 'log'))).toBe('log[1]: expected a string, got the number 2');
  });

  it('takes a JSON object only, not null, a list or a string', () => {
    const shape = object({ a: boolean });
    expect(shape({ a: true }, 'r')).toEqual({ a: true });
    expect(refusal(() => shape(null, 'r'))).toBe('r: expected a JSON object, got null');
    expect(refusal(() => shape([true], 'r'))).toBe('r: expected a JSON object, got an array');
    expect(refusal(() => shape('{"a":true}', 'r'))).toBe('r: expected a JSON object, got a string of 10 characters');
  });

  it('names an unknown key, cut to 40 characters, and the known ones', () => {
    const shape = object({ op: string, force: optional(boolean) });
    expect(refusal(() => shape({ op: 'x', [`k${'y'.repeat(60)}`]: 1 }, 'request')))
      .toBe(`request.k${'y'.repeat(39)}: expected no such field (known: op, force), got the number 1`);
  });

  it('leaves an absent optional key absent rather than present and undefined', () => {
    const out = object({ op: string, force: optional(boolean) })({ op: 'provision' }, 'request');
    expect(out).toEqual({ op: 'provision' });
    expect(Object.keys(out)).toEqual(['op']);
  });
});
