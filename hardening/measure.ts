import type { LoadedProfile } from './load-profile.js';
import type { Plan } from './plan.js';
import type { Profile } from './profile.js';

/**
 * The engine's measurement hook (EngineOptions.measure): after every apply and rollback,
 * inside the lock, so measurements keep the order of the changes. The implementation
 * (a TPM PCR and its event log) is agent/attestation/hardening-measure.ts; the engine only
 * knows this interface.
 */
export type HardeningOperation = 'apply' | 'rollback';

/** What the measurement reads from the engine (HardeningEngine has all of it). */
export interface EngineView {
  applied(): Promise<{ profile: Profile; origin: string; hash: string } | null>;
  plan(loaded: LoadedProfile): Promise<Plan>;
  readonly records: { readonly dir: string };
}

export interface MeasureHook {
  /** After an apply or rollback returned; `changed`: something was loaded or restored. Never throws. */
  afterChange(engine: EngineView, change: { operation: HardeningOperation; changed: boolean }): Promise<unknown>;
}
