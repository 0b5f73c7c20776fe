import { expect } from 'vitest';

/*
 * vitest's asymmetric matchers, typed `unknown` where vitest types them `any`. They stand for a
 * value inside an expected object (`toMatchObject({ reason: stringMatching(/.../) })`), and
 * type-aware lint rightly refuses an `any` placed in an object; `unknown` says the same thing safely.
 */

export function ofType(constructor: unknown): unknown {
  return expect.any(constructor);
}

export function stringMatching(pattern: string | RegExp): unknown {
  return expect.stringMatching(pattern);
}

export function stringContaining(text: string): unknown {
  return expect.stringContaining(text);
}

export function arrayContaining(items: unknown[]): unknown {
  return expect.arrayContaining(items);
}

export function objectContaining(fields: Record<string, unknown>): unknown {
  return expect.objectContaining(fields);
}

export function stringNotContaining(text: string): unknown {
  return expect.not.stringContaining(text);
}
