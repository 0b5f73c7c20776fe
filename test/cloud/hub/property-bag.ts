/**
 * IoT Hub's MQTT property bag: the last topic segment of D2C and C2D topics,
 * `key=value&key2=value2` with keys and values URL-encoded. System properties
 * start with `$.` (`$.mid` message id, `$.cid` correlation id, `$.ct` content type, ...).
 */
export class PropertyBagError extends Error {}

/** IoT Hub caps a message's properties; more than this is not a message a device SDK sends. */
const MAX_PROPERTIES = 128;

export function decodePropertyBag(text: string): Map<string, string> {
  const bag = new Map<string, string>();
  if (text === '') return bag;
  const parts = text.split('&');
  if (parts.length > MAX_PROPERTIES) throw new PropertyBagError(`more than ${MAX_PROPERTIES} properties`);
  for (const part of parts) {
    if (part === '') continue; // a trailing '&' is what some SDKs send
    const eq = part.indexOf('=');
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    const key = decodeComponent(rawKey);
    if (key === '') throw new PropertyBagError('property with an empty name');
    bag.set(key, decodeComponent(rawValue));
  }
  return bag;
}

export function encodePropertyBag(bag: Iterable<[string, string]>): string {
  const parts: string[] = [];
  for (const [key, value] of bag) parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  return parts.join('&');
}

function decodeComponent(raw: string): string {
  try {
    // Query-string style: '+' is a space, as node's querystring (used by the SDK) writes it.
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    throw new PropertyBagError(`property ${JSON.stringify(raw.slice(0, 40))} is not valid URL encoding`);
  }
}

/** Splits a bag into system properties (`$.xxx`, prefix removed) and application properties. */
export function splitProperties(bag: Map<string, string>): { system: Record<string, string>; application: Record<string, string> } {
  const entries = [...bag];
  // fromEntries defines own properties, so a key like "__proto__" stays plain data.
  return {
    system: Object.fromEntries(entries.filter(([k]) => k.startsWith('$.')).map(([k, v]) => [k.slice(2), v])),
    application: Object.fromEntries(entries.filter(([k]) => !k.startsWith('$.'))),
  };
}
