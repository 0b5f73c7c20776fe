import type { ApplyReport, HardeningEngine } from './engine.js';
import { nothingToGuard, revertDue } from './known-good.js';
import { describeFailures, probeUntilReachable, type HostPort, type Probe, type ProbeResult } from './probe.js';

/**
 * The guard (`iot-agent harden guard`, iot-agent-hardening-guard.service); known-good.ts is its policy.
 *
 * One boot-time watch over a newly applied profile, run as its own root step beside the
 * boot (the daemon holds no privileges to roll firewall rules back): the probe loop runs
 * until every endpoint the agent needs answers, and then the profile becomes known good;
 * when the grace time passes first, the known-good policy decides whether to revert.
 */
export interface GuardOptions {
  engine: HardeningEngine;
  targets: readonly HostPort[];
  graceSeconds: number;
  /** One TLS handshake with each target, bounded by the timeout. */
  probe: Probe;
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

/** Whether there is an applied profile whose fate the guard must decide; null when there is. */
export async function guardIdle(engine: HardeningEngine): Promise<string | null> {
  return nothingToGuard(await engine.history());
}

export async function runGuard(options: GuardOptions): Promise<GuardOutcome> {
  const { engine, targets, graceSeconds, probe } = options;
  const now = options.now ?? Date.now;
  const idle = await guardIdle(engine);
  if (idle !== null) return { status: 'nothing-to-guard', reason: idle };

  const started = now();
  const { ok, probes, rounds } = await probeUntilReachable({
    probe, targets, deadline: started + graceSeconds * 1000, intervalMs: options.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS, now, ...(options.sleep ? { sleep: options.sleep } : {}),
  });
  if (ok) {
    await engine.markKnownGood();
    return { status: 'confirmed', reason: `${probes.map((p) => p.target).join(', ')} answered: the applied profile is now known good`, probes, rounds };
  }

  const decision = revertDue(await engine.history(), now() - started, graceSeconds * 1000);
  const report = decision.revert ? await engine.revertToKnownGood() : null;
  if (!report) return { status: 'kept', reason: `${decision.reason}; last probe: ${describeFailures(probes)}`, probes, rounds };
  const after = await probe(targets, 3_000);
  return {
    status: 'reverted', reason: `${decision.reason} (${describeFailures(probes)}): reverted to the last known good profile ${report.profile}`,
    probes, rounds, report, reconnected: after.every((p) => p.ok), after,
  };
}
