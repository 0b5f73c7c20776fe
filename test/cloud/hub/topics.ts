import { decodePropertyBag, PropertyBagError } from './property-bag.js';

/**
 * The MQTT topics of IoT Hub's device API, as data: what a device may publish and
 * subscribe to, parsed into requests. Anything else is refused, so a device can
 * never reach another device's topics (device ids are compared exactly).
 */
export type DeviceRequest =
  /**
   * `propertyBytes`: what the properties add to the message size as IoT Hub counts it
   * (Microsoft Learn, "Create and read IoT Hub messages", message size): the values of the
   * system properties, the names and values of the application properties.
   */
  | { kind: 'telemetry'; properties: Map<string, string>; propertyBytes: number }
  | { kind: 'twin-get'; rid: string }
  | { kind: 'twin-patch-reported'; rid: string }
  | { kind: 'method-response'; rid: string; status: number };

export class TopicError extends Error {}

/** Parses a topic a device published to; throws TopicError when the device may not publish there. */
export function parseDevicePublish(deviceId: string, topic: string): DeviceRequest {
  const eventsPrefix = `devices/${deviceId}/messages/events`;
  if (topic === eventsPrefix || topic === `${eventsPrefix}/`) return { kind: 'telemetry', properties: new Map(), propertyBytes: 0 };
  if (topic.startsWith(`${eventsPrefix}/`)) {
    const bag = topic.slice(eventsPrefix.length + 1);
    if (bag.includes('/')) throw new TopicError(`unexpected level in telemetry topic ${clip(topic)}`);
    const properties = bagOrThrow(bag);
    return { kind: 'telemetry', properties, propertyBytes: propertySize(properties) };
  }
  if (!topic.startsWith('$iothub/')) throw new TopicError(`device ${deviceId} may not publish to ${clip(topic)}`);
  const q = topic.indexOf('?');
  const path = q < 0 ? topic : topic.slice(0, q);
  const query = bagOrThrow(q < 0 ? '' : topic.slice(q + 1));
  const rid = query.get('$rid');
  if (path === '$iothub/twin/GET/') return { kind: 'twin-get', rid: requireRid(rid, topic) };
  if (path === '$iothub/twin/PATCH/properties/reported/') return { kind: 'twin-patch-reported', rid: requireRid(rid, topic) };
  const method = /^\$iothub\/methods\/res\/(\d{3})\/$/.exec(path);
  if (method) return { kind: 'method-response', rid: requireRid(rid, topic), status: Number(method[1]) };
  throw new TopicError(`device ${deviceId} may not publish to ${clip(topic)}`);
}

/** The topic filters a device may subscribe to: its own C2D queue and the hub's $iothub topics. */
export function mayDeviceSubscribe(deviceId: string, filter: string): boolean {
  return filter === `devices/${deviceId}/messages/devicebound/#`
    || filter === '$iothub/methods/POST/#'
    || filter === '$iothub/twin/res/#'
    || filter === '$iothub/twin/PATCH/properties/desired/#';
}

/** Whether the hub may deliver `topic` to `deviceId` (a second guard behind the subscribe check). */
export function mayDeliverTo(deviceId: string, topic: string): boolean {
  if (topic.startsWith('devices/')) return topic.startsWith(`devices/${deviceId}/messages/devicebound/`);
  return topic.startsWith('$iothub/methods/POST/') || topic.startsWith('$iothub/twin/res/')
    || topic.startsWith('$iothub/twin/PATCH/properties/desired/');
}

export function c2dTopic(deviceId: string, encodedBag: string): string {
  return `devices/${deviceId}/messages/devicebound/${encodedBag}`;
}

export const methodsSubscription = '$iothub/methods/POST/#';
export const desiredSubscription = '$iothub/twin/PATCH/properties/desired/#';

function bagOrThrow(text: string): Map<string, string> {
  try {
    return decodePropertyBag(text);
  } catch (err) {
    if (err instanceof PropertyBagError) throw new TopicError(err.message);
    throw err;
  }
}

function propertySize(properties: Map<string, string>): number {
  let size = 0;
  for (const [key, value] of properties) size += Buffer.byteLength(value) + (key.startsWith('$.') ? 0 : Buffer.byteLength(key));
  return size;
}

function requireRid(rid: string | undefined, topic: string): string {
  if (!rid || rid.length > 128) throw new TopicError(`request topic without a valid $rid: ${clip(topic)}`);
  return rid;
}

function clip(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}
