/**
 * What `status` tells a technician about trouble: the last error and when it happened, how
 * many failures in a row since the last healthy state, and when the next attempt is due.
 * Fed from the daemon's state changes and its retry sleeps; a retry policy that keeps its
 * own history can feed it the same way.
 */
export interface FailureFacts {
  lastError: { message: string; at: string } | null;
  consecutiveFailures: number;
  /** When the daemon's next attempt is due (ISO 8601), null when it is not waiting to retry. */
  nextRetryAt: string | null;
}

export class FailureRecord {
  private lastError: FailureFacts['lastError'] = null;
  private consecutive = 0;
  private readonly retries = new Set<number>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  /** A failure (the daemon went degraded): counted, and remembered with its time. */
  failed(message: string): void {
    this.consecutive++;
    this.lastError = { message, at: this.now().toISOString() };
  }

  /** Healthy again: the count starts over; the last error stays for the record. */
  recovered(): void {
    this.consecutive = 0;
  }

  /** A retry is due in `ms`; returns the function that says it is no longer waited for. */
  waiting(ms: number): () => void {
    const due = this.now().getTime() + ms;
    this.retries.add(due);
    return () => this.retries.delete(due);
  }

  facts(): FailureFacts {
    const next = this.retries.size ? Math.min(...this.retries) : undefined;
    return {
      lastError: this.lastError,
      consecutiveFailures: this.consecutive,
      nextRetryAt: next === undefined ? null : new Date(next).toISOString(),
    };
  }
}
