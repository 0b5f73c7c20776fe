import { describe, expect, it } from 'vitest';
import { clipUtf8, fitTwinLimits, MAX_DEPTH, MAX_STRING_BYTES } from '../../agent/twin/limits.js';
import { MAX_TWIN_DEPTH, sanitizeTwinDocument } from '../../agent/azure-sdk/twin-merges.js';

/** `levels` objects nested in one another, the innermost holding `leaf`. */
function nested(levels: number, leaf: unknown = 'leaf'): Record<string, unknown> {
  let value: unknown = leaf;
  for (let i = 0; i < levels; i++) value = { n: value };
  return value as Record<string, unknown>;
}

describe('reported patches fitted to the twin limits', () => {
  it('keeps integers from -2^52 to 2^52 - 1 as numbers and writes the ones beyond as strings', () => {
    expect(fitTwinLimits({ lo: -4503599627370496, hi: 4503599627370495, under: -4503599627370497, over: 4503599627370496 })).toStrictEqual({
      lo: -4503599627370496, hi: 4503599627370495, under: '-4503599627370497', over: '4503599627370496',
    });
  });

  it('keeps fractions, booleans and null as they are', () => {
    expect(fitTwinLimits({ ratio: 0.25, big: 1.5e300, ok: false, none: null })).toStrictEqual({ ratio: 0.25, big: '1.5e+300', ok: false, none: null });
  });

  it(`keeps the patch and ${MAX_DEPTH} levels of objects below it, and cuts what is deeper`, () => {
    expect(MAX_DEPTH).toBe(10);
    expect(fitTwinLimits(nested(MAX_DEPTH + 1))).toStrictEqual(nested(MAX_DEPTH + 1));
    expect(fitTwinLimits(nested(MAX_DEPTH + 2))).toStrictEqual(nested(MAX_DEPTH, {}));
  });

  it('keeps a value at the deepest level allowed, and turns list items cut for depth into null', () => {
    expect(fitTwinLimits(nested(MAX_DEPTH + 1, 7))).toStrictEqual(nested(MAX_DEPTH + 1, 7));
    expect(fitTwinLimits(nested(MAX_DEPTH, [1, { a: 1 }, 'x']))).toStrictEqual(nested(MAX_DEPTH, [1, null, 'x']));
    expect(fitTwinLimits(nested(MAX_DEPTH + 1, [1]))).toStrictEqual(nested(MAX_DEPTH, {}));
    expect(fitTwinLimits({ list: ['x'.repeat(5000), 2 ** 60, { k: 'v' }] })).toStrictEqual({ list: [`${'x'.repeat(MAX_STRING_BYTES - 3)}...`, String(2 ** 60), { k: 'v' }] });
  });

  it('leaves out keys whose value is undefined', () => {
    expect(Object.keys(fitTwinLimits({ a: undefined, b: 1 }))).toEqual(['b']);
  });

  it('clips text to a byte budget, the ellipsis included, never inside a character', () => {
    expect(clipUtf8('abcdefgh', 8)).toBe('abcdefgh');
    expect(clipUtf8('abcdefghi', 8)).toBe('abcde...');
    expect(clipUtf8('ééééé', 8)).toBe('éé...');
    expect(clipUtf8('a😀😀', 8)).toBe('a😀...');
    expect(clipUtf8('ab😀cd', 7)).toBe('ab...');
    expect(Buffer.byteLength(clipUtf8('😀'.repeat(2000), MAX_STRING_BYTES))).toBe(MAX_STRING_BYTES - 1);
    expect(MAX_STRING_BYTES).toBe(4096);
  });
});

describe('twin documents made safe for the SDK\'s merge', () => {
  it(`keeps ${MAX_TWIN_DEPTH} levels of objects, the document included, and cuts what is deeper`, () => {
    expect(sanitizeTwinDocument(nested(MAX_TWIN_DEPTH))).toStrictEqual(nested(MAX_TWIN_DEPTH));
    expect(sanitizeTwinDocument(nested(MAX_TWIN_DEPTH + 1))).toStrictEqual(nested(MAX_TWIN_DEPTH - 1, {}));
  });

  it('keeps lists, their items made safe, and turns items cut for depth into null', () => {
    const doc = JSON.parse('{"list":[1,"two",{"__proto__":{"p":1},"ok":true},null,[{"prototype":2}]]}') as unknown;
    expect(sanitizeTwinDocument(doc)).toStrictEqual({ list: [1, 'two', { ok: true }, null, [{}]] });
    expect(sanitizeTwinDocument(nested(MAX_TWIN_DEPTH - 1, [{ a: 1 }, 3]))).toStrictEqual(nested(MAX_TWIN_DEPTH - 1, [null, 3]));
  });

  it('passes values that are not objects through', () => {
    for (const value of [null, 3, 'text', true, undefined]) expect(sanitizeTwinDocument(value)).toBe(value);
  });
});
