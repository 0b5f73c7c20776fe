import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type * as Yaml from 'yaml';
import { AgentError, ExitCode } from '../agent/lib/errors.js';
import { requireCopy } from '../agent/lib/require-copy.js';
import { requireTransient } from '../agent/lib/transient-require.js';
import { BUILTIN_PROFILES } from './builtin-profiles.js';
import { ProfileError, validateProfile, type Profile } from './profile.js';
import { isMapping, PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../agent/lib/validate.js';

export const SITE_PROFILE_DIR = 'etc/iot-agent/profiles';

export interface LoadedProfile {
  profile: Profile;
  /** Where it came from: `builtin:strict` or a file path. */
  origin: string;
}

/**
 * Finds a profile by NAME (built-in, then `<root>/etc/iot-agent/profiles/NAME.yaml`) or
 * by PATH (anything with a slash or a .yaml/.yml suffix), follows `extends:` and validates it.
 */
export async function loadProfile(spec: string, root = '/'): Promise<LoadedProfile> {
  const { raw, origin } = await loadMerged(spec, root, []);
  return { profile: validateProfile(raw, origin, fallbackName(spec)), origin };
}

/**
 * Finds a profile by NAME only (built-in, then a site profile), never by path, whatever the
 * name looks like: what the cloud and the agent's requests to the root unit may name.
 */
export async function loadProfileByName(name: string, root = '/'): Promise<LoadedProfile> {
  if (!PROFILE_NAME.test(name)) {
    throw new AgentError(`invalid profile name ${JSON.stringify(name.slice(0, 80))}`, { hint: `give ${PROFILE_NAME_EXPECTED}; never a path`, exitCode: ExitCode.usage });
  }
  return loadProfile(name, root);
}

/** Parses and validates YAML text as a profile (no `extends:` resolution from disk beyond built-ins). */
export function parseProfileText(text: string, origin: string, fallback: string): Record<string, unknown> {
  // Required here and not held: the daemon parses a profile only when one is applied.
  const { parseDocument } = requireTransient(() => requireCopy(import.meta.url, 'yaml') as typeof Yaml);
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) {
    const first = doc.errors[0]!;
    throw new ProfileError(origin, '', `not valid YAML: ${first.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS() ?? {};
  if (!isMapping(value)) throw new ProfileError(origin, '', 'must be a YAML mapping at the top level');
  if (value.name === undefined) value.name = fallback;
  return value;
}

async function loadMerged(spec: string, root: string, chain: string[]): Promise<{ raw: Record<string, unknown>; origin: string }> {
  const { text, origin } = await readProfileSource(spec, root);
  if (chain.includes(origin)) {
    throw new ProfileError(origin, 'extends', `cycle: ${[...chain, origin].join(' -> ')}`);
  }
  const raw = parseProfileText(text, origin, fallbackName(spec));
  if (raw.extends === undefined) return { raw, origin };
  if (typeof raw.extends !== 'string' || !PROFILE_NAME.test(raw.extends)) {
    throw new ProfileError(origin, 'extends', 'must be the name of a built-in or site profile');
  }
  const parent = await loadMerged(raw.extends, root, [...chain, origin]);
  const own = { ...raw };
  delete own.extends;
  return { raw: mergeProfiles(parent.raw, own), origin };
}

/** A child profile over its parent: mappings merge key by key, anything else (lists too) replaces. */
export function mergeProfiles(parent: Record<string, unknown>, child: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...parent };
  for (const [key, value] of Object.entries(child)) {
    const base = merged[key];
    merged[key] = isMapping(base) && isMapping(value) ? mergeProfiles(base, value) : value;
  }
  return merged;
}

async function readProfileSource(spec: string, root: string): Promise<{ text: string; origin: string }> {
  const isPath = spec.includes('/') || /\.ya?ml$/.test(spec);
  if (!isPath) {
    if (!PROFILE_NAME.test(spec)) {
      throw new AgentError(`invalid profile name ${JSON.stringify(spec)}`, {
        hint: 'give a built-in name (baseline, strict), a site profile name, or a path to a .yaml file', exitCode: ExitCode.usage,
      });
    }
    const builtin = BUILTIN_PROFILES[spec];
    if (builtin !== undefined) return { text: builtin, origin: `builtin:${spec}` };
  }
  const candidates = isPath ? [spec] : ['yaml', 'yml'].map((ext) => path.join(root, SITE_PROFILE_DIR, `${spec}.${ext}`));
  for (const file of candidates) {
    try {
      return { text: await readFile(file, 'utf8'), origin: file };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new AgentError(`cannot read profile ${file}`, { cause: err, exitCode: ExitCode.usage });
      }
    }
  }
  if (isPath) throw new AgentError(`profile file ${spec} does not exist`, { exitCode: ExitCode.usage });
  throw new AgentError(`no profile ${JSON.stringify(spec)}`, {
    hint: `built-in profiles: ${Object.keys(BUILTIN_PROFILES).join(', ')}; site profiles live in ${path.join(root, SITE_PROFILE_DIR)}`,
    exitCode: ExitCode.usage,
  });
}

function fallbackName(spec: string): string {
  return path.basename(spec).replace(/\.ya?ml$/, '');
}

