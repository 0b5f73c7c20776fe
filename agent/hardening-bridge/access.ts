import path from 'node:path';
import type { AppliedRecord, ApplyReport, DriftItem, HardeningEngine, VerifyReport } from '../../hardening/engine.js';
import type { MeasureHook } from '../../hardening/measure.js';
import type { HostPort } from '../../hardening/probe.js';
import { DEFAULT_STATE_DIR, Records, type VerifiedBy } from '../../hardening/records.js';
import { describeError } from '../lib/errors.js';
import { bootId } from '../lib/boot-id.js';
import { netnsPrefix } from '../lib/exec.js';
import { PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../lib/validate.js';
import { HardeningRequestError } from './refusal.js';
import { appliesInProcess, type HardeningSite } from './site.js';

/** This boot's fail-closed outcome: the boot path loaded the fail-closed rules instead of the profile. */
export interface BootFailure {
  at: string;
  profile: string | null;
  error: string;
}

/** The applied profile and its drift, as the twin reports it (`hardening`). */
export interface HardeningSummary {
  profile: string | null;
  appliedHash: string | null;
  confirmed: boolean;
  appliedAt?: string;
  origin?: string;
  /** Items that differ from the profile; null when not known (see driftError). */
  drift: number | null;
  driftCheckedAt?: string;
  /** `agent`: verified live by this process (root); otherwise the root run that recorded it. */
  driftCheckedBy?: VerifiedBy | 'agent';
  driftError?: string;
  recordError?: string;
  failClosed?: true;
  bootFailure?: BootFailure;
}

/** What getHardeningStatus answers: the summary and, with an applied profile, each drifted item. */
export interface HardeningStatus extends HardeningSummary {
  drifted?: Pick<DriftItem, 'kind' | 'target' | 'expected' | 'actual'>[];
}

/** The hardening engine as the commands and the twin see it. */
export interface HardeningAccess {
  /** Applies a profile as a confirmed transaction against the hub and DPS endpoints. */
  apply(profile: string, confirmTimeoutSeconds: number): Promise<ApplyReport>;
  status(): Promise<HardeningStatus>;
}

type DriftFields = Pick<HardeningSummary, 'drift' | 'driftCheckedAt' | 'driftCheckedBy' | 'driftError'>;

/**
 * The hardening engine for the commands and the twin. As root, status verifies the
 * live state; unprivileged, it cannot read the firewall and reports the drift that the last
 * root run (boot apply, guard, harden-apply@) recorded, with when and by whom it was checked.
 */
export function hardeningAccess(site: HardeningSite, endpoints: () => HostPort[], options: { inProcess?: boolean; measure?: MeasureHook } = {}): HardeningAccess & { summary(): Promise<HardeningSummary> } {
  // The engine (profiles, rendering, iptables) loads on the first apply or live check: the
  // summary every connect reports, unprivileged, reads only the records root runs leave.
  let loading: Promise<HardeningEngine> | undefined;
  const engine = () => (loading ??= import('../../hardening/engine.js').then(({ HardeningEngine }) => new HardeningEngine({
    root: site.root,
    backend: site.backend,
    ...(site.stateDir ? { stateDir: site.stateDir } : {}),
    commandPrefix: netnsPrefix(site.netns),
    // In-process applies are measured here; through the unit, the root CLI measures.
    ...(options.measure ? { measure: options.measure } : {}),
  })));
  const records = new Records(site.stateDir ?? path.join(site.root, DEFAULT_STATE_DIR));
  const inProcess = options.inProcess ?? appliesInProcess(site);

  /** The drift: verified live as root, otherwise the record of the last root run when it is about the applied profile. */
  const driftOf = async (applied: AppliedRecord): Promise<{ report?: VerifyReport; fields: DriftFields }> => {
    if (inProcess) {
      try {
        const report = await (await engine()).verify();
        return { report, fields: { drift: report.drift, driftCheckedAt: new Date().toISOString(), driftCheckedBy: 'agent' } };
      } catch (err) {
        return { fields: { drift: null, driftError: describeError(err) } };
      }
    }
    const recorded = await records.verified.read().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    if (recorded instanceof Error) return { fields: { drift: null, driftError: describeError(recorded) } };
    if (!recorded || recorded.hash !== applied.hash || recorded.appliedHash !== applied.hash) {
      return { fields: { drift: null, driftError: `not verified since profile ${applied.profile.name} was applied` } };
    }
    return { report: recorded, fields: { drift: recorded.drift, driftCheckedAt: recorded.checkedAt, driftCheckedBy: recorded.by } };
  };

  /** This boot's fail-closed outcome, if the boot path had to load the fail-closed rules instead of the profile. */
  const bootFailure = async (): Promise<Pick<HardeningSummary, 'failClosed' | 'bootFailure'>> => {
    const [boot, current] = await Promise.all([records.boot.read().catch(() => null), bootId()]);
    if (boot?.outcome !== 'fail-closed' || boot.bootId !== current) return {};
    return { failClosed: true, bootFailure: { at: boot.at, profile: boot.profile, error: boot.error ?? 'no reason recorded' } };
  };

  const describe = async (withItems: boolean): Promise<HardeningStatus> => {
    const [applied, boot] = await Promise.all([
      records.applied.read().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))), bootFailure(),
    ]);
    if (applied instanceof Error) return { profile: null, appliedHash: null, confirmed: false, drift: null, recordError: describeError(applied), ...boot };
    if (!applied) return { profile: null, appliedHash: null, confirmed: false, drift: null, ...boot };
    const { report, fields } = await driftOf(applied);
    const drifted = report?.items.filter((i) => !i.ok).map((i) => ({ kind: i.kind, target: i.target, expected: i.expected, actual: i.actual })) ?? [];
    return {
      profile: applied.profile.name, appliedHash: applied.hash, confirmed: applied.confirmed, appliedAt: applied.appliedAt,
      origin: applied.origin, ...fields, ...(withItems ? { drifted } : {}), ...boot,
    };
  };

  return {
    summary: () => describe(false),
    status: () => describe(true),
    apply: async (profile, confirmTimeoutSeconds) => {
      // Names only, in every mode: a cloud-sent path (or name.yaml) is never read.
      if (!PROFILE_NAME.test(profile)) throw new HardeningRequestError(400, `profile must be ${PROFILE_NAME_EXPECTED}, never a path`);
      const targets = site.confirmTargets ?? endpoints();
      if (!inProcess) {
        const { applyThroughUnit } = await import('./apply-unit.js');
        return applyThroughUnit({ engine: await engine(), profile, timeoutSeconds: confirmTimeoutSeconds, targets });
      }
      const { loadProfileByName } = await import('../../hardening/load-profile.js');
      return (await engine()).apply(await loadProfileByName(profile, site.root), { targets, timeoutSeconds: confirmTimeoutSeconds });
    },
  };
}
