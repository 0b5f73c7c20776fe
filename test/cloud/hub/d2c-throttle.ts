/**
 * IoT Hub's device-to-cloud throttle and daily quota (Microsoft Learn, "IoT Hub quotas and
 * throttling"). Sends are admitted at `perSecond` (S1: the higher of 100/s or 12/s/unit)
 * with a burst of one second's worth; beyond that IoT Hub shapes the traffic: it queues up
 * to `backlog` sends and processes them at the limit rate (the device sees its PUBACKs come
 * later), and once the queue is full it answers 429 ThrottlingException, which over MQTT
 * closes the device's connection. The daily quota counts messages in 4 KB chunks
 * (0.5 KB on the free tier); once it is used up, sends and connections are refused until
 * the next UTC day.
 */
export interface D2cLimits {
  /** Sends admitted per second, hub-wide; undefined: no limit. */
  perSecond?: number;
  /** Sends queued beyond the rate before the hub throttles (traffic shaping). */
  backlog?: number;
  /** Messages per UTC day, counted in `quotaChunkBytes` chunks; undefined: no quota. */
  dailyQuota?: number;
  quotaChunkBytes?: number;
}

export type Admission = 'accepted' | 'throttled' | 'quota';

export const DEFAULT_BACKLOG = 1_000;
/** The chunk size the daily quota counts in on paid tiers. */
export const QUOTA_CHUNK_BYTES = 4 * 1024;

interface Waiting {
  /** The connection that sent it: when it closes, what it has queued goes with it. */
  owner: object;
  admit: (verdict: Admission) => void;
}

export class D2cThrottle {
  private limits: D2cLimits = {};
  private tokens = 0;
  private refilledAt = 0;
  private readonly waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private quotaDay = '';
  private quotaUsed = 0;

  constructor(private readonly now: () => number = Date.now) {}

  configure(limits: D2cLimits): void {
    this.limits = { ...limits };
    this.tokens = limits.perSecond ?? 0;
    this.refilledAt = this.now();
  }

  get settings(): Readonly<D2cLimits> {
    return this.limits;
  }

  /** Quota chunks used today. */
  get used(): number {
    this.rollDay();
    return this.quotaUsed;
  }

  quotaExhausted(): boolean {
    const { dailyQuota } = this.limits;
    return dailyQuota !== undefined && this.used >= dailyQuota;
  }

  /** A new UTC day, as far as the quota is concerned. */
  resetQuota(): void {
    this.quotaUsed = 0;
  }

  /** Decides about one send of `bytes` on `owner`'s connection; `admit` is called once, at once or when the queue gets to it. */
  admit(owner: object, bytes: number, admit: (verdict: Admission) => void): void {
    if (this.quotaExhausted()) return admit('quota');
    this.quotaUsed += Math.max(1, Math.ceil(bytes / (this.limits.quotaChunkBytes ?? QUOTA_CHUNK_BYTES)));
    if (this.limits.perSecond === undefined) return admit('accepted');
    this.refill();
    if (this.waiting.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return admit('accepted');
    }
    if (this.waiting.length >= (this.limits.backlog ?? DEFAULT_BACKLOG)) return admit('throttled');
    this.waiting.push({ owner, admit });
    this.schedule();
  }

  /** A connection that closed: its queued sends are dropped (never acknowledged, so the device sends them again). */
  forget(owner: object): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.owner === owner) this.waiting.splice(i, 1);
  }

  get queued(): number {
    return this.waiting.length;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.length = 0;
  }

  private refill(): void {
    const perSecond = this.limits.perSecond ?? 0;
    const now = this.now();
    this.tokens = Math.min(perSecond, this.tokens + ((now - this.refilledAt) / 1000) * perSecond);
    this.refilledAt = now;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const perSecond = this.limits.perSecond ?? 1;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.waiting.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.waiting.shift()!.admit('accepted');
      }
      if (this.waiting.length > 0) this.schedule();
    }, Math.max(1, Math.ceil((1 - Math.min(this.tokens, 1)) * 1000 / perSecond)));
  }

  private rollDay(): void {
    const day = new Date(this.now()).toISOString().slice(0, 10);
    if (day !== this.quotaDay) {
      this.quotaDay = day;
      this.quotaUsed = 0;
    }
  }
}
