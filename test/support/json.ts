/**
 * JSON text that must hold an object (a CLI's --json output, a message body, a state file),
 * with its fields `unknown` until a test narrows them; anything else throws with the text.
 */
export function parseObject(text: string, what = 'JSON text'): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  if (!isObject(value)) throw new Error(`${what} is not a JSON object: ${text.slice(0, 200)}`);
  return value;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at a path of keys into nested objects; undefined where a step is not an object or lacks the key. */
export function valueAt(value: unknown, ...path: string[]): unknown {
  let here = value;
  for (const key of path) here = isObject(here) ? here[key] : undefined;
  return here;
}

/** The object in field `key` of `value`; anything else throws naming the key. */
export function objectAt(value: Record<string, unknown>, key: string): Record<string, unknown> {
  const field = value[key];
  if (!isObject(field)) throw new Error(`field "${key}" is not an object: ${JSON.stringify(field)}`);
  return field;
}

/** The array of objects in field `key` (the checks of `check --json`, say); anything else throws naming the key. */
export function objectsAt(value: Record<string, unknown>, key: string): Record<string, unknown>[] {
  const field = value[key];
  if (!Array.isArray(field) || !field.every(isObject)) throw new Error(`field "${key}" is not an array of objects: ${JSON.stringify(field)}`);
  return field;
}

/** The named fields of `value`, each checked to be a string; a missing or other field throws naming it. */
export function stringFields<K extends string>(value: Record<string, unknown>, keys: readonly K[]): Record<K, string> {
  const fields: Partial<Record<K, string>> = {};
  for (const key of keys) {
    const field = value[key];
    if (typeof field !== 'string') throw new Error(`field "${key}" is not a string: ${JSON.stringify(field)}`);
    fields[key] = field;
  }
  return fields as Record<K, string>;
}
