/** IoT Hub allows 10 levels in twin documents; anything deeper is cut off here. */
export const MAX_TWIN_DEPTH = 16;
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * A copy of a twin document the SDK can merge safely (agent/hub/sdk-internals.ts installs it
 * into the SDK's Twin): without the keys lodash's merge
 * trips over (`{"constructor": [1]}` in a desired patch throws inside the SDK's MQTT
 * handler, an uncaught exception, and the same document in the full twin would do it
 * again after every restart) and without subtrees deeper than MAX_TWIN_DEPTH.
 */
export function sanitizeTwinDocument(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_TWIN_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((item) => sanitizeTwinDocument(item, depth + 1) ?? null);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (UNSAFE_KEYS.has(key)) continue;
    const clean = sanitizeTwinDocument(item, depth + 1);
    if (clean !== undefined) out[key] = clean;
  }
  return out;
}
