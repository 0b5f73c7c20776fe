import type { ApplyReport, HardeningEngine } from './engine.js';

/**
 * The mechanism behind "a newly applied profile that keeps the hub away is reverted":
 * `iot-agent harden guard` (guard-run.ts, a root step after boot: the daemon runs
 * unprivileged) creates one guard, calls `hubReachable()` once the hub answers a TLS
 * handshake and `check()` when the grace time is over. The decision itself is `revertDue`.
 */
export interface GuardFacts {
  appliedHash: string | null;
  appliedConfirmed: boolean;
  knownGoodHash: string | null;
  /** Milliseconds since the hub was last reachable (or since the guard started). */
  unreachableForMs: number;
  graceMs: number;
}

/** Pure: revert when an unconfirmed profile, different from a known good one, has kept the hub away for the grace time. */
export function revertDue(f: GuardFacts): { revert: boolean; reason: string } {
  if (f.appliedHash === null) return { revert: false, reason: 'no profile applied' };
  if (f.appliedConfirmed) return { revert: false, reason: 'applied profile is known good' };
  if (f.knownGoodHash === null) return { revert: false, reason: 'no known good profile to go back to' };
  if (f.knownGoodHash === f.appliedHash) return { revert: false, reason: 'applied profile is the known good one' };
  if (f.unreachableForMs < f.graceMs) return { revert: false, reason: 'within the grace time' };
  return { revert: true, reason: `hub unreachable for ${Math.round(f.unreachableForMs / 1000)} s with an unconfirmed profile applied` };
}

export class HubReachabilityGuard {
  private lastReachable: number;

  constructor(
    private readonly engine: HardeningEngine,
    private readonly graceSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.lastReachable = now();
  }

  /** The hub answered: the applied profile becomes the last known good one. */
  async hubReachable(): Promise<void> {
    this.lastReachable = this.now();
    await this.engine.markKnownGood();
  }

  /** Reverts to the last known good profile when `revertDue` says so; returns what was done. */
  async check(): Promise<{ reverted: boolean; reason: string; report?: ApplyReport }> {
    const applied = await this.engine.applied();
    const good = await this.engine.knownGood();
    const decision = revertDue({
      appliedHash: applied?.hash ?? null,
      appliedConfirmed: applied?.confirmed ?? false,
      knownGoodHash: good?.hash ?? null,
      unreachableForMs: this.now() - this.lastReachable,
      graceMs: this.graceSeconds * 1000,
    });
    if (!decision.revert) return { reverted: false, reason: decision.reason };
    const report = await this.engine.revertToKnownGood();
    this.lastReachable = this.now();
    return { reverted: report !== null, reason: decision.reason, ...(report ? { report } : {}) };
  }
}
