import type * as Yaml from 'yaml';
import { DEFAULTS, parseConfig, type AgentConfig } from '../config.js';
import { requireCopy } from '../lib/require-copy.js';
import { isMapping } from '../lib/validate.js';

export interface SalvagedConfig {
  config: AgentConfig;
  /** Keys of the file that could not be used, e.g. ['tpm.transprot']. */
  ignored: string[];
}

type Section = { [K in keyof AgentConfig]: AgentConfig[K] extends object ? K : never }[keyof AgentConfig];
type Scalar = Exclude<keyof AgentConfig, Section>;
// Derived from the defaults, so a key added to the config is salvaged without a change here.
const SECTIONS = (Object.keys(DEFAULTS) as (keyof AgentConfig)[]).filter((k) => isMapping(DEFAULTS[k])) as Section[];
const SCALARS = (Object.keys(DEFAULTS) as (keyof AgentConfig)[]).filter((k) => typeof DEFAULTS[k] === 'string') as Scalar[];

/**
 * The usable part of an invalid config: each key that is valid on its own is kept, the
 * rest fall back to the built-in defaults. Then one wrong key (a typo in log.level, say)
 * does not make `check` test some other TPM, state directory or DPS than the configured
 * ones. The validation itself stays parseConfig's: every key goes through it.
 */
export function salvageConfig(text: string, source: string): SalvagedConfig {
  const config = structuredClone(DEFAULTS);
  let document: unknown;
  try {
    // required, not imported: the bundle keeps the YAML parser in a file of its own
    document = (requireCopy(import.meta.url, 'yaml') as typeof Yaml).parse(text, { prettyErrors: false });
  } catch {
    return { config, ignored: ['(the whole file: not valid YAML)'] };
  }
  if (!isMapping(document)) return { config, ignored: document == null ? [] : ['(the whole file: not a mapping)'] };

  const ignored: string[] = [];
  for (const [key, value] of Object.entries(document)) {
    if (isScalarKey(key)) {
      const parsed = tryParse({ [key]: value }, source);
      if (parsed) config[key] = parsed[key];
      else ignored.push(key);
    } else if (isSection(key) && isMapping(value)) {
      for (const [leaf, leafValue] of Object.entries(value)) {
        const parsed = tryParse({ [key]: { [leaf]: leafValue } }, source);
        const section = parsed?.[key] as Record<string, unknown> | undefined;
        if (section && leaf in section) (config[key] as Record<string, unknown>)[leaf] = section[leaf];
        else ignored.push(`${key}.${leaf}`);
      }
    } else if (value !== null && value !== undefined) {
      ignored.push(key);
    }
  }
  return { config, ignored };
}

function tryParse(document: Record<string, unknown>, source: string): AgentConfig | undefined {
  try {
    return parseConfig(JSON.stringify(document), source); // JSON is YAML
  } catch {
    return undefined;
  }
}


function isScalarKey(key: string): key is Scalar {
  return (SCALARS as readonly string[]).includes(key);
}

function isSection(key: string): key is Section {
  return (SECTIONS as readonly string[]).includes(key);
}
