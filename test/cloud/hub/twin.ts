/**
 * Device twin documents as IoT Hub keeps them: tags, desired and reported
 * properties, each side with its own `$version`, and a twin etag that changes on
 * every write. Pure data and JSON merge-patch rules, no I/O.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface TwinState {
  tags: JsonObject;
  desired: JsonObject;
  reported: JsonObject;
  desiredVersion: number;
  reportedVersion: number;
  /** Bumped on every change; the etag is derived from it. */
  version: number;
}

export class TwinPatchError extends Error {}

/**
 * IoT Hub's documented twin limits (Microsoft Learn, "Understand and use device twins in
 * IoT Hub", Tags and properties format; Device twin size): keys of at most 1 KB without
 * '.', '$', SP or control characters; strings of at most 4 KB; integers from
 * -4503599627370496 to 4503599627370495; objects nested at most 10 deep (the article's own
 * ten-level example is valid: its root is level 0); 8 KB of tags and 32 KB each of desired
 * and reported properties, counted the article's way (twinDocumentSize).
 */
export const TWIN_LIMITS = {
  maxDepth: 10,
  maxKeyBytes: 1024,
  maxStringBytes: 4 * 1024,
  minInteger: -4503599627370496,
  maxInteger: 4503599627370495,
  maxTagsBytes: 8 * 1024,
  maxPropertiesBytes: 32 * 1024,
} as const;

export function emptyTwin(desired: JsonObject = {}, tags: JsonObject = {}): TwinState {
  return { tags, desired, reported: {}, desiredVersion: 1, reportedVersion: 1, version: 1 };
}

/** An opaque etag as IoT Hub shows them (base64 of a counter). */
export function twinEtag(twin: TwinState): string {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(BigInt(twin.version));
  return buf.toString('base64');
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks that `patch` is an object IoT Hub would accept as a twin patch; throws TwinPatchError. */
export function validatePatch(patch: unknown, what: string): JsonObject {
  if (!isJsonObject(patch)) throw new TwinPatchError(`${what} must be a JSON object`);
  checkObject(patch, what, 0);
  return patch;
}

function checkObject(value: JsonObject, path: string, depth: number): void {
  for (const [key, child] of Object.entries(value)) {
    // Keys may not hold '.', '$', spaces or control characters; $-keys are the hub's own metadata.
    // eslint-disable-next-line no-control-regex
    if (key === '' || /[.$ \u0000-\u001f\u007f-\u009f]/.test(key) || Buffer.byteLength(key) > TWIN_LIMITS.maxKeyBytes) {
      throw new TwinPatchError(`${path} has an invalid property name ${JSON.stringify(key.slice(0, 40))}`);
    }
    checkValue(child, `${path}.${key}`, depth);
  }
}

function checkValue(value: Json, path: string, depth: number): void {
  if (typeof value === 'string' && Buffer.byteLength(value) > TWIN_LIMITS.maxStringBytes) {
    throw new TwinPatchError(`${path} is a string over ${TWIN_LIMITS.maxStringBytes} bytes`);
  }
  if (typeof value === 'number' && Number.isInteger(value) && (value < TWIN_LIMITS.minInteger || value > TWIN_LIMITS.maxInteger)) {
    throw new TwinPatchError(`${path} is an integer outside ${TWIN_LIMITS.minInteger}..${TWIN_LIMITS.maxInteger}`);
  }
  if (value === null || typeof value !== 'object') return;
  if (depth + 1 > TWIN_LIMITS.maxDepth) throw new TwinPatchError(`${path} nests deeper than ${TWIN_LIMITS.maxDepth} levels`);
  if (Array.isArray(value)) value.forEach((item, i) => checkValue(item, `${path}[${i}]`, depth + 1));
  else checkObject(value, path, depth + 1);
}

/**
 * A twin section's size as IoT Hub counts it: every key and value, keys and strings as
 * their UTF-8 bytes without control characters, numbers as 8 bytes, booleans as 4,
 * objects and arrays as what they hold.
 */
export function twinDocumentSize(value: Json): number {
  if (typeof value === 'string') return textSize(value);
  if (typeof value === 'number') return 8;
  if (typeof value === 'boolean') return 4;
  if (value === null) return 0;
  if (Array.isArray(value)) return value.reduce<number>((sum, item) => sum + twinDocumentSize(item), 0);
  return Object.entries(value).reduce<number>((sum, [key, item]) => sum + textSize(key) + twinDocumentSize(item), 0);
}

function textSize(text: string): number {
  // eslint-disable-next-line no-control-regex
  return Buffer.byteLength(text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ''));
}

/** JSON merge patch (RFC 7396): objects merge, null deletes, anything else replaces. */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else {
      const current = Object.hasOwn(result, key) ? result[key] : undefined;
      setOwn(result, key, isJsonObject(value) ? mergePatch(isJsonObject(current) ? current : {}, value) : value);
    }
  }
  return result;
}

/** Defines rather than assigns, so a key named "__proto__" stays data. */
function setOwn(target: JsonObject, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function checkSize(side: JsonObject, what: string, limit: number): void {
  if (twinDocumentSize(side) > limit) throw new TwinPatchError(`${what} would exceed ${limit} bytes`);
}

export function patchReported(twin: TwinState, patch: JsonObject): TwinState {
  const reported = mergePatch(twin.reported, validatePatch(patch, 'reported properties'));
  checkSize(reported, 'reported properties', TWIN_LIMITS.maxPropertiesBytes);
  return { ...twin, reported, reportedVersion: twin.reportedVersion + 1, version: twin.version + 1 };
}

export function patchDesired(twin: TwinState, patch: JsonObject): TwinState {
  const desired = mergePatch(twin.desired, validatePatch(patch, 'desired properties'));
  checkSize(desired, 'desired properties', TWIN_LIMITS.maxPropertiesBytes);
  return { ...twin, desired, desiredVersion: twin.desiredVersion + 1, version: twin.version + 1 };
}

export function patchTags(twin: TwinState, patch: JsonObject): TwinState {
  const tags = mergePatch(twin.tags, validatePatch(patch, 'tags'));
  checkSize(tags, 'tags', TWIN_LIMITS.maxTagsBytes);
  return { ...twin, tags, version: twin.version + 1 };
}

/** What a device gets for `$iothub/twin/GET`: both sides with their versions. */
export function deviceTwinView(twin: TwinState): JsonObject {
  return {
    desired: { ...twin.desired, $version: twin.desiredVersion },
    reported: { ...twin.reported, $version: twin.reportedVersion },
  };
}
