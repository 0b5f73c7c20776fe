import type * as Yaml from 'yaml';
import { DEFAULTS } from '../config.js';
import { requireCopy } from '../lib/require-copy.js';
import { requireTransient } from '../lib/transient-require.js';
import { isMapping } from '../lib/validate.js';

/**
 * The config keys a file leaves to the built-in defaults (`tpm.transport`, `log.level`, …),
 * derived from the defaults so that a key added to the config is listed without a change
 * here. A file that is not YAML or not a mapping leaves every key to the defaults.
 */
export function keysFromDefaults(text: string | undefined): string[] {
  let document: unknown;
  try {
    // Required for this one use, not held: the daemon builds a support bundle now and then.
    document = text === undefined ? undefined
      : requireTransient(() => requireCopy(import.meta.url, 'yaml') as typeof Yaml).parse(text, { prettyErrors: false });
  } catch {
    document = undefined;
  }
  const given = isMapping(document) ? document : {};
  const keys: string[] = [];
  for (const [key, value] of Object.entries(DEFAULTS)) {
    if (isMapping(value)) {
      const section = given[key];
      for (const leaf of Object.keys(value)) {
        if (!isMapping(section) || section[leaf] === undefined || section[leaf] === null) keys.push(`${key}.${leaf}`);
      }
    } else if (given[key] === undefined || given[key] === null) {
      keys.push(key);
    }
  }
  return keys;
}

