import device from 'azure-iot-device';
import type { Logger } from '../log/logger.js';

/** IoT Hub allows 10 levels in twin documents; anything deeper is cut off here. */
export const MAX_TWIN_DEPTH = 16;
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * A copy of a twin document the SDK can merge safely: without the keys lodash's merge
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

/** azure-iot-device's Twin: the lodash merge of twin documents and its desired-patch handler. */
export interface TwinInternals {
  // Function-valued members, not methods: the guards keep the originals and call them with the Twin as `this`.
  _mergePatch: (this: TwinInternals, dest: unknown, patch: unknown) => void;
  _onDesiredPropertiesUpdate: (this: TwinInternals, patch: unknown) => void;
}

let twinGuarded = false;

/**
 * Makes azure-iot-device's Twin merge only sanitised documents and never throw out of its
 * MQTT callbacks. Installed once per process, before the first client fetches a twin; the
 * Twin binds `_onDesiredPropertiesUpdate` when it is constructed, so the prototype is the seam.
 */
export function guardTwinMerges(log: Logger): void {
  if (twinGuarded) return;
  twinGuarded = true;
  const proto = device.Twin.prototype as unknown as TwinInternals;
  const merge = proto._mergePatch;
  const onDesired = proto._onDesiredPropertiesUpdate;
  proto._mergePatch = function guardedMerge(this: TwinInternals, dest, patch) {
    try {
      merge.call(this, dest, sanitizeTwinDocument(patch));
    } catch (err) {
      log.warn('twin.merge_refused', { err });
    }
  };
  proto._onDesiredPropertiesUpdate = function guardedDesired(this: TwinInternals, patch) {
    try {
      onDesired.call(this, sanitizeTwinDocument(patch));
    } catch (err) {
      log.warn('twin.desired_patch_refused', { err });
    }
  };
}
