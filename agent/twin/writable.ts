import { LOG_LEVELS } from '../config.js';
import { briefly, PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../lib/validate.js';
import { TELEMETRY_INTERVAL_RANGE } from '../config/telemetry-limits.js';

/**
 * The writable (desired) properties and their checks: pure, no I/O. Values come from the
 * cloud and are untrusted; a value that fails its check is never applied.
 */
export const WRITABLE_PROPERTIES = ['telemetryIntervalSeconds', 'logLevel', 'hardeningProfile'] as const;
export type WritableProperty = (typeof WRITABLE_PROPERTIES)[number];

export type Checked = { ok: true; value: number | string } | { ok: false; reason: string };

export function checkWritable(key: WritableProperty, value: unknown): Checked {
  switch (key) {
    case 'telemetryIntervalSeconds': {
      const { min, max } = TELEMETRY_INTERVAL_RANGE;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        return { ok: false, reason: `expected whole seconds from ${min} to ${max}, got ${briefly(value)}` };
      }
      return { ok: true, value };
    }
    case 'logLevel':
      if (typeof value !== 'string' || !(LOG_LEVELS as readonly string[]).includes(value)) {
        return { ok: false, reason: `expected one of ${LOG_LEVELS.join(', ')}, got ${briefly(value)}` };
      }
      return { ok: true, value };
    case 'hardeningProfile':
      if (typeof value !== 'string' || !PROFILE_NAME.test(value)) {
        return { ok: false, reason: `expected ${PROFILE_NAME_EXPECTED}, got ${briefly(value)}` };
      }
      return { ok: true, value };
  }
}

/** Azure's acknowledgement of a writable property: `{ value, ac, av, ad }`. */
export interface WritableAck {
  value: unknown;
  ac: number;
  av: number;
  ad: string;
}

export function ack(value: unknown, ac: number, av: number, ad: string): WritableAck {
  return { value, ac, av, ad };
}

/** The desired document's version, or 0 when it has none or a broken one. */
export function desiredVersion(doc: Record<string, unknown>): number {
  const version = doc.$version;
  return typeof version === 'number' && Number.isSafeInteger(version) ? version : 0;
}
