import { throttled, unavailable, type DpsError } from './errors.js';

/**
 * Fault knobs for agent tests: refuse the next N registration requests with 429 (with
 * Retry-After) or 503, and delay every device-facing answer.
 */
export class Faults {
  /** Added to every registration and operation-status answer. */
  latencyMs = 0;
  /**
   * A hostile or broken DPS: these fields replace the registration state of every
   * "assigned" operation-status answer (the device's assignment is made as usual).
   */
  assignedOverride: { assignedHub?: string; deviceId?: string } | undefined;
  private queue: Array<() => DpsError> = [];

  /** The next `count` registration requests get 429 Too Many Requests with `Retry-After: retryAfterSeconds`. */
  throttleNext(count: number, retryAfterSeconds = 1): void {
    for (let i = 0; i < count; i++) this.queue.push(() => throttled(retryAfterSeconds));
  }

  /** The next `count` registration requests get 503 Service Unavailable. */
  failNext(count: number): void {
    for (let i = 0; i < count; i++) this.queue.push(unavailable);
  }

  clear(): void {
    this.queue = [];
    this.latencyMs = 0;
    this.assignedOverride = undefined;
  }

  /** The operation-status body as sent, with `assignedOverride` applied. */
  answer(body: unknown): unknown {
    const state = (body as { status?: string; registrationState?: object } | undefined);
    if (!this.assignedOverride || state?.status !== 'assigned') return body;
    return { ...state, registrationState: { ...state.registrationState, ...this.assignedOverride } };
  }

  /** The fault for this request, if one is queued. */
  take(): DpsError | undefined {
    return this.queue.shift()?.();
  }
}
