import { parseHttpDate } from '../time/http-date.js';

/**
 * Exponential backoff with full jitter (a random delay between 0 and the exponential
 * ceiling), capped, and never giving up: a device keeps trying for years. A server's
 * Retry-After, when given, is honoured as the minimum wait.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  multiplier: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 5 * 60_000, multiplier: 2 };

/** A Retry-After beyond this is treated as this: a misconfigured server must not park a device for days. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt. `retryAfterMs` is what the server asked for, if anything. */
  next(retryAfterMs?: number): number {
    const ceiling = Math.min(this.policy.maxMs, this.policy.initialMs * this.policy.multiplier ** Math.min(this.attempt, 52));
    this.attempt++;
    const jittered = Math.floor(this.random() * ceiling);
    if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs) || retryAfterMs <= 0) return jittered;
    // The server knows its load: wait at least as long as it asked, up to an hour.
    return Math.max(jittered, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** Retry-After as seconds or an HTTP date, in milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const date = parseHttpDate(text);
  return date === undefined ? undefined : Math.max(0, date - now);
}
