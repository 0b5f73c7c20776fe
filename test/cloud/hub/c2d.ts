import { randomUUID } from 'node:crypto';
import { encodePropertyBag } from './property-bag.js';
import { c2dTopic } from './topics.js';

/**
 * Cloud-to-device messages: the topic with IoT Hub's property bag, and the
 * per-device queue that holds messages until the device subscribes to its C2D
 * topic (IoT Hub keeps at most 50 undelivered messages per device).
 */
export interface C2dMessage {
  /** The body; a string is sent as UTF-8. */
  data: Buffer | string;
  messageId?: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  properties?: Record<string, string>;
}

export const MAX_C2D_QUEUE = 50;
export const MAX_C2D_BYTES = 64 * 1024;

export function c2dPacket(deviceId: string, message: C2dMessage): { messageId: string; topic: string; payload: Buffer } {
  const messageId = message.messageId ?? randomUUID();
  const bag: [string, string][] = [['$.mid', messageId], ['$.to', `/devices/${deviceId}/messages/deviceBound`]];
  if (message.correlationId) bag.push(['$.cid', message.correlationId]);
  if (message.contentType) bag.push(['$.ct', message.contentType]);
  if (message.contentEncoding) bag.push(['$.ce', message.contentEncoding]);
  for (const [key, value] of Object.entries(message.properties ?? {})) bag.push([key, value]);
  const payload = typeof message.data === 'string' ? Buffer.from(message.data, 'utf8') : message.data;
  return { messageId, topic: c2dTopic(deviceId, encodePropertyBag(bag)), payload };
}

export class C2dQueues {
  private readonly queues = new Map<string, { topic: string; payload: Buffer }[]>();

  /** False when the device's queue is full. */
  hold(deviceId: string, packet: { topic: string; payload: Buffer }): boolean {
    const queue = this.queues.get(deviceId) ?? [];
    if (queue.length >= MAX_C2D_QUEUE) return false;
    queue.push(packet);
    this.queues.set(deviceId, queue);
    return true;
  }

  take(deviceId: string): { topic: string; payload: Buffer }[] {
    const queue = this.queues.get(deviceId) ?? [];
    this.queues.delete(deviceId);
    return queue;
  }

  count(deviceId: string): number {
    return this.queues.get(deviceId)?.length ?? 0;
  }

  drop(deviceId: string): void {
    this.queues.delete(deviceId);
  }
}
