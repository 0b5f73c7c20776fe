import device from 'azure-iot-device';
import type { Logger } from '../log/logger.js';
import { Backoff, type BackoffPolicy } from '../retry/backoff.js';
import type { DiskQueue, QueuedMessage, QueueStats } from './disk-queue.js';
import { DrainWindow } from './drain-window.js';
import { RateLimit } from './rate-limit.js';

// CommonJS package: Node's ESM loader cannot see its named exports.
const { Message } = device;
type Client = InstanceType<typeof device.Client>;

/** Draining resumes after a failure only after 1 s, 2 s, 4 s ... up to a minute (with jitter), however soon the link is back. */
const DRAIN_RETRY: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, multiplier: 2 };

export interface TelemetryOptions {
  queue: DiskQueue;
  log: Logger;
  intervalSeconds: number;
  /** The device's own cap on D2C messages per second (telemetry.maxMessagesPerSecond). */
  maxMessagesPerSecond: number;
  /** Milliseconds in a second of the telemetry interval: 1000, except in tests (IOT_AGENT_TEST_TIMINGS). */
  secondMs?: number;
  /** One health sample (CPU, memory, disk, temperature, uptime). */
  sample: () => Promise<Record<string, unknown>>;
  /** The hub connection as the daemon sees it, for the sample. */
  connection: () => { state: string; since: string };
}

/**
 * Periodic health telemetry and the delivery of every queued D2C message. Everything goes
 * through the disk queue first, online or not; while a client is attached the queue is
 * drained oldest first, and a message counts as delivered on the hub's PUBACK.
 *
 * Draining adapts to IoT Hub's D2C throttle (Microsoft Learn, IoT Hub quotas and
 * throttling) instead of bouncing off it: sends are paced by the device's own rate cap; at
 * most a window of messages is in flight, and the hub's traffic shaping then slows the
 * PUBACKs down to its rate; a send that fails (over MQTT a 429 closes the connection)
 * halves the window for an hour and holds draining back with a growing delay, and only
 * the messages the hub acknowledged count as delivered, so none is sent twice.
 */
export class Telemetry {
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private interval: number;
  private draining = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly rate: RateLimit;
  private readonly window = new DrainWindow();
  private readonly drainBackoff = new Backoff(DRAIN_RETRY);
  private resumeAt = 0;

  constructor(private readonly options: TelemetryOptions) {
    this.interval = options.intervalSeconds;
    this.rate = new RateLimit(options.maxMessagesPerSecond);
  }

  start(): void {
    this.stopped = false;
    this.arm();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
    this.client = undefined;
    this.rate.release();
    await this.options.queue.close();
  }

  intervalSeconds(): number {
    return this.interval;
  }

  setIntervalSeconds(seconds: number): void {
    if (seconds === this.interval) return;
    this.options.log.info('telemetry.interval_changed', { from: this.interval, to: seconds });
    this.interval = seconds;
    this.arm();
  }

  queueStats(): QueueStats {
    return this.options.queue.stats();
  }

  setMaxMessagesPerSecond(perSecond: number): void {
    this.rate.setRate(perSecond);
  }

  stats(): { intervalSeconds: number; queued: number; dropped: number } {
    const { depth, dropped } = this.options.queue.stats();
    return { intervalSeconds: this.interval, queued: depth, dropped };
  }

  /** Queues a D2C message durably; it goes out now if connected, or after the next connect. */
  async enqueue(kind: string, body: unknown, correlationId?: string): Promise<QueuedMessage> {
    const message = await this.options.queue.append(kind, body, correlationId);
    void this.drain();
    return message;
  }

  attach(client: Client): void {
    this.client = client;
    void this.drain();
  }

  detach(): void {
    this.client = undefined;
    this.rate.release();
  }

  /** Produces one health message now (also what the timer does). */
  async produce(): Promise<void> {
    try {
      const health = await this.options.sample();
      const { depth, dropped } = this.options.queue.stats();
      await this.enqueue('health', {
        time: new Date().toISOString(), ...health, connection: this.options.connection(), queue: { depth, dropped },
        intervalSeconds: this.interval,
      });
    } catch (err) {
      this.options.log.warn('telemetry.sample_failed', { err });
    }
  }

  private arm(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.produce().finally(() => this.arm());
    }, this.interval * (this.options.secondMs ?? 1000));
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (;;) {
        const client = this.client;
        const batch = this.options.queue.peek(this.window.size);
        if (!client || batch.length === 0 || this.stopped) return;
        const wait = this.resumeAt - Date.now();
        if (wait > 0) return this.retryIn(wait);
        const results = await Promise.allSettled(batch.map((message) => this.send(client, message)));
        const failed = results.findIndex((r) => r.status === 'rejected');
        // Only what the hub acknowledged, in order, is delivered; the rest goes again.
        const delivered = failed < 0 ? batch.length : failed;
        if (delivered > 0) this.options.queue.ack(batch[delivered - 1]!.seq);
        if (failed >= 0) return this.onDrainFailed((results[failed] as PromiseRejectedResult).reason, delivered);
        this.onBatchDelivered(batch.length);
      }
    } finally {
      this.draining = false;
    }
  }

  private async send(client: Client, message: QueuedMessage): Promise<void> {
    await this.rate.take();
    if (this.client !== client || this.stopped) throw new Error('the hub connection went away');
    await client.sendEvent(toMessage(message));
  }

  private onDrainFailed(err: unknown, delivered: number): void {
    this.window.failed(Date.now());
    const delay = this.drainBackoff.next();
    this.resumeAt = Date.now() + delay;
    this.options.log.warn('telemetry.send_failed', { err, delivered, pending: this.options.queue.stats().depth, window: this.window.size, retryInMs: delay });
    this.retryIn(delay);
  }

  private onBatchDelivered(size: number): void {
    if (this.window.delivered(size, Date.now())) this.drainBackoff.reset(); // the queue is empty: the hub keeps up
  }

  private retryIn(ms: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.drain(), ms);
  }
}

function toMessage(queued: QueuedMessage): InstanceType<typeof Message> {
  const message = new Message(JSON.stringify(queued.body));
  message.messageId = queued.mid;
  message.contentType = 'application/json';
  message.contentEncoding = 'utf-8';
  if (queued.correlationId) message.correlationId = queued.correlationId;
  message.properties.add('iot-agent-message', queued.kind);
  message.properties.add('iot-agent-seq', String(queued.seq));
  message.properties.add('iot-agent-created', queued.at);
  return message;
}
