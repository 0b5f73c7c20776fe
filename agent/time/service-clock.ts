import { EventEmitter } from 'node:events';
import { CLOCK_NOT_BEFORE } from './clock-bounds.js';
import { parseHttpDate } from './http-date.js';

/** A local clock this far from the service's is corrected when signing tokens. */
export const CORRECTION_THRESHOLD_MS = 5 * 60_000;
/** A wall clock that moved this much more (or less) than the monotonic clock has jumped. */
export const JUMP_THRESHOLD_MS = 30_000;

export interface ServiceClockEvents {
  /** The offset to the service changed enough to matter: tokens should be signed again. */
  corrected: [offsetMs: number];
  /** The wall clock jumped by this much (NTP set it, an operator, a VM resume). */
  jumped: [byMs: number];
}

/**
 * The service's time, learnt from the `Date` header of DPS's and the hub's HTTPS answers,
 * and the time SAS token expiry is computed from. A board without an RTC that boots with
 * its clock hours behind signs tokens that the service already holds expired, is refused,
 * and would go to DPS for nothing; signing against the service's time avoids that. Within
 * CORRECTION_THRESHOLD_MS the local clock is trusted (the header has whole seconds), and
 * it is never trusted before the agent's own release date.
 */
export class ServiceClock extends EventEmitter<ServiceClockEvents> {
  private offset: number | undefined;
  private measuredAt: number | undefined;
  private lastWall: number;
  private lastMono: number;

  constructor(
    private readonly wall: () => number = Date.now,
    private readonly mono: () => number = () => performance.now(),
    private readonly notBefore = CLOCK_NOT_BEFORE.getTime(),
  ) {
    super();
    this.lastWall = wall();
    this.lastMono = mono();
  }

  /**
   * An HTTP Date header seen in an answer. `sentAt`/`receivedAt`: local wall-clock ms
   * around the request, so the round trip is split in two. Unreadable dates are ignored.
   */
  observe(dateHeader: string | undefined, sentAt: number, receivedAt = this.wall()): void {
    const offset = offsetFromDate(dateHeader, sentAt, receivedAt);
    if (offset === undefined) return;
    const before = this.correctionMs();
    this.offset = offset;
    this.measuredAt = receivedAt;
    const after = this.correctionMs();
    if (Math.abs(after - before) >= 1_000) this.emit('corrected', after);
  }

  /**
   * An offset another process of this board measured (the daemon, for its provisioning
   * helper): the same wall clock, so it holds here too until a Date header says otherwise.
   */
  adopt(offsetMs: number): void {
    this.offset = offsetMs;
    this.measuredAt = this.wall();
  }

  /** Service time minus local time, as last measured (undefined: never measured). */
  offsetMs(): number | undefined {
    return this.offset;
  }

  lastMeasuredAt(): number | undefined {
    return this.measuredAt;
  }

  /** What to add to the local clock when computing a token's expiry. */
  correctionMs(): number {
    const now = this.wall();
    if (this.offset !== undefined && Math.abs(this.offset) > CORRECTION_THRESHOLD_MS) return Math.round(this.offset);
    // Never measured, or close enough: the local clock, but never one from before this release.
    return now < this.notBefore ? this.notBefore - now : 0;
  }

  /** The time token expiry is computed from. */
  now(): number {
    return this.wall() + this.correctionMs();
  }

  /**
   * Compares the wall clock with the monotonic clock since the last call; a difference
   * beyond JUMP_THRESHOLD_MS is a jump: the measured offset moves by the opposite amount
   * (the service's clock did not jump) and `jumped` is emitted.
   */
  checkForJump(): number | undefined {
    const wall = this.wall();
    const mono = this.mono();
    const jump = (wall - this.lastWall) - (mono - this.lastMono);
    this.lastWall = wall;
    this.lastMono = mono;
    if (Math.abs(jump) < JUMP_THRESHOLD_MS) return undefined;
    if (this.offset !== undefined) this.offset -= jump;
    this.emit('jumped', jump);
    return jump;
  }

  /** Checks for jumps every `intervalMs` until the returned function is called. */
  watch(intervalMs = 5_000): () => void {
    this.lastWall = this.wall();
    this.lastMono = this.mono();
    const timer = setInterval(() => this.checkForJump(), intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

/**
 * Service time minus local time from one Date header and the local times around its
 * request: the round trip split in two, and the header (truncated to the second) taken at
 * its middle. Undefined for an absent or unreadable header.
 */
export function offsetFromDate(dateHeader: string | undefined, sentAt: number, receivedAt: number): number | undefined {
  const service = parseHttpDate(dateHeader);
  return service === undefined ? undefined : service + 500 - (sentAt + receivedAt) / 2;
}
