import { describe, expect, it } from 'vitest';
import { deviceTwinView, emptyTwin, mergePatch, patchDesired, patchReported, patchTags, twinEtag, TwinPatchError, type JsonObject } from '../cloud/hub/twin.js';

describe('twin documents', () => {
  it('merges patches: objects merge, null deletes, values replace', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { a: null, b: { c: null, f: 4 }, e: 'x' })).toEqual({ b: { d: 3, f: 4 }, e: 'x' });
  });

  it('bumps the reported version and the etag on a reported patch, and leaves desired alone', () => {
    const twin = emptyTwin({ interval: 5 });
    const next = patchReported(twin, { fw: '1.0' });
    expect(deviceTwinView(next)).toEqual({ desired: { interval: 5, $version: 1 }, reported: { fw: '1.0', $version: 2 } });
    expect(twinEtag(next)).not.toBe(twinEtag(twin));
  });

  it('bumps the desired version on a desired patch, and only the etag on tags', () => {
    const twin = patchTags(patchDesired(emptyTwin(), { a: 1 }), { site: 'x' });
    expect([twin.desiredVersion, twin.reportedVersion, twin.version]).toEqual([2, 1, 3]);
    expect(twin.tags).toEqual({ site: 'x' });
  });

  it('refuses patches that are not objects, bad property names, deep nesting and oversize documents', () => {
    const twin = emptyTwin();
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 11; i++) deep = { level: deep };
    const cases: unknown[] = [[1], 'x', null, { 'a.b': 1 }, { $version: 3 }, { 'a b': 1 }, { '': 1 }, { 'tab\t': 1 }, deep,
      { big: 'x'.repeat(33 * 1024) }];
    for (const patch of cases) expect(() => patchReported(twin, patch as never), JSON.stringify(patch).slice(0, 40)).toThrow(TwinPatchError);
  });

  it('keeps a key named __proto__ as data in a merge', () => {
    const merged = mergePatch({}, JSON.parse('{"__proto__": {"polluted": true}}') as JsonObject);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
  });
});
