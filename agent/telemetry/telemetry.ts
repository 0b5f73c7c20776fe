import device from 'azure-iot-device';
import type { Logger } from '../log/logger.js';
import type { DiskQueue, QueuedMessage, QueueStats } from './disk-queue.js';

// CommonJS package: Node's ESM loader cannot see its named exports.
const { Message } = device;
type Client = InstanceType<typeof device.Client>;

/** Messages published at once while draining; MQTT keeps them in order on the one connection. */
const BATCH = 50;
const RETRY_MS = 1_000;

export interface TelemetryOptions {
  queue: DiskQueue;
  log: Logger;
  intervalSeconds: number;
  /** One health sample (CPU, memory, disk, temperature, uptime). */
  sample: () => Promise<Record<string, unknown>>;
  /** The hub connection as the daemon sees it, for the sample. */
  connection: () => { state: string; since: string };
}

/**
 * Periodic health telemetry and the delivery of every queued D2C message. Everything goes
 * through the disk queue first, online or not; while a client is attached the queue is
 * drained oldest first, and a message counts as delivered on the hub's PUBACK.
 */
export class Telemetry {
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private interval: number;
  private draining = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: TelemetryOptions) {
    this.interval = options.intervalSeconds;
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
    }, this.interval * 1000);
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (;;) {
        const client = this.client;
        const batch = this.options.queue.peek(BATCH);
        if (!client || batch.length === 0 || this.stopped) return;
        try {
          await Promise.all(batch.map((m) => client.sendEvent(toMessage(m))));
        } catch (err) {
          this.options.log.warn('telemetry.send_failed', { err, pending: this.options.queue.stats().depth, retryInMs: RETRY_MS });
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => void this.drain(), RETRY_MS);
          return;
        }
        this.options.queue.ack(batch[batch.length - 1]!.seq);
      }
    } finally {
      this.draining = false;
    }
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
