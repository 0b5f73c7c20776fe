import { BUILTIN_PROFILES } from '../../hardening/builtin-profiles.js';
import { parseProfileText } from '../../hardening/load-profile.js';
import { validateProfile, type Profile } from '../../hardening/profile.js';

/** A profile from YAML text, validated as a site profile file named `name` would be. */
export function profileFromYaml(yaml: string, name = 't'): Profile {
  return validateProfile(parseProfileText(yaml, `${name}.yaml`, name), `${name}.yaml`, name);
}

/** A built-in profile, validated under its own name. */
export function builtinProfile(name: 'strict' | 'baseline'): Profile {
  return profileFromYaml(BUILTIN_PROFILES[name]!, name);
}
