/**
 * Building blocks of the validators (config, profiles, command arguments and envelopes,
 * writable properties, helper messages): the names every layer agrees on, and how a value is
 * described in an error. Values that arrive from the cloud are described by their kind and
 * size (`kindOf`; `briefly` for a writable property's acknowledgement, which the operator who
 * set it reads); a local file's own values may be shown (`shown`, `yamlKindOf`).
 */

/**
 * A profile name: a built-in one or a site profile's file name without `.yaml`. The one
 * pattern for every place a name arrives (cloud command, twin, the root apply unit's
 * instance and request, `extends:`): letters, digits, `_` and `-`, starting with a letter
 * or digit, at most 64. It can never be a path, and `systemd-escape` turns it into an
 * instance name the polkit rule admits.
 */
export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const PROFILE_NAME_EXPECTED = 'a built-in or site profile name (letters, digits, _ and -, at most 64)';

/**
 * What a profile calls itself (its `name:` key, recorded and measured as such): a profile
 * name, or one with dots too. Never used to find a file.
 */
export const PROFILE_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A network namespace name as `ip netns` takes it: never a path, never an option. */
export const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** What `parseJson` gives for a text that is not JSON. */
export const NOT_JSON: unique symbol = Symbol('not JSON');

/** A text's JSON value, or NOT_JSON: every parser then says in its own words what it expected. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return NOT_JSON;
  }
}

/** A JSON object or YAML mapping: an object that is neither null nor an array. */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value from the cloud in an error: its kind and size, never its content (numbers excepted). */
export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? `the number ${value}` : `the number ${String(value).slice(0, 24)}`;
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

/**
 * A cloud value in an acknowledgement the operator reads (a writable property's `ad`): a
 * short string quoted, a number as it is, anything else by its kind.
 */
export function briefly(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'number') return String(value).slice(0, 24);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** Echoing untrusted text (a command name, a key): short and printable. */
export function clip(text: string, max = 64): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > max ? `${printable.slice(0, max - 3)}...` : printable;
}

/** A value of a local file (the config) in an error: as JSON, cut short. */
export function shown(value: unknown, max = 60): string {
  // JSON has no NaN or Infinity: it would write null, which is not what the file said (YAML's .nan, .inf).
  const text = typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** A value of a YAML document (a profile) in an error, in YAML's words: a list, a mapping, or its type and text. */
export function yamlKindOf(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** A value for an error message: quoted and escaped, never long enough to flood a log line. */
export function quoted(value: unknown, max = 80): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

/** The known name `name` was probably meant to be (same but for case, or at most two edits away). */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  return known.find((k) => k.toLowerCase() === name.toLowerCase() || editDistance(k, name) <= 2);
}

/** Levenshtein distance: insertions, deletions and substitutions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
