/**
 * IoT Hub's limits on twin documents (Microsoft Learn, "Understand and use device twins":
 * strings of at most 4 KB, integers from -4503599627370496 to 4503599627370495, objects
 * nested at most 10 deep). The hub refuses a whole reported patch for one value that
 * breaks them, and the device would then never converge; so every reported patch is
 * fitted first: long strings are clipped, huge integers become strings, deeper objects
 * are cut. Pure.
 */
export const MAX_STRING_BYTES = 4 * 1024;
export const MAX_DEPTH = 10;
const MIN_INTEGER = -4503599627370496;
const MAX_INTEGER = 4503599627370495;
const ELLIPSIS = '...';

export function fitTwinLimits(patch: Record<string, unknown>): Record<string, unknown> {
  return fitObject(patch, 0);
}

function fitObject(value: Record<string, unknown>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const fitted = fitValue(item, depth);
    if (fitted !== undefined) out[key] = fitted;
  }
  return out;
}

function fitValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return clipUtf8(value, MAX_STRING_BYTES);
  if (typeof value === 'number' && Number.isInteger(value) && (value < MIN_INTEGER || value > MAX_INTEGER)) return String(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth + 1 > MAX_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((item) => fitValue(item, depth + 1) ?? null);
  return fitObject(value as Record<string, unknown>, depth + 1);
}

/** `text` cut to at most `maxBytes` of UTF-8, ending in "..." when cut, never inside a character. */
export function clipUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let bytes = Buffer.byteLength(ELLIPSIS);
  let end = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += char.length;
  }
  return `${text.slice(0, end)}${ELLIPSIS}`;
}
