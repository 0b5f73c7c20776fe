import type { AgentConfig } from '../config.js';
import { readAssignment } from '../state/assignment-store.js';
import { offsetFromDate } from '../time/service-clock.js';
import { fetchServiceDate } from '../time/service-date.js';
import { checkClock, type MeasuredOffset } from './clock-check.js';
import { checkConfig } from './config-check.js';
import { checkDpsHold, type DpsHoldCheckOptions } from './dps-hold-check.js';
import { withDeadline } from '../lib/deadline.js';
import { endpointProxy } from '../network/proxy.js';
import { readHubProtocolMemory } from '../state/hub-protocol-memory.js';
import { checkNetwork, NETWORK_CHECK_IDS } from './network-checks.js';
import { CHECK_IDS, fail, seconds, type CheckId, type CheckResult } from './result.js';
import { describeAssignment, describeStateDir, inspectStateDir } from './state-check.js';
import { checkTpm, type TpmCheckOptions } from './tpm-check.js';
import { loadTrust } from './trust.js';

export interface CheckOptions {
  /** --config; undefined means the default path. */
  configPath: string | undefined;
  /** IOT_AGENT_TPM, which overrides tpm.transport as it does for `tpm info`. */
  tpmOverride: string | undefined;
  now?: () => Date;
  /** Deadline for each network step (a DNS lookup, a TLS handshake). */
  networkTimeoutMs?: number;
  /** Deadline for each TPM command. */
  tpmCommandTimeoutMs?: number;
  /** How the TPM is read: the daemon passes its own connection; the CLI asks the daemon or opens it. */
  tpmRead?: TpmCheckOptions['read'];
  /** How long the running daemon may take to tell its status. */
  daemonTimeoutMs?: number;
  /** How the daemon's status is read: the daemon passes its own; the CLI asks the daemon, if one runs. */
  daemonStatus?: DpsHoldCheckOptions['read'];
}

export const NETWORK_TIMEOUT_MS = 5_000;
export const TPM_COMMAND_TIMEOUT_MS = 4_000;
/** The daemon's status is in its memory: a daemon that takes longer is stuck. */
export const DAEMON_STATUS_TIMEOUT_MS = 3_000;
/** Slack on top of a group's own deadlines before the runner gives up on it. */
const GUARD_SLACK_MS = 1_000;

/**
 * Decisions a technician can rely on:
 * - Exit 0 when nothing fails (warnings allowed), 1 when anything fails. A broken or
 *   unreadable config is a failed check like any other (1), not a usage error: the
 *   report still lists everything else. Exit 2 stays for command-line misuse.
 * - An invalid config does not skip the checks that need it: they use the file's valid
 *   keys over the built-in defaults, and the config check names the keys replaced.
 * - A check that cannot run because another failed (TLS after DNS, identity key after
 *   TPM) fails too, saying "not checked"/"not tried" and which check to fix first: the
 *   device cannot do that step either. A hub that is not known yet is a warning.
 *
 * Runs every check and returns their results in CHECK_IDS order. Local facts (config,
 * state, CA file) come first because the rest depend on them; then the TPM, the running
 * daemon's hold on DPS and the two endpoints run side by side. Each group has a deadline, so the whole run takes about
 * two network steps at worst (a DNS lookup and a handshake, 10 s), however much hangs.
 */
export async function runChecks(options: CheckOptions): Promise<CheckResult[]> {
  const networkMs = options.networkTimeoutMs ?? NETWORK_TIMEOUT_MS;
  const tpmMs = options.tpmCommandTimeoutMs ?? TPM_COMMAND_TIMEOUT_MS;
  const daemonMs = options.daemonTimeoutMs ?? DAEMON_STATUS_TIMEOUT_MS;
  const now = options.now ?? (() => new Date());

  const { result: configResult, config } = await checkConfig(options.configPath);
  const [stored, stateDir, trust, learnt] = await Promise.all([
    readAssignment(config.stateDir),
    inspectStateDir(config.stateDir),
    loadTrust(config.tls.extraCaFile),
    readHubProtocolMemory(config.stateDir),
  ]);
  const hub = stored.status === 'valid' ? stored.assignment.assignedHub : undefined;
  const endpointMs = 2 * networkMs + GUARD_SLACK_MS;
  const noHub = stored.status === 'invalid' ? 'the cached assignment is not usable (see state)' : 'not provisioned';

  const [tpm, hold, network, measured] = await Promise.all([
    guard(checkTpm({
      transport: options.tpmOverride || config.tpm.transport,
      origin: options.tpmOverride ? 'IOT_AGENT_TPM' : 'tpm.transport',
      commandTimeoutMs: tpmMs,
      registrationId: config.provisioning.registrationId,
      runtimeDir: config.runtimeDir,
      read: options.tpmRead,
    }), ['tpm', 'identity'], 2 * tpmMs + GUARD_SLACK_MS),
    guard(checkDpsHold({ runtimeDir: config.runtimeDir, now: now(), timeoutMs: daemonMs, read: options.daemonStatus }).then((r) => [r]),
      ['dps-hold'], daemonMs + GUARD_SLACK_MS),
    guard(checkNetwork({ config, trust, hub, noHub, memory: learnt.memory, stepMs: networkMs }), NETWORK_CHECK_IDS, endpointMs),
    // One network step at most: the offset is a nicety beside the checks that must finish.
    trust.ok ? withDeadline(measureOffset(config, trust.ca, networkMs), networkMs, () => undefined) : undefined,
  ]);

  const results = [
    configResult, ...tpm, checkClock(now(), measured), describeAssignment(stored, config), describeStateDir(config.stateDir, stateDir),
    ...hold, ...network,
  ];
  return CHECK_IDS.map((id) => results.find((r) => r.id === id)!);
}

/** DPS's clock against ours, from the Date header of one HTTPS answer (through the proxy when one applies); undefined when DPS cannot be asked. */
async function measureOffset(config: AgentConfig, ca: string[] | undefined, timeoutMs: number): Promise<MeasuredOffset | undefined> {
  const host = config.provisioning.globalEndpoint;
  try {
    const proxy = endpointProxy(config.network, host, 443);
    const agent = proxy && new (await import('../network/proxy-agent.js')).ProxyTunnel(proxy).agent;
    const { date, sentAt, receivedAt } = await fetchServiceDate(host, 443, ca, timeoutMs, agent);
    const offsetMs = offsetFromDate(date, sentAt, receivedAt);
    return offsetMs === undefined ? undefined : { offsetMs, source: `DPS ${host}` };
  } catch {
    return undefined;
  }
}

/** A group's results, or a failure for each of its checks when it overruns its deadline. */
function guard(work: Promise<CheckResult[]>, ids: CheckId[], ms: number): Promise<CheckResult[]> {
  const failed = (err: unknown) => ids.map((id) => fail(id, `the check itself failed: ${String(err)}`, 'please report this'));
  return withDeadline(work.catch(failed), ms, () =>
    ids.map((id) => fail(id, `did not finish within ${seconds(ms)}`, 'something hangs: see the other checks')));
}
