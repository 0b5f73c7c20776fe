import { withDeadline } from '../lib/deadline.js';
import { AgentError, describeError } from '../lib/errors.js';
import { askDaemon, DaemonAbsentError, payloadOf } from '../control/client.js';
import type { DaemonStatus } from '../control/protocol.js';
import { fail, pass, seconds, warn, type CheckResult } from './result.js';

export interface DpsHoldCheckOptions {
  /** Where a running daemon keeps its control socket. */
  runtimeDir: string;
  now: Date;
  /** How long the daemon may take to answer: its status is in memory, so a daemon that takes longer is stuck. */
  timeoutMs: number;
  /** How the status is read; the daemon passes its own. Default: ask the daemon over its control socket. */
  read?: () => Promise<DaemonStatus>;
}

/**
 * Whether the running daemon leaves DPS alone, and why. The hold lives only in the daemon's
 * memory (agent/retry/connection-policy.ts), so only the daemon can say; with no daemon there
 * is none. A daemon that cannot tell (another version after an upgrade, stuck, out of reach)
 * is a warning: the device may be fine, the check just does not know.
 */
export async function checkDpsHold(options: DpsHoldCheckOptions): Promise<CheckResult> {
  // The socket's own timeout comes later than the deadline: it only closes a connection the check has given up on.
  const read = options.read ?? (async () => payloadOf(await askDaemon(options.runtimeDir, { op: 'status' }, 'status', 2 * options.timeoutMs)));
  let status: DaemonStatus;
  try {
    status = await withDeadline(read(), options.timeoutMs, () => {
      throw new AgentError(`no answer within ${seconds(options.timeoutMs)}`);
    });
  } catch (err) {
    if (err instanceof DaemonAbsentError) return pass('dps-hold', 'no daemon running: no DPS hold is known (a hold lasts only as long as the daemon runs)');
    return warn('dps-hold', `the running daemon did not say whether DPS is held off: ${describeError(err)}`,
      'a daemon of another version (restart it after an upgrade) or a stuck one; only root and the agent\'s user reach its control socket');
  }
  return describeHold(status, options.now);
}

/** The verdict on a daemon's status: an operator hold fails, a hold that keeps a device from its hub warns. */
export function describeHold(status: DaemonStatus, now: Date): CheckResult {
  const until = status.dpsHeldOffUntil !== null && Date.parse(status.dpsHeldOffUntil) > now.getTime() ? status.dpsHeldOffUntil : undefined;
  // lastError is kept after recovery: with an operator hold it is DPS's answer unless the hub failed since.
  const reason = status.lastError?.message ?? status.reason ?? 'no reason recorded';
  const daemon = `daemon pid ${status.pid}`;
  if (status.operatorMustAct) {
    return fail('dps-hold', `DPS will not assign this device until an operator acts (${daemon}): ${reason}`,
      `an operator must enable or fix this device's enrollment in DPS; the daemon asks DPS again ${until ? `at ${until}` : 'at its next attempt'}, or at once with \`iot-agent provision\``);
  }
  if (until === undefined) return pass('dps-hold', `${daemon}: DPS is not held off`);
  // A device on its hub is held off DPS by the re-provisioning rate limit as a rule: nothing waits on DPS.
  if (status.state === 'ready') return pass('dps-hold', `${daemon} is connected; DPS is not asked again before ${until}, and nothing waits on it`);
  return warn('dps-hold', `DPS held off until ${until} (${daemon}, ${status.state}): ${reason}`,
    'the daemon asks DPS again then by itself (its backoff, DPS\'s Retry-After or the re-provisioning rate limit), or at once with `iot-agent provision`');
}
