/**
 * A token bucket: `take()` resolves when a send may go, at most `perSecond` a second on
 * average with a burst of one second's worth, first come first served. The device's own cap
 * on D2C messages, so that draining a backlog after an outage stays well inside the hub's
 * throttle instead of running into it.
 */
export class RateLimit {
  private tokens: number;
  private refilledAt: number;
  private readonly waiting: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private perSecond: number, private readonly now: () => number = Date.now) {
    this.tokens = perSecond;
    this.refilledAt = now();
  }

  setRate(perSecond: number): void {
    this.refill();
    this.perSecond = perSecond;
    this.tokens = Math.min(this.tokens, perSecond);
  }

  take(): Promise<void> {
    this.refill();
    if (this.waiting.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
  }

  /** Lets everything waiting go at once (the sends then fail on their own, e.g. when the link is gone). */
  release(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const resolve of this.waiting.splice(0)) resolve();
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.perSecond));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.waiting.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.waiting.shift()!();
      }
      if (this.waiting.length > 0) this.schedule();
    }, wait);
  }
}
