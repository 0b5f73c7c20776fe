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

/** IoT Hub's documented limits: 32 KiB per property side, 10 levels of nesting, 1 KiB keys. */
const MAX_SIDE_BYTES = 32 * 1024;
const MAX_DEPTH = 10;
const MAX_KEY_BYTES = 1024;

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
  checkKeys(patch, what, 1);
  return patch;
}

function checkKeys(value: JsonObject, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new TwinPatchError(`${path} nests deeper than ${MAX_DEPTH} levels`);
  for (const [key, child] of Object.entries(value)) {
    // Keys may not hold '.', '$', spaces or control characters; $-keys are the hub's own metadata.
    // eslint-disable-next-line no-control-regex
    if (key === '' || /[.$ \u0000-\u001f\u007f-\u009f]/.test(key) || Buffer.byteLength(key) > MAX_KEY_BYTES) {
      throw new TwinPatchError(`${path} has an invalid property name ${JSON.stringify(key.slice(0, 40))}`);
    }
    if (isJsonObject(child)) checkKeys(child, `${path}.${key}`, depth + 1);
  }
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

function checkSize(side: JsonObject, what: string): void {
  if (Buffer.byteLength(JSON.stringify(side)) > MAX_SIDE_BYTES) throw new TwinPatchError(`${what} would exceed ${MAX_SIDE_BYTES} bytes`);
}

export function patchReported(twin: TwinState, patch: JsonObject): TwinState {
  const reported = mergePatch(twin.reported, validatePatch(patch, 'reported properties'));
  checkSize(reported, 'reported properties');
  return { ...twin, reported, reportedVersion: twin.reportedVersion + 1, version: twin.version + 1 };
}

export function patchDesired(twin: TwinState, patch: JsonObject): TwinState {
  const desired = mergePatch(twin.desired, validatePatch(patch, 'desired properties'));
  checkSize(desired, 'desired properties');
  return { ...twin, desired, desiredVersion: twin.desiredVersion + 1, version: twin.version + 1 };
}

export function patchTags(twin: TwinState, patch: JsonObject): TwinState {
  const tags = mergePatch(twin.tags, validatePatch(patch, 'tags'));
  checkSize(tags, 'tags');
  return { ...twin, tags, version: twin.version + 1 };
}

/** What a device gets for `$iothub/twin/GET`: both sides with their versions. */
export function deviceTwinView(twin: TwinState): JsonObject {
  return {
    desired: { ...twin.desired, $version: twin.desiredVersion },
    reported: { ...twin.reported, $version: twin.reportedVersion },
  };
}
