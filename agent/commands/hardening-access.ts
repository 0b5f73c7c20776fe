import path from 'node:path';
import { BACKENDS, type Backend } from '../../hardening/backend.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { parseHostPort, type HostPort } from '../../hardening/probe.js';
import { describeError } from '../errors.js';
import type { HardeningAccess } from './command.js';

/**
 * Where the engine works. Production: the real root and network namespace, confirming
 * against the current hub (8883) and DPS (443). Tests (IOT_AGENT_HARDENING_TEST) name a
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
  if (!netns || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(netns)) throw new Error('IOT_AGENT_HARDENING_TEST needs netns=<a namespace the test created>');
  const backend = (fields.get('backend') ?? 'auto') as Backend;
  if (!BACKENDS.includes(backend)) throw new Error(`IOT_AGENT_HARDENING_TEST backend must be one of ${BACKENDS.join(', ')}`);
  const confirm = fields.get('confirm');
  return { root, netns, backend, ...(confirm ? { confirmTargets: confirm.split(';').map(parseHostPort) } : {}) };
}

/** The hardening engine as the commands and the twin see it. */
export function hardeningAccess(site: HardeningSite, endpoints: () => HostPort[]): HardeningAccess & { summary(): Promise<Record<string, unknown>> } {
  const engine = new HardeningEngine({
    root: site.root,
    backend: site.backend,
    ...(site.stateDir ? { stateDir: site.stateDir } : {}),
    commandPrefix: site.netns ? ['ip', 'netns', 'exec', site.netns] : [],
  });
  const summary = async (): Promise<Record<string, unknown>> => {
    const applied = await engine.applied();
    if (!applied) return { profile: null, appliedHash: null, confirmed: false, drift: null };
    let drift: number | null = null;
    let driftError: string | undefined;
    try {
      drift = (await engine.verify()).drift;
    } catch (err) {
      driftError = describeError(err);
    }
    return {
      profile: applied.profile.name, appliedHash: applied.hash, confirmed: applied.confirmed, appliedAt: applied.appliedAt,
      origin: applied.origin, drift, ...(driftError ? { driftError } : {}),
    };
  };
  return {
    summary,
    status: async () => {
      const base = await summary();
      if (base.profile === null) return base;
      const report = await engine.verify().catch(() => undefined);
      return { ...base, drifted: report?.items.filter((i) => !i.ok).map((i) => ({ kind: i.kind, target: i.target, expected: i.expected, actual: i.actual })) ?? [] };
    },
    apply: async (profile, confirmTimeoutSeconds) => {
      const loaded = await loadProfile(profile, site.root);
      const targets = site.confirmTargets ?? endpoints();
      const report = await engine.apply(loaded, { targets, timeoutSeconds: confirmTimeoutSeconds });
      return { ...report };
    },
  };
}
