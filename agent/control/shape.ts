/**
 * Shapes of the control socket's JSON, checked as closed schemas: a value with a key the
 * shape does not name, or a field of another type, is refused with the path of the field
 * and what was expected. Plain functions, so a shape is also the type it accepts.
 */
import { isMapping } from '../lib/validate.js';

export type Shape<T> = (value: unknown, at: string) => T;

export class WireError extends Error {
  constructor(at: string, expected: string, value: unknown) {
    super(`${at}: expected ${expected}, got ${describe(value)}`);
    this.name = 'WireError';
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value === 'number' ? 'the number' : `the ${typeof value}`} ${String(value).slice(0, 24)}`;
  }
  return `a ${typeof value}`;
}

export const string: Shape<string> = (value, at) => {
  if (typeof value !== 'string') throw new WireError(at, 'a string', value);
  return value;
};

export const integer: Shape<number> = (value, at) => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new WireError(at, 'a whole number', value);
  return value;
};

export const number: Shape<number> = (value, at) => {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new WireError(at, 'a number', value);
  return value;
};

export const boolean: Shape<boolean> = (value, at) => {
  if (typeof value !== 'boolean') throw new WireError(at, 'true or false', value);
  return value;
};

export function oneOf<const V extends string>(values: readonly V[]): Shape<V> {
  return (value, at) => {
    if (!values.includes(value as V)) throw new WireError(at, `one of ${values.join(', ')}`, value);
    return value as V;
  };
}

export function literal<const V extends string | boolean>(expected: V): Shape<V> {
  return (value, at) => {
    if (value !== expected) throw new WireError(at, JSON.stringify(expected), value);
    return expected;
  };
}

export function nullable<T>(shape: Shape<T>): Shape<T | null> {
  return (value, at) => (value === null ? null : shape(value, at));
}

/** A key that may be absent (JSON drops undefined): absent stays undefined. */
export function optional<T>(shape: Shape<T>): Shape<T | undefined> {
  return (value, at) => (value === undefined ? undefined : shape(value, at));
}

export function arrayOf<T>(shape: Shape<T>): Shape<T[]> {
  return (value, at) => {
    if (!Array.isArray(value)) throw new WireError(at, 'an array', value);
    return value.map((item, i) => shape(item, `${at}[${i}]`));
  };
}

type Fields = Record<string, Shape<unknown>>;
type ObjectOf<F extends Fields> = { [K in keyof F]: ReturnType<F[K]> };

/** A JSON object with exactly these keys (those whose shape is optional may be absent). */
export function object<F extends Fields>(fields: F): Shape<ObjectOf<F>> {
  return (value, at) => {
    if (!isMapping(value)) throw new WireError(at, 'a JSON object', value);
    const input = value;
    const unknown = Object.keys(input).find((key) => !Object.hasOwn(fields, key));
    if (unknown !== undefined) throw new WireError(`${at}.${unknown.slice(0, 40)}`, `no such field (known: ${Object.keys(fields).join(', ')})`, input[unknown]);
    const out: Record<string, unknown> = {};
    for (const [key, shape] of Object.entries(fields)) {
      const checked = shape(input[key], `${at}.${key}`);
      if (checked !== undefined) out[key] = checked;
    }
    return out as ObjectOf<F>;
  };
}
