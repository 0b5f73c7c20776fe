import { Backoff, type BackoffPolicy } from './backoff.js';

/**
 * Every retry decision of the daemon, in one place and free of I/O: when to reconnect to
 * the hub, when to go back to DPS, and when to leave DPS alone for hours. The daemon
 * reports what happened; the policy answers what to do and when. One backoff per concern
 * (DPS, hub, the rest of the flow), each reset only by a success of its own concern, all
 * capped and fully jittered; the policy object lives as long as the daemon, so a new flow
 * never starts the count over.
 *
 * | event                                   | condition                                             | decision |
 * |-----------------------------------------|-------------------------------------------------------|----------|
 * | hub connected                           |                                                       | "unreachable since" cleared; failures in a row start over |
 * | hub link lost after a working session   | it lasted ≥ STABLE_SESSION_MS                         | hub backoff reset; reconnect after a random spread (0..spread): a fleet that lost its hub together does not come back together |
 * | hub link lost soon after connecting     | it lasted < STABLE_SESSION_MS (throttled, quota)      | reconnect after the hub backoff, which keeps growing: a hub that drops every new connection is not stormed |
 * | hub unreachable (DNS, TCP, TLS, timeout)| unreachable < hubUnreachableSeconds, or it is 0       | reconnect after the hub backoff |
 * | hub unreachable                         | for ≥ hubUnreachableSeconds and DPS not held off      | re-provision, keeping the assignment as the fallback |
 * | hub refused (CONNACK 5/4/2, 401, 404)   | reprovision: never                                    | reconnect after the hub backoff |
 * | hub refused                             | last registration ≥ minReprovisionSeconds ago (or none) and DPS not held off | re-provision, keeping the assignment as the fallback |
 * | hub refused                             | first refusal after a session that worked since the last registration, at most once per minReprovisionSeconds, DPS not held off | re-provision at once (the device was deleted, disabled or moved meanwhile) |
 * | hub refused                             | otherwise                                             | reconnect after the hub backoff; asked again at the next refusal |
 * | DPS assigned                            |                                                       | DPS backoff reset; the registration time is remembered (across restarts) |
 * | DPS failed, a fallback exists           |                                                       | back to the fallback hub now; DPS held off for its backoff (or hours, below) |
 * | DPS failed, no fallback                 | retryable (network, 429, 5xx)                         | DPS again after its backoff, Retry-After as the floor |
 * | DPS failed                              | operator must act (status disabled/failed; refused 401/403/404 for the 3rd time in a row) | DPS again after provisioning.slowRetryHours (jittered), never sooner |
 * | anything else stopped the flow (TPM, CA file) |                                                 | the flow again after the flow backoff |
 *
 * An explicit request (the reprovision command, `iot-agent provision`) is never held off:
 * a person asked. It keeps the fallback like any re-provisioning.
 */
export interface PolicySettings {
  reprovision: 'onErrorOnly' | 'alwaysOnStartup' | 'never';
  /** At most one re-provisioning caused by the hub per this many seconds. */
  minReprovisionSeconds: number;
  /** Ask DPS again after the hub has been unreachable this long; 0: never. */
  hubUnreachableSeconds: number;
  /** How long DPS is left alone once only an operator can help (device disabled in DPS, enrollment refused). */
  operatorRetrySeconds: number;
  /** Hub and DPS retries. */
  backoff: BackoffPolicy;
  /** Reconnects after a working session are spread over 0..this. */
  reconnectSpreadMs: number;
}

export const DEFAULT_RECONNECT_SPREAD_MS = 15_000;
/** A session that lasted this long was working: its loss starts the hub backoff over. */
export const STABLE_SESSION_MS = 60_000;
/** Consecutive DPS refusals (401/403/404) taken as a slip of the operator (an enrollment being created) before DPS is left alone. */
export const REFUSALS_BEFORE_SLOW_RETRY = 3;

/** What the daemon reports of a DPS attempt that failed. */
export interface DpsFailure {
  retryable: boolean;
  retryAfterMs?: number | undefined;
  /** DPS said the device is disabled or its registration failed: no retry soon can help. */
  operatorMustAct?: boolean;
  /** DPS refused the device's proof (401/403) or does not know it (404). */
  refused?: boolean;
}

export type HubFailureKind = 'refused' | 'unreachable';

export type Decision =
  | { action: 'reconnect'; delayMs: number; reason: string }
  | { action: 'reprovision'; delayMs: number; reason: string }
  | { action: 'fallback'; delayMs: number; reason: string }
  | { action: 'retryDps'; delayMs: number; reason: string };

/** What the policy keeps across restarts (written by the daemon after each registration). */
export interface PolicyHistory {
  /** Wall-clock ms of the last registration DPS completed (a billed registration and a new hub key). */
  lastRegistrationAt?: number | undefined;
}

export interface PolicyClock {
  now: () => number;
  random: () => number;
}

/** Counters for `status`: how the current trouble looks. */
export interface PolicyView {
  consecutiveFailures: number;
  nextAttemptAt: number | undefined;
  dpsHeldOffUntil: number | undefined;
  operatorMustAct: boolean;
}

export class ConnectionPolicy {
  private readonly hub: Backoff;
  private readonly dps: Backoff;
  private readonly flow: Backoff;
  private lastRegistrationAt: number | undefined;
  private unreachableSince: number | undefined;
  private dpsNotBefore = 0;
  private dpsRefusals = 0;
  private operatorHold = false;
  private failures = 0;
  private nextAt: number | undefined;
  private connectedAt: number | undefined;
  /** A session connected since the last registration: its first refusal is news, worth asking DPS about. */
  private workedSinceRegistration = false;
  private lastExceptionAt: number | undefined;

  constructor(
    private settings: PolicySettings,
    history: PolicyHistory = {},
    private readonly clock: PolicyClock = { now: Date.now, random: Math.random },
  ) {
    this.hub = new Backoff(settings.backoff, clock.random);
    this.dps = new Backoff(settings.backoff, clock.random);
    this.flow = new Backoff(settings.backoff, clock.random);
    this.lastRegistrationAt = history.lastRegistrationAt;
  }

  /** New settings (SIGHUP); the history and the backoffs' counts stay. */
  update(settings: PolicySettings): void {
    this.settings = settings;
  }

  history(): PolicyHistory {
    return { lastRegistrationAt: this.lastRegistrationAt };
  }

  view(): PolicyView {
    const now = this.clock.now();
    return {
      consecutiveFailures: this.failures,
      nextAttemptAt: this.nextAt !== undefined && this.nextAt > now ? this.nextAt : undefined,
      dpsHeldOffUntil: this.heldUntil(now),
      operatorMustAct: this.operatorHold,
    };
  }

  hubConnected(): void {
    this.flow.reset();
    this.unreachableSince = undefined;
    this.failures = 0;
    this.nextAt = undefined;
    this.connectedAt = this.clock.now();
    this.workedSinceRegistration = true;
  }

  /**
   * The link of a connected session dropped. After a session that worked, come back soon but
   * not all at once; after one the hub dropped at once, back off further.
   */
  hubLost(): Decision {
    const now = this.clock.now();
    this.unreachableSince ??= now;
    const lasted = now - (this.connectedAt ?? now);
    this.connectedAt = undefined;
    if (lasted < STABLE_SESSION_MS) {
      this.failures++;
      return this.schedule({ action: 'reconnect', delayMs: this.hub.next(), reason: `the hub dropped the connection after ${Math.round(lasted / 1000)} s` });
    }
    this.hub.reset();
    return this.schedule({ action: 'reconnect', delayMs: Math.floor(this.clock.random() * this.settings.reconnectSpreadMs),
      reason: 'the connection to the hub dropped' });
  }

  hubFailed(kind: HubFailureKind, retryAfterMs?: number): Decision {
    const now = this.clock.now();
    this.failures++;
    if (kind === 'refused') {
      this.unreachableSince = undefined;
      if (this.settings.reprovision === 'never') {
        return this.schedule({ action: 'reconnect', delayMs: this.hub.next(retryAfterMs), reason: 'the hub refused the device and reprovision is never' });
      }
      const held = this.reprovisionHeldUntil();
      if (held <= now) return this.schedule({ action: 'reprovision', delayMs: 0, reason: 'the hub refused the device' });
      if (this.refusalIsNews(now)) {
        this.lastExceptionAt = now;
        this.workedSinceRegistration = false;
        return this.schedule({ action: 'reprovision', delayMs: 0, reason: 'the hub refused a device it had accepted since the last registration' });
      }
      return this.schedule({ action: 'reconnect', delayMs: this.hub.next(retryAfterMs),
        reason: `the hub refused the device; DPS is asked again no sooner than ${new Date(held).toISOString()}` });
    }
    this.unreachableSince ??= now;
    const limit = this.settings.hubUnreachableSeconds * 1000;
    const unreachableFor = now - this.unreachableSince;
    if (limit > 0 && unreachableFor >= limit && this.settings.reprovision !== 'never' && this.dpsNotBefore <= now) {
      // Counted again from here: if DPS names the same hub, it gets another full period.
      this.unreachableSince = now;
      return this.schedule({ action: 'reprovision', delayMs: 0,
        reason: `the hub has been unreachable for ${Math.round(unreachableFor / 1000)} s` });
    }
    return this.schedule({ action: 'reconnect', delayMs: this.hub.next(retryAfterMs), reason: 'the hub is unreachable' });
  }

  dpsAssigned(): void {
    this.lastRegistrationAt = this.clock.now();
    this.workedSinceRegistration = false;
    this.dps.reset();
    this.dpsRefusals = 0;
    this.dpsNotBefore = 0;
    this.operatorHold = false;
    this.failures = 0;
  }

  /** A DPS attempt failed: back to the fallback when there is one, else DPS again later. */
  dpsFailed(failure: DpsFailure, hasFallback: boolean): Decision {
    const now = this.clock.now();
    this.failures++;
    this.dpsRefusals = failure.refused ? this.dpsRefusals + 1 : 0;
    this.operatorHold = failure.operatorMustAct === true || this.dpsRefusals >= REFUSALS_BEFORE_SLOW_RETRY;
    const delay = this.operatorHold ? this.slowDelay() : this.dps.next(failure.retryAfterMs);
    this.dpsNotBefore = now + delay;
    if (hasFallback) {
      return this.schedule({ action: 'fallback', delayMs: 0, reason: 'DPS failed: back to the hub of the previous assignment' }, now + delay);
    }
    return this.schedule({ action: 'retryDps', delayMs: delay,
      reason: this.operatorHold ? 'DPS will not assign this device until an operator acts' : 'DPS failed' });
  }

  /** The TPM, a CA file or anything else outside DPS and the hub stopped the flow. */
  flowFailed(): number {
    this.failures++;
    const delayMs = this.flow.next();
    this.nextAt = this.clock.now() + delayMs;
    return delayMs;
  }

  /** Until when DPS is left alone (its backoff, an operator hold or the rate limit), or undefined. */
  private heldUntil(now: number): number | undefined {
    // Without a registration this is the DPS backoff or an operator hold alone.
    const until = this.reprovisionHeldUntil();
    return until > now ? until : undefined;
  }

  /** When a hub-caused re-provisioning may happen next (wall-clock ms). */
  reprovisionHeldUntil(): number {
    // A registration "in the future" means the wall clock went back since: count from now.
    const now = this.clock.now();
    if (this.lastRegistrationAt !== undefined && this.lastRegistrationAt > now) this.lastRegistrationAt = now;
    const last = this.lastRegistrationAt;
    const rate = last === undefined ? 0 : last + this.settings.minReprovisionSeconds * 1000;
    return Math.max(rate, this.dpsNotBefore);
  }

  /**
   * The first refusal after a session that worked since the last registration is news (the
   * device was deleted, disabled or moved meanwhile) and may go to DPS before the rate limit
   * allows — once per minReprovisionSeconds, so a device that flaps cannot loop.
   */
  private refusalIsNews(now: number): boolean {
    if (!this.workedSinceRegistration || this.dpsNotBefore > now) return false;
    return this.lastExceptionAt === undefined || now - this.lastExceptionAt >= this.settings.minReprovisionSeconds * 1000;
  }

  private slowDelay(): number {
    const base = this.settings.operatorRetrySeconds * 1000;
    // 0.75..1.25 of the interval: boards disabled together do not come back together.
    return Math.floor(base * (0.75 + this.clock.random() / 2));
  }

  private schedule<D extends Decision>(decision: D, nextAt = this.clock.now() + decision.delayMs): D {
    this.nextAt = nextAt;
    return decision;
  }
}
