import { AgentError } from '../lib/errors.js';
import { isMapping } from '../lib/validate.js';

/**
 * Errors across a process boundary (the provisioning child to the daemon): encoded as
 * JSON with their name, message, stack, cause chain and every own enumerable field,
 * and rebuilt on the other side as instances of the class of that name. The class's
 * constructor is not run (its parameters are its own business), so a field added to an
 * error class later crosses without anyone listing it here.
 *
 * Classes are known by the names they declare (AgentError.errorName), never by their
 * own `name`: the bundle minifies class names, differently in each chunk.
 */

/** The JSON form of an error. */
export interface SerializedError {
  $error: string;
  message: string;
  stack?: string;
  cause?: Encoded;
  fields: Record<string, Encoded>;
}

/** A value in JSON form: what JSON carries as itself, the rest tagged. */
export type Encoded =
  | string | number | boolean | null
  | Encoded[]
  | SerializedError
  | { $object: Record<string, Encoded> }
  | { $undefined: true }
  | { $bytes: string }
  | { $date: string }
  | { $bigint: string }
  | { $number: 'NaN' | 'Infinity' | '-Infinity' }
  | { $unsupported: string };

/** A class the other side rebuilds errors as: one that declares its errors' name. */
export type ErrorClass = (abstract new (...args: never[]) => Error) & { readonly errorName: string };

/** Deeper structures are cut off: an error's fields are facts, not documents. */
const MAX_DEPTH = 8;

export function serializeError(err: unknown): SerializedError {
  return encodeError(err instanceof Error ? err : new Error(String(err)), 0, new WeakSet());
}

/**
 * Rebuilds an error as an instance of the class of the same name among `classes` (the
 * built-in ones always count), or as an Error that keeps the original `name` otherwise.
 * Malformed input gives an Error saying so, never a throw.
 */
export function deserializeError(data: unknown, classes: Iterable<ErrorClass> = []): Error {
  const known = new Map<string, KnownClass>(Object.entries(BUILTIN_ERRORS));
  // A class that does not name itself would take the place of the parent whose name it inherits.
  for (const cls of classes) if (Object.hasOwn(cls, 'errorName')) known.set(cls.errorName, cls);
  return decodeError(data, known, 0) ?? new Error(`malformed error from another process: ${preview(data)}`);
}

/** The agent's error classes among a module's exports, e.g. `errorClassesIn(await import('./register.js'))`. */
export function errorClassesIn(...modules: object[]): ErrorClass[] {
  return modules.flatMap((m) => Object.values(m as Record<string, unknown>)).filter(isErrorClass);
}

function isErrorClass(value: unknown): value is ErrorClass {
  return typeof value === 'function' && (value === AgentError || (value as { prototype: unknown }).prototype instanceof AgentError);
}

type KnownClass = abstract new (...args: never[]) => Error;

/** Keyed by the names their errors carry: built-in classes keep their names in the bundle. */
const BUILTIN_ERRORS: Record<string, KnownClass> = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

function encodeError(err: Error, depth: number, seen: WeakSet<object>): SerializedError {
  seen.add(err);
  const fields: Record<string, Encoded> = {};
  for (const key of Object.keys(err)) fields[key] = encode((err as unknown as Record<string, unknown>)[key], depth + 1, seen);
  return {
    $error: typeof err.name === 'string' && err.name ? err.name : 'Error',
    message: String(err.message),
    ...(typeof err.stack === 'string' ? { stack: err.stack } : {}),
    ...('cause' in err ? { cause: encode(err.cause, depth + 1, seen) } : {}),
    fields,
  };
}

function encode(value: unknown, depth: number, seen: WeakSet<object>): Encoded {
  if (value === undefined) return { $undefined: true };
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : { $number: String(value) as 'NaN' | 'Infinity' | '-Infinity' };
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  if (typeof value !== 'object') return { $unsupported: typeof value };
  if (seen.has(value)) return { $unsupported: 'circular reference' };
  if (depth > MAX_DEPTH) return { $unsupported: 'nested too deep' };
  if (value instanceof Error) return encodeError(value, depth, seen);
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (value instanceof Date) return { $date: Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString() };
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => encode(item, depth + 1, seen));
    const out: Record<string, Encoded> = {};
    for (const [key, item] of Object.entries(value)) out[key] = encode(item, depth + 1, seen);
    return { $object: out };
  } finally {
    seen.delete(value);
  }
}

function decodeError(data: unknown, known: Map<string, KnownClass>, depth: number): Error | undefined {
  if (!isMapping(data) || typeof data.$error !== 'string' || typeof data.message !== 'string' || !isMapping(data.fields)) return undefined;
  const cls = known.get(data.$error);
  // An instance of the class made by Error itself: a real error object (stack, inspection)
  // on the class's prototype, without running the class's constructor.
  const err = Reflect.construct(Error, [data.message], cls ?? Error) as Error;
  if (!cls && data.$error !== 'Error') define(err, 'name', data.$error, false);
  if (typeof data.stack === 'string') define(err, 'stack', data.stack, false);
  if ('cause' in data) define(err, 'cause', decode(data.cause, known, depth + 1), false);
  for (const [key, value] of Object.entries(data.fields)) define(err, key, decode(value, known, depth + 1), true);
  return err;
}

function decode(data: unknown, known: Map<string, KnownClass>, depth: number): unknown {
  if (depth > MAX_DEPTH + 1) return undefined;
  if (data === null || typeof data === 'string' || typeof data === 'number' || typeof data === 'boolean') return data;
  if (Array.isArray(data)) return data.map((item) => decode(item, known, depth + 1));
  if (!isMapping(data)) return undefined;
  if ('$error' in data) return decodeError(data, known, depth) ?? new Error(`malformed error: ${preview(data)}`);
  if (data.$undefined === true) return undefined;
  if (typeof data.$bytes === 'string') return Buffer.from(data.$bytes, 'base64');
  if (typeof data.$date === 'string') return new Date(data.$date);
  if (typeof data.$bigint === 'string' && /^-?\d+$/.test(data.$bigint)) return BigInt(data.$bigint);
  if (data.$number === 'NaN' || data.$number === 'Infinity' || data.$number === '-Infinity') return Number(data.$number);
  if (isMapping(data.$object)) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(data.$object)) define(out, key, decode(value, known, depth + 1), true);
    return out;
  }
  if (typeof data.$unsupported === 'string') return `[${data.$unsupported}]`;
  return undefined;
}

/** An own property, whatever its name (`__proto__` included), never a prototype change. */
function define(target: object, key: string, value: unknown, enumerable: boolean): void {
  Object.defineProperty(target, key, { value, enumerable, writable: true, configurable: true });
}


function preview(data: unknown): string {
  const text = JSON.stringify(data) ?? String(data);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
