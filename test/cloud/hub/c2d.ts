import { randomUUID } from 'node:crypto';
import { decodePropertyBag, encodePropertyBag } from './property-bag.js';
import { c2dTopic } from './topics.js';

/**
 * Cloud-to-device messages: the topic with IoT Hub's property bag, and the
 * per-device queue that holds messages until the device subscribes to its C2D
 * topic (IoT Hub keeps at most 50 undelivered messages per device). Every message
 * expires (Microsoft Learn, "Understand cloud-to-device messaging", message expiration):
 * at the sender's `expiryTimeUtc`, or after the hub's default time to live (1 hour,
 * at most 48 hours); an expired message is never delivered. It travels as `$.exp`.
 */
export interface C2dMessage {
  /** The body; a string is sent as UTF-8. */
  data: Buffer | string;
  messageId?: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  properties?: Record<string, string>;
  /** When the message expires; the hub's default time to live otherwise. */
  expiryTimeUtc?: Date;
}

export const MAX_C2D_QUEUE = 50;
export const MAX_C2D_BYTES = 64 * 1024;
export const DEFAULT_C2D_TTL_SECONDS = 3_600;
export const MAX_C2D_TTL_SECONDS = 48 * 3_600;

export interface C2dPacket {
  messageId: string;
  topic: string;
  payload: Buffer;
  expiry: Date;
}

export function c2dPacket(deviceId: string, message: C2dMessage, defaultTtlSeconds = DEFAULT_C2D_TTL_SECONDS): C2dPacket {
  const messageId = message.messageId ?? randomUUID();
  const expiry = message.expiryTimeUtc ?? new Date(Date.now() + defaultTtlSeconds * 1000);
  const bag: [string, string][] = [['$.mid', messageId], ['$.to', `/devices/${deviceId}/messages/deviceBound`], ['$.exp', expiry.toISOString()]];
  if (message.correlationId) bag.push(['$.cid', message.correlationId]);
  if (message.contentType) bag.push(['$.ct', message.contentType]);
  if (message.contentEncoding) bag.push(['$.ce', message.contentEncoding]);
  for (const [key, value] of Object.entries(message.properties ?? {})) bag.push([key, value]);
  const payload = typeof message.data === 'string' ? Buffer.from(message.data, 'utf8') : message.data;
  return { messageId, topic: c2dTopic(deviceId, encodePropertyBag(bag)), payload, expiry };
}

/** Whether a C2D topic carries an expiry (`$.exp`) that has passed. */
export function c2dExpired(topic: string, now = Date.now()): boolean {
  const match = /^devices\/[^/]+\/messages\/devicebound\/(.*)$/.exec(topic);
  if (!match) return false;
  let exp: string | undefined;
  try {
    exp = decodePropertyBag(match[1]!).get('$.exp');
  } catch {
    return false;
  }
  const at = exp === undefined ? NaN : Date.parse(exp);
  return Number.isFinite(at) && at <= now;
}

export class C2dQueues {
  private readonly queues = new Map<string, C2dPacket[]>();
  /** Messages that expired before they could be delivered. */
  expired = 0;

  /** False when the device's queue is full (expired messages do not count). */
  hold(deviceId: string, packet: C2dPacket): boolean {
    const queue = this.live(deviceId);
    if (queue.length >= MAX_C2D_QUEUE) return false;
    queue.push(packet);
    this.queues.set(deviceId, queue);
    return true;
  }

  take(deviceId: string): C2dPacket[] {
    const queue = this.live(deviceId);
    this.queues.delete(deviceId);
    return queue;
  }

  count(deviceId: string): number {
    return this.live(deviceId).length;
  }

  private live(deviceId: string): C2dPacket[] {
    const queue = this.queues.get(deviceId) ?? [];
    const now = Date.now();
    const live = queue.filter((p) => p.expiry.getTime() > now);
    this.expired += queue.length - live.length;
    if (live.length !== queue.length) this.queues.set(deviceId, live);
    return live;
  }

  drop(deviceId: string): void {
    this.queues.delete(deviceId);
  }
}
