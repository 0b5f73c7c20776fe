/**
 * The known-good policy, in one place and pure: which profile the boot path applies, whether
 * the guard has anything to watch, and when it reverts. A profile becomes known good once
 * the endpoints the agent needs answered under it (a confirmed transaction, or the guard).
 */
export interface History {
  /** The applied profile (null: none recorded, or its record is unreadable). */
  applied: { name: string; hash: string; confirmed: boolean } | null;
  knownGood: { name: string; hash: string } | null;
  /** A confirmed change was started and never finished (a corrupt marker counts as one). */
  pending: boolean;
}

export type BootSource = 'known-good' | 'applied' | 'configured';

/** The boot path: the last known good profile after an interrupted change, else the applied one, else what was configured. */
export function bootChoice(h: History): { source: BootSource; why: string } {
  if (h.pending && h.knownGood) return { source: 'known-good', why: 'last known good (a remote change was interrupted before it was confirmed)' };
  if (h.applied) {
    return { source: 'applied', why: h.applied.confirmed ? 'applied profile (known good)' : 'applied profile (not yet confirmed)' };
  }
  if (h.knownGood) return { source: 'known-good', why: 'last known good (no usable record of the applied profile)' };
  return { source: 'configured', why: 'no profile recorded yet: the configured one' };
}

/** Why the guard has nothing to do, or null when the applied profile still has to prove itself. */
export function nothingToGuard(h: History): string | null {
  if (!h.applied) return 'no hardening profile has been applied';
  const which = `profile ${h.applied.name} (${h.applied.hash.slice(0, 12)})`;
  if (h.applied.confirmed) return `${which} is already known good`;
  if (h.knownGood?.hash === h.applied.hash) return `${which} is the known good one`;
  return null;
}

/** Revert when an unconfirmed profile, different from a known good one, has kept the endpoints away for the grace time. */
export function revertDue(h: History, unreachableForMs: number, graceMs: number): { revert: boolean; reason: string } {
  const idle = nothingToGuard(h);
  if (idle !== null) return { revert: false, reason: idle };
  if (!h.knownGood) return { revert: false, reason: 'no known good profile to go back to' };
  if (unreachableForMs < graceMs) return { revert: false, reason: 'within the grace time' };
  return { revert: true, reason: `endpoints unreachable for ${Math.round(unreachableForMs / 1000)} s with an unconfirmed profile applied` };
}
