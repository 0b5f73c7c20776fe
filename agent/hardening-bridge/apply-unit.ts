import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { APPLY_REQUEST_FILE, encodeApplyRequest } from '../../hardening/apply-request.js';
import type { ApplyReport, HardeningEngine } from '../../hardening/engine.js';
import { PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../../hardening/profile-name.js';
import type { HostPort } from '../../hardening/probe.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { HardeningRequestError } from './refusal.js';

const run = promisify(execFile);

/** How long past the confirm timeout the unit may take (apply, probes before and after, rollback). */
export const UNIT_MARGIN_SECONDS = 90;

/**
 * The instance name `systemd-escape NAME` gives for a profile name: letters, digits and _
 * stay, "-" becomes \x2d. Anything that is not a profile name (".", "/") is refused here,
 * as polkit would refuse it: the unit's %I must never turn a name into a path.
 */
export function unitInstance(profile: string): string {
  if (!PROFILE_NAME.test(profile)) {
    throw new HardeningRequestError(400, `profile ${JSON.stringify(profile.slice(0, 80))} cannot be applied: expected ${PROFILE_NAME_EXPECTED}`);
  }
  return profile.replaceAll('-', '\\x2d');
}

export function applyUnitName(profile: string): string {
  return `iot-agent-harden-apply@${unitInstance(profile)}.service`;
}

export interface UnitApplyOptions {
  engine: HardeningEngine;
  profile: string;
  timeoutSeconds: number;
  /** Every endpoint the agent needs (needed-endpoints.ts): the unit confirms against all of them. */
  targets: readonly HostPort[];
  requestFile?: string;
  systemctl?: string;
}

/**
 * The unprivileged agent's apply: writes its request (apply-request.ts) to its runtime
 * directory, asks systemd (polkit allows exactly this start to the iot-agent user) to run
 * the root oneshot iot-agent-harden-apply@NAME.service, waits for it (`systemctl start`
 * returns when a oneshot has finished), bounded by the confirm timeout plus a margin, then
 * reads the outcome the unit recorded for this request.
 */
export async function applyThroughUnit(options: UnitApplyOptions): Promise<ApplyReport> {
  const { engine, profile, timeoutSeconds } = options;
  const unit = applyUnitName(profile);
  if (options.targets.length === 0) throw new HardeningRequestError(500, 'no hub or DPS endpoint known to confirm against');
  const requestId = randomUUID();
  let request: string;
  try {
    request = encodeApplyRequest({ requestId, profile, confirmTimeoutSeconds: timeoutSeconds, confirmTargets: [...options.targets] });
  } catch (err) {
    throw new HardeningRequestError(500, `cannot ask for profile ${profile}: ${(err as Error).message}`);
  }
  // Group-readable: the root unit has no CAP_DAC_OVERRIDE and reads it as a member of the agent's group.
  await writeFileAtomic(options.requestFile ?? APPLY_REQUEST_FILE, request, 0o640);

  const limitMs = (timeoutSeconds + UNIT_MARGIN_SECONDS) * 1000;
  let failure: string | undefined;
  try {
    await run(options.systemctl ?? 'systemctl', ['--no-ask-password', 'start', unit], { timeout: limitMs, killSignal: 'SIGKILL' });
  } catch (err) {
    const e = err as { killed?: boolean; stderr?: string; message: string };
    failure = e.killed ? `still running after ${limitMs / 1000} s` : (e.stderr?.trim() || e.message);
  }

  const outcome = await engine.lastApplyOutcome().catch(() => null);
  if (outcome?.requestId === requestId) {
    if (outcome.report) return outcome.report;
    throw new HardeningRequestError(500, `profile ${profile} not applied: ${outcome.error ?? 'no reason recorded'}`);
  }
  const state = failure === undefined ? '' : await unitResult(options.systemctl ?? 'systemctl', unit);
  throw new HardeningRequestError(500, `profile ${profile}: ${unit} ${failure === undefined ? 'finished' : `failed (${failure}${state})`} without recording an outcome for this request`);
}

async function unitResult(systemctl: string, unit: string): Promise<string> {
  try {
    const { stdout } = await run(systemctl, ['show', '-p', 'Result,ExecMainStatus', unit], { timeout: 10_000 });
    return `; ${stdout.trim().split('\n').join(', ')}`;
  } catch {
    return '';
  }
}
