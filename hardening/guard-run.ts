import { HubReachabilityGuard } from './boot-guard.js';
import type { ApplyReport, HardeningEngine } from './engine.js';
import type { HostPort, ProbeResult } from './probe.js';

/**
 * One boot-time watch over a newly applied profile, run as its own root step (the daemon
 * will not have the privileges to roll firewall rules back): probe the targets every few
 * seconds; the first time they all answer, the profile becomes known good; when the grace
 * time passes without an answer, the guard reverts to the last known good profile.
 */
export interface GuardRunOptions {
  engine: HardeningEngine;
  targets: readonly HostPort[];
  graceSeconds: number;
  /** One TLS handshake with each target, bounded by the timeout. */
  probe: (targets: readonly HostPort[], timeoutMs: number) => Promise<ProbeResult[]>;
  intervalMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export type GuardOutcome =
  | { status: 'nothing-to-guard'; reason: string }
  | { status: 'confirmed'; reason: string; probes: ProbeResult[]; rounds: number }
  | { status: 'reverted'; reason: string; probes: ProbeResult[]; rounds: number; report: ApplyReport; reconnected: boolean; after: ProbeResult[] }
  | { status: 'kept'; reason: string; probes: ProbeResult[]; rounds: number };

export const DEFAULT_PROBE_INTERVAL_MS = 3_000;
const PROBE_TIMEOUT_MS = 3_000;

/** Whether there is an applied profile whose fate the guard must decide; null when there is. */
export async function nothingToGuard(engine: HardeningEngine): Promise<string | null> {
  const applied = await engine.applied();
  if (!applied) return 'no hardening profile has been applied';
  if (applied.confirmed) return `profile ${applied.profile.name} (${applied.hash.slice(0, 12)}) is already known good`;
  const good = await engine.knownGood();
  if (good?.hash === applied.hash) return `profile ${applied.profile.name} (${applied.hash.slice(0, 12)}) is the known good one`;
  return null;
}

export async function runGuard(options: GuardRunOptions): Promise<GuardOutcome> {
  const { engine, targets, graceSeconds, probe } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const interval = options.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;

  const idle = await nothingToGuard(engine);
  if (idle !== null) return { status: 'nothing-to-guard', reason: idle };

  const guard = new HubReachabilityGuard(engine, graceSeconds, now);
  const deadline = now() + graceSeconds * 1000;
  // Bounded: one round per interval over the grace time, plus the first and the last.
  const maxRounds = Math.ceil((graceSeconds * 1000) / Math.max(interval, 1)) + 2;
  let probes: ProbeResult[] = [];
  let rounds = 0;
  while (rounds < maxRounds) {
    rounds++;
    const remaining = deadline - now();
    probes = await probe(targets, Math.min(PROBE_TIMEOUT_MS, Math.max(remaining, 500)));
    if (probes.every((p) => p.ok)) {
      await guard.hubReachable();
      return { status: 'confirmed', reason: `${probes.map((p) => p.target).join(', ')} answered: the applied profile is now known good`, probes, rounds };
    }
    const left = deadline - now();
    if (left <= 0) break;
    await sleep(Math.min(interval, left));
  }

  const decision = await guard.check();
  const failed = probes.filter((p) => !p.ok).map((p) => `${p.target}: ${p.detail}`).join('; ');
  if (!decision.reverted || !decision.report) {
    return { status: 'kept', reason: `${decision.reason}; last probe: ${failed}`, probes, rounds };
  }
  const after = await probe(targets, PROBE_TIMEOUT_MS);
  return {
    status: 'reverted', reason: `${decision.reason} (${failed}): reverted to the last known good profile ${decision.report.profile}`,
    probes, rounds, report: decision.report, reconnected: after.every((p) => p.ok), after,
  };
}
