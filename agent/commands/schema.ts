import { clip, kindOf } from '../lib/validate.js';

/**
 * Argument schemas for cloud commands: plain data, checked without I/O. Arguments arrive
 * from the network; anything not described here is refused with the field and the reason.
 */
export type FieldSpec =
  | { type: 'integer'; min: number; max: number; optional?: boolean }
  | { type: 'string'; pattern: RegExp; maxLength: number; expected: string; optional?: boolean };

export type ArgsSchema = Record<string, FieldSpec>;

type ValueOf<F extends FieldSpec> = F extends { type: 'integer' } ? number : string;
export type ArgsOf<S extends ArgsSchema> = {
  [K in keyof S]: S[K] extends { optional: true } ? ValueOf<S[K]> | undefined : ValueOf<S[K]>;
};

export class InvalidArgument extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
  }
}

/** Checks `raw` (absent, null or a JSON object) against `schema`; throws InvalidArgument. */
export function validateArgs<S extends ArgsSchema>(schema: S, raw: unknown): ArgsOf<S> {
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidArgument('args', `expected a JSON object of arguments, got ${kindOf(raw)}`);
  }
  const input = raw as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(schema, key)) {
      const known = Object.keys(schema);
      throw new InvalidArgument(clip(key), `unknown argument; expected ${known.length ? `one of ${known.join(', ')}` : 'no arguments'}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const value = input[key];
    if (value === undefined || value === null) {
      if (!spec.optional) throw new InvalidArgument(key, 'is required');
      continue;
    }
    out[key] = checkField(key, spec, value);
  }
  return out as ArgsOf<S>;
}

function checkField(key: string, spec: FieldSpec, value: unknown): number | string {
  if (spec.type === 'integer') {
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      throw new InvalidArgument(key, `expected a whole number from ${spec.min} to ${spec.max}, got ${kindOf(value)}`);
    }
    if (value < spec.min || value > spec.max) throw new InvalidArgument(key, `${value} is out of range: expected ${spec.min} to ${spec.max}`);
    return value;
  }
  if (typeof value !== 'string') throw new InvalidArgument(key, `expected ${spec.expected}, got ${kindOf(value)}`);
  if (value.length > spec.maxLength) throw new InvalidArgument(key, `too long (${value.length} characters; at most ${spec.maxLength})`);
  if (!spec.pattern.test(value)) throw new InvalidArgument(key, `expected ${spec.expected}`);
  return value;
}
