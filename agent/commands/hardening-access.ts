import path from 'node:path';
import { BACKENDS, type Backend } from '../../hardening/backend.js';
import type { AppliedRecord, HardeningEngine, VerifyReport } from '../../hardening/engine.js';
import type { MeasureHook } from '../../hardening/measure.js';
import { parseHostPort, type HostPort } from '../../hardening/probe.js';
import { DEFAULT_STATE_DIR, Records } from '../../hardening/records.js';
import { describeError } from '../errors.js';
import { bootId } from '../lib/boot-id.js';
import { netnsPrefix } from '../lib/exec.js';
import { NETNS_NAME, PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../lib/validate.js';
import { CommandFailure, type HardeningAccess } from './command.js';

/**
 * Where the engine works. Production: the real root and network namespace, confirming
 * against every endpoint the agent needs (needed-endpoints.ts). Tests (IOT_AGENT_HARDENING_TEST) name a
 * namespace and a temporary root they created, and the endpoints reachable from it.
 */
export interface HardeningSite {
  root: string;
  stateDir?: string;
  netns?: string;
  backend: Backend;
  /** Fixed confirm targets; otherwise the hub and DPS of the moment. */
  confirmTargets?: HostPort[];
}

export const PRODUCTION_SITE: HardeningSite = { root: '/', backend: 'auto' };

/** `netns=NAME,root=/tmp/x,backend=nft,confirm=10.0.0.2:8883;10.0.0.2:443` */
export function hardeningSiteFromEnv(env: NodeJS.ProcessEnv = process.env): HardeningSite {
  const spec = env.IOT_AGENT_HARDENING_TEST;
  if (!spec) return PRODUCTION_SITE;
  const fields = new Map(spec.split(',').map((part) => {
    const eq = part.indexOf('=');
    return [part.slice(0, eq), part.slice(eq + 1)] as [string, string];
  }));
  const root = fields.get('root');
  const netns = fields.get('netns');
  if (!root || !path.isAbsolute(root) || root === '/') throw new Error('IOT_AGENT_HARDENING_TEST needs root=<absolute temporary directory>, never /');
  if (!netns || !NETNS_NAME.test(netns)) throw new Error('IOT_AGENT_HARDENING_TEST needs netns=<a namespace the test created>');
  const backend = (fields.get('backend') ?? 'auto') as Backend;
  if (!BACKENDS.includes(backend)) throw new Error(`IOT_AGENT_HARDENING_TEST backend must be one of ${BACKENDS.join(', ')}`);
  const confirm = fields.get('confirm');
  return { root, netns, backend, ...(confirm ? { confirmTargets: confirm.split(';').map(parseHostPort) } : {}) };
}

/**
 * Whether profiles are applied by this process (root: tests, QA, a technician's run) or
 * through the root oneshot iot-agent-harden-apply@.service (the packaged, unprivileged agent).
 */
export function appliesInProcess(site: HardeningSite, uid: number | undefined = process.getuid?.()): boolean {
  return site.netns !== undefined || uid === 0;
}

/**
 * The hardening engine as the commands and the twin see it. As root, status verifies the
 * live state; unprivileged, it cannot read the firewall and reports the drift that the last
 * root run (boot apply, guard, harden-apply@) recorded, with when and by whom it was checked.
 */
export function hardeningAccess(site: HardeningSite, endpoints: () => HostPort[], options: { inProcess?: boolean; measure?: MeasureHook } = {}): HardeningAccess & { summary(): Promise<Record<string, unknown>> } {
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
  const driftOf = async (applied: AppliedRecord): Promise<{ report?: VerifyReport; fields: Record<string, unknown> }> => {
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
  const bootFailure = async (): Promise<Record<string, unknown>> => {
    const [boot, current] = await Promise.all([records.boot.read().catch(() => null), bootId()]);
    if (boot?.outcome !== 'fail-closed' || boot.bootId !== current) return {};
    return { failClosed: true, bootFailure: { at: boot.at, profile: boot.profile, error: boot.error ?? 'no reason recorded' } };
  };

  const describe = async (withItems: boolean): Promise<Record<string, unknown>> => {
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
      if (!PROFILE_NAME.test(profile)) throw new CommandFailure(400, `profile must be ${PROFILE_NAME_EXPECTED}, never a path`);
      const targets = site.confirmTargets ?? endpoints();
      if (!inProcess) {
        const { applyThroughUnit } = await import('./hardening-unit.js');
        return { ...(await applyThroughUnit({ engine: await engine(), profile, timeoutSeconds: confirmTimeoutSeconds, targets })) };
      }
      const { loadProfileByName } = await import('../../hardening/load-profile.js');
      const report = await (await engine()).apply(await loadProfileByName(profile, site.root), { targets, timeoutSeconds: confirmTimeoutSeconds });
      return { ...report };
    },
  };
}
