
import { dpsErrors, type SimDpsError } from '../errors.js';

/** How DPS ends a registration it could not complete: `status: "failed"` with its code and message. */
export interface AssignmentFailure {
  errorCode: number;
  errorMessage: string;
}

/**
 * Fault knobs for agent tests: refuse the next N registration requests with 429 (with
 * Retry-After) or 503, end the next N assignments as `failed`, make assignments take
 * longer, delay every device-facing answer, answer with a crafted assignment, and leave the
 * Date header out.
 */
export class Faults {
  /** Added to every registration and operation-status answer. */
  latencyMs = 0;
  /** How long an assignment takes once the signed registration arrived (the device polls meanwhile). */
  assignmentDelayMs = 0;
  /**
   * A hostile or broken DPS: these fields replace the registration state of every
   * "assigned" operation-status answer (the device's assignment is made as usual).
   */
  assignedOverride: { assignedHub?: string; deviceId?: string } | undefined;
  /** Answers without a Date header (as behind a gateway that drops it): a device learns no service time from them. */
  omitDate = false;
  private queue: Array<() => SimDpsError> = [];
  private signedQueue: Array<() => SimDpsError> = [];
  private failures: AssignmentFailure[] = [];

  /** The next `count` registration requests get 429 Too Many Requests with `Retry-After: retryAfterSeconds`. */
  throttleNext(count: number, retryAfterSeconds = 1): void {
    for (let i = 0; i < count; i++) this.queue.push(() => dpsErrors.throttled(retryAfterSeconds));
  }

  /** The next `count` signed registration requests (after the challenge) get 429 with `Retry-After: retryAfterSeconds`. */
  throttleSignedNext(count: number, retryAfterSeconds = 1): void {
    for (let i = 0; i < count; i++) this.signedQueue.push(() => dpsErrors.throttled(retryAfterSeconds));
  }

  /** The next `count` registration requests get 503 Service Unavailable. */
  failNext(count: number): void {
    for (let i = 0; i < count; i++) this.queue.push(dpsErrors.unavailable);
  }

  /** The next `count` assignments end with `status: "failed"` and this code and message. */
  failAssignmentNext(count: number, failure: AssignmentFailure): void {
    for (let i = 0; i < count; i++) this.failures.push(failure);
  }

  takeAssignmentFailure(): AssignmentFailure | undefined {
    return this.failures.shift();
  }

  clear(): void {
    this.queue = [];
    this.signedQueue = [];
    this.failures = [];
    this.latencyMs = 0;
    this.assignmentDelayMs = 0;
    this.assignedOverride = undefined;
    this.omitDate = false;
  }

  /** The operation-status body as sent, with `assignedOverride` applied. */
  answer(body: unknown): unknown {
    const state = (body as { status?: string; registrationState?: object } | undefined);
    if (!this.assignedOverride || state?.status !== 'assigned') return body;
    return { ...state, registrationState: { ...state.registrationState, ...this.assignedOverride } };
  }

  /** The fault for this registration request (`signed`: it carries the challenge's SAS token), if one is queued. */
  take(signed = false): SimDpsError | undefined {
    return ((signed ? this.signedQueue.shift() : undefined) ?? this.queue.shift())?.();
  }
}
