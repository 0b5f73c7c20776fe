import { createRequire } from 'node:module';

/**
 * Requires a CommonJS package for one use and drops it from Node's module cache at once,
 * so that when the caller lets go of what it returned, the package's code and source can
 * be collected rather than held by the long-running daemon for good. For packages needed
 * now and then: the YAML parser (the config file at start and on SIGHUP, a hardening
 * profile when one is applied).
 *
 * `load` is `() => createRequire(import.meta.url)('yaml')` written where the package is
 * used: the bundle (packaging/bundle.mjs) sees that require and points it at the
 * package's own file.
 */
export function requireTransient<T>(load: () => T): T {
  const { cache } = createRequire(import.meta.url);
  const before = new Set(Object.keys(cache));
  try {
    return load();
  } finally {
    for (const key of Object.keys(cache)) {
      if (before.has(key)) continue;
      const loaded = cache[key]!;
      delete cache[key];
      // The module that required it lists it among its children, and may live for good.
      const siblings = loaded.parent?.children ?? [];
      const index = siblings.indexOf(loaded);
      if (index >= 0) siblings.splice(index, 1);
    }
  }
}
