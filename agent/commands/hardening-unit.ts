import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import type { ApplyReport, HardeningEngine } from '../../hardening/engine.js';
import { formatHostPort, type HostPort } from '../../hardening/probe.js';
import { writeFileAtomic } from '../../hardening/state-store.js';
import { CommandFailure } from './command.js';

const run = promisify(execFile);

/** Read by iot-agent-harden-apply@.service (EnvironmentFile=); the agent's RuntimeDirectory. */
export const CONFIRM_ENV_FILE = '/run/iot-agent/harden-confirm.env';
/** How long past the confirm timeout the unit may take (apply, probes before and after, rollback). */
export const UNIT_MARGIN_SECONDS = 90;

/**
 * The instance name `systemd-escape NAME` gives for the names the polkit rule admits:
 * letters, digits and _ stay, "-" becomes \x2d. Anything else (".", "/") is refused here,
 * as polkit would refuse it: the unit's %I must never turn a name into a path.
 */
export function unitInstance(profile: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(profile)) {
    throw new CommandFailure(400, `profile ${JSON.stringify(profile)} cannot be applied through iot-agent-harden-apply@.service: use letters, digits, _ and - only`);
  }
  return profile.replaceAll('-', '\\x2d');
}

export function applyUnitName(profile: string): string {
  return `iot-agent-harden-apply@${unitInstance(profile)}.service`;
}

/**
 * The unit's environment file. Each value is one argument to `harden apply` (which validates
 * it again); nothing here may hold a newline or quote, or it could add a variable.
 */
export function confirmEnvironment(target: HostPort, timeoutSeconds: number, requestId: string): string {
  const host = formatHostPort(target);
  if (!/^[A-Za-z0-9.:[\]_-]{1,300}$/.test(host)) throw new CommandFailure(500, `confirm endpoint ${JSON.stringify(host)} is not a host:port`);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 3600) throw new CommandFailure(400, `invalid confirm timeout ${timeoutSeconds}`);
  if (!/^[A-Za-z0-9-]{1,64}$/.test(requestId)) throw new CommandFailure(500, 'invalid request id');
  return `IOT_AGENT_CONFIRM_HOST=${host}\nIOT_AGENT_CONFIRM_TIMEOUT=${timeoutSeconds}\nIOT_AGENT_REQUEST_ID=${requestId}\n`;
}

export interface UnitApplyOptions {
  engine: HardeningEngine;
  profile: string;
  timeoutSeconds: number;
  /** The hub (and DPS) of the moment; the unit confirms against the hub. */
  targets: readonly HostPort[];
  envFile?: string;
  systemctl?: string;
}

/**
 * The unprivileged agent's apply: asks systemd (polkit allows exactly this start to the
 * iot-agent user) to run the root oneshot iot-agent-harden-apply@NAME.service, waits for it
 * (`systemctl start` returns when a oneshot has finished), bounded by the confirm timeout
 * plus a margin, then reads the outcome the unit recorded for this request.
 */
export async function applyThroughUnit(options: UnitApplyOptions): Promise<ApplyReport> {
  const { engine, profile, timeoutSeconds } = options;
  const unit = applyUnitName(profile);
  const target = options.targets.find((t) => t.port === 8883) ?? options.targets[0];
  if (!target) throw new CommandFailure(500, 'no hub or DPS endpoint known to confirm against');
  const requestId = randomUUID();
  await writeFileAtomic(options.envFile ?? CONFIRM_ENV_FILE, confirmEnvironment(target, timeoutSeconds, requestId), 0o640);

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
    throw new CommandFailure(500, `profile ${profile} not applied: ${outcome.error ?? 'no reason recorded'}`);
  }
  const state = failure === undefined ? '' : await unitResult(options.systemctl ?? 'systemctl', unit);
  throw new CommandFailure(500, `profile ${profile}: ${unit} ${failure === undefined ? 'finished' : `failed (${failure}${state})`} without recording an outcome for this request`);
}

async function unitResult(systemctl: string, unit: string): Promise<string> {
  try {
    const { stdout } = await run(systemctl, ['show', '-p', 'Result,ExecMainStatus', unit], { timeout: 10_000 });
    return `; ${stdout.trim().split('\n').join(', ')}`;
  } catch {
    return '';
  }
}
