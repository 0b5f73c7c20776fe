import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type * as Yaml from 'yaml';
import { requireTransient } from '../../agent/lib/transient-require.js';

const require = createRequire(import.meta.url);
const yamlEntries = () => Object.keys(require.cache).filter((key) => key.includes('/node_modules/yaml/'));

describe('a package required for one use', () => {
  it('works, and leaves nothing of itself in the module cache', () => {
    const { parse } = requireTransient(() => createRequire(import.meta.url)('yaml') as typeof Yaml);
    expect(parse('a: 1')).toEqual({ a: 1 });
    expect(yamlEntries()).toEqual([]);
  });

  it('is no longer a child of the long-lived module that required it (the bundle\'s chunks keep one for good)', () => {
    const holder = createRequire(import.meta.url);
    let loaded: NodeJS.Module | undefined;
    requireTransient(() => {
      const exports = holder('yaml') as unknown;
      loaded = holder.cache[holder.resolve('yaml')];
      return exports;
    });
    expect(loaded?.parent?.children).toBeDefined();
    expect(loaded!.parent!.children).not.toContain(loaded);
  });

  it('is loaded afresh each time, so that nothing holds the last copy', () => {
    const first = requireTransient(() => createRequire(import.meta.url)('yaml') as typeof Yaml);
    const second = requireTransient(() => createRequire(import.meta.url)('yaml') as typeof Yaml);
    expect(second).not.toBe(first);
  });

  it('is dropped even when loading it throws', () => {
    expect(() => requireTransient(() => createRequire(import.meta.url)('./no-such-module.cjs') as unknown)).toThrow(/Cannot find module/);
    expect(yamlEntries()).toEqual([]);
  });

  it('leaves alone the packages loaded before it', () => {
    const holder = createRequire(import.meta.url);
    const ms = holder('ms') as unknown;
    requireTransient(() => createRequire(import.meta.url)('yaml') as unknown);
    expect(holder.cache[holder.resolve('ms')]).toBeDefined();
    expect(holder('ms')).toBe(ms);
  });
});
