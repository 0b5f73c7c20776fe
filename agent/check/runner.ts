import type { AgentConfig } from '../config.js';
import { readAssignment, type StoredAssignment } from '../state/assignment-store.js';
import { offsetFromDate } from '../time/service-clock.js';
import { fetchServiceDate } from '../time/service-date.js';
import { checkClock, type MeasuredOffset } from './clock-check.js';
import { checkConfig } from './config-check.js';
import { withDeadline } from './deadline.js';
import { checkEndpoint, type Endpoint } from './endpoint-check.js';
import { CHECK_IDS, fail, seconds, warn, type CheckId, type CheckResult } from './result.js';
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
}

export const NETWORK_TIMEOUT_MS = 5_000;
export const TPM_COMMAND_TIMEOUT_MS = 4_000;
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
 * state, CA file) come first because the rest depend on them; then the TPM and the two
 * endpoints run side by side. Each group has a deadline, so the whole run takes about
 * two network steps at worst (a DNS lookup and a handshake, 10 s), however much hangs.
 */
export async function runChecks(options: CheckOptions): Promise<CheckResult[]> {
  const networkMs = options.networkTimeoutMs ?? NETWORK_TIMEOUT_MS;
  const tpmMs = options.tpmCommandTimeoutMs ?? TPM_COMMAND_TIMEOUT_MS;
  const now = options.now ?? (() => new Date());

  const { result: configResult, config } = await checkConfig(options.configPath);
  const [stored, stateDir, trust] = await Promise.all([
    readAssignment(config.stateDir),
    inspectStateDir(config.stateDir),
    loadTrust(config.tls.extraCaFile),
  ]);
  const hub = stored.status === 'valid' ? stored.assignment.assignedHub : undefined;
  const endpointMs = 2 * networkMs + GUARD_SLACK_MS;

  const [tpm, dps, hubChecks, measured] = await Promise.all([
    guard(checkTpm({
      transport: options.tpmOverride || config.tpm.transport,
      origin: options.tpmOverride ? 'IOT_AGENT_TPM' : 'tpm.transport',
      commandTimeoutMs: tpmMs,
      registrationId: config.provisioning.registrationId,
      runtimeDir: config.runtimeDir,
      read: options.tpmRead,
    }), ['tpm', 'identity'], 2 * tpmMs + GUARD_SLACK_MS),
    guard(checkEndpoint(dpsEndpoint(config), trust, networkMs), ['dps-dns', 'dps-tls'], endpointMs),
    hub === undefined
      ? noHubKnown(stored)
      : guard(checkEndpoint(hubEndpoint(hub, config), trust, networkMs), ['hub-dns', 'hub-tls'], endpointMs),
    // One network step at most: the offset is a nicety beside the checks that must finish.
    trust.ok ? withDeadline(measureOffset(config.provisioning.globalEndpoint, trust.ca, networkMs), networkMs, () => undefined) : undefined,
  ]);

  const results = [
    configResult, ...tpm, checkClock(now(), measured), describeAssignment(stored, config), describeStateDir(config.stateDir, stateDir),
    ...dps, ...hubChecks,
  ];
  return CHECK_IDS.map((id) => results.find((r) => r.id === id)!);
}

/** DPS's clock against ours, from the Date header of one HTTPS answer; undefined when DPS cannot be asked. */
async function measureOffset(host: string, ca: string[] | undefined, timeoutMs: number): Promise<MeasuredOffset | undefined> {
  try {
    const { date, sentAt, receivedAt } = await fetchServiceDate(host, 443, ca, timeoutMs);
    const offsetMs = offsetFromDate(date, sentAt, receivedAt);
    return offsetMs === undefined ? undefined : { offsetMs, source: `DPS ${host}` };
  } catch {
    return undefined;
  }
}

function dpsEndpoint(config: AgentConfig): Endpoint {
  return {
    dnsId: 'dps-dns', tlsId: 'dps-tls', role: 'DPS', host: config.provisioning.globalEndpoint, port: 443,
    origin: 'provisioning.globalEndpoint in the config',
  };
}

function hubEndpoint(hub: string, config: AgentConfig): Endpoint {
  return {
    dnsId: 'hub-dns', tlsId: 'hub-tls', role: 'hub', host: hub, port: 8883,
    origin: `the cached assignment in ${config.stateDir} (re-provision if the hub moved)`,
  };
}

function noHubKnown(stored: StoredAssignment): CheckResult[] {
  const why = stored.status === 'invalid' ? 'the cached assignment is not usable (see state)' : 'not provisioned';
  const hint = 'the hub is known once DPS has assigned one';
  return [warn('hub-dns', `${why}, no hub known`, hint), warn('hub-tls', `${why}, no hub known`, hint)];
}

/** A group's results, or a failure for each of its checks when it overruns its deadline. */
function guard(work: Promise<CheckResult[]>, ids: CheckId[], ms: number): Promise<CheckResult[]> {
  const failed = (err: unknown) => ids.map((id) => fail(id, `the check itself failed: ${String(err)}`, 'please report this'));
  return withDeadline(work.catch(failed), ms, () =>
    ids.map((id) => fail(id, `did not finish within ${seconds(ms)}`, 'something hangs: see the other checks')));
}
