import path from 'node:path';
import type { AgentConfig } from '../config.js';
import { AgentError, describeError, ExitCode } from '../lib/errors.js';
import { netnsPrefix } from '../lib/exec.js';
import { NETNS_NAME } from '../lib/validate.js';
import type { ApplyRequest } from '../../hardening/apply-request.js';
import { BACKENDS, type Backend } from '../../hardening/backend.js';
import { HardeningEngine, type ApplyReport, type BootReport, type ConfirmOptions, type VerifyReport } from '../../hardening/engine.js';
import { loadProfile, loadProfileByName } from '../../hardening/load-profile.js';
import { formatPlan, planJson } from '../../hardening/plan.js';
import type { GuardOutcome } from '../../hardening/guard.js';
import { formatHostPort, parseHostPort, probeTargets, type HostPort, type ProbeProxy } from '../../hardening/probe.js';
import type { Egress } from '../../hardening/render-firewall.js';
import { hardeningRunner } from '../../hardening/runner.js';
import type { MeasuredBy } from '../attestation/hardening-event.js';

export interface HardenOptions {
  /** The agent config (global option): hub, DPS and the boot grace time for `guard`. */
  config?: string;
  profile?: string;
  json?: boolean;
  root?: string;
  stateDir?: string;
  backend?: string;
  netns?: string;
  confirmTimeout?: string;
  confirmHost?: string[];
  /** The agent's request file (iot-agent-harden-apply@.service names it): confirm targets, timeout, request id. */
  request?: string;
  boot?: boolean;
  grace?: string;
  /** The TPM to measure into instead of the config's tpm.transport; with a --root other than /, the only one. */
  tpm?: string;
}

const DEFAULT_PROFILE = 'baseline';
/** The cached assignment is the agent's file: read by root like any file the agent writes. */
const MAX_ASSIGNMENT_BYTES = 64 * 1024;

/** `iot-agent harden plan`: prints exactly what apply would do; changes nothing, needs no privileges. */
export async function hardenPlan(options: HardenOptions): Promise<number> {
  const root = options.root ?? '/';
  const loaded = await loadProfile(options.profile ?? DEFAULT_PROFILE, root);
  const plan = await (await engineFor(options)).plan(loaded);
  process.stdout.write(options.json ? `${JSON.stringify(planJson(plan, root))}\n` : formatPlan(plan, root));
  return ExitCode.ok;
}

/**
 * `iot-agent harden apply`: applies a profile, as a transaction with --confirm-timeout (or
 * with the confirm targets of the agent's --request, for iot-agent-harden-apply@.service).
 * Afterwards it records the drift it finds (the unprivileged agent reports that, as it
 * cannot read the firewall) and, unless --boot, the outcome, tagged with the request id.
 */
export async function hardenApply(options: HardenOptions): Promise<number> {
  const measure = await measureFor(options, options.boot ? 'boot' : 'cli');
  const engine = await engineFor(options, measure);
  if (options.boot) return hardenApplyAtBoot(engine, options, measure);
  const name = options.profile ?? DEFAULT_PROFILE;
  const outcome = { requestId: null as string | null, invocationId: process.env.INVOCATION_ID ?? null, profile: name.slice(0, 64) };
  let report: ApplyReport;
  try {
    let confirm = confirmOptions(options);
    let request: ApplyRequest | undefined;
    if (options.request !== undefined) {
      if (confirm) throw usage('--request cannot be combined with --confirm-timeout/--confirm-host', 'the request names the endpoints to confirm against');
      // Loaded here: only the root apply unit passes a request, and `plan` must stay fast.
      const { readApplyRequest } = await import('../../hardening/apply-request.js');
      request = await readApplyRequest(options.request, name);
      outcome.requestId = request.requestId;
      confirm = { targets: request.confirmTargets, timeoutSeconds: request.confirmTimeoutSeconds };
    }
    // A request from the agent names a profile; a technician may also give a file.
    const loaded = request ? await loadProfileByName(name, options.root ?? '/') : await loadProfile(name, options.root ?? '/');
    report = await engine.apply(loaded, confirm);
  } catch (err) {
    await record('the apply outcome', () => engine.recordApplyOutcome({ ...outcome, error: describeError(err) }));
    throw err;
  }
  await record('the apply outcome', () => engine.recordApplyOutcome({ ...outcome, report }));
  await record('the verify result', () => engine.recordVerify('apply'));
  printWithMeasurement(options, report, describeApply(report), measure);
  if (report.rolledBack) {
    if (!options.json) process.stderr.write(`iot-agent: ${report.reason}\n`);
    return ExitCode.failure;
  }
  return ExitCode.ok;
}

/**
 * The boot path (iot-agent-hardening.service, before the network): exit 0 when a profile
 * was applied; 1, with the reason, when the fail-closed rule set had to be loaded instead.
 */
async function hardenApplyAtBoot(engine: HardeningEngine, options: HardenOptions, measure: CliMeasure | undefined): Promise<number> {
  if (options.confirmTimeout !== undefined || (options.confirmHost ?? []).length || options.request !== undefined) {
    throw usage('--boot cannot be combined with --confirm-timeout, --confirm-host or --request', 'the network is not up at boot; the guard confirms later');
  }
  const root = options.root ?? '/';
  const report: BootReport = await engine.applyAtBoot(
    () => loadProfile(options.profile ?? DEFAULT_PROFILE, root),
    async () => (await endpointsFromConfig(options.config)).targets,
  );
  if (!report.failClosed) await record('the verify result', () => engine.recordVerify('boot'));
  printWithMeasurement(options, report, report.failClosed
    ? `Boot: ${report.chosen}\n${report.notes.map((n) => `  note: ${n}\n`).join('')}` : describeApply(report), measure);
  if (!report.failClosed) return ExitCode.ok;
  process.stderr.write(`iot-agent: the boot profile could not be applied (${report.error}); the fail-closed rule set is loaded instead\n`);
  return ExitCode.failure;
}

/** Records are for readers after the fact: failing to write one never fails the apply or guard itself. */
async function record(what: string, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
  } catch (err) {
    process.stderr.write(`iot-agent: warning: could not record ${what}: ${describeError(err)}\n`);
  }
}

/** `iot-agent harden verify`: live state against the profile, item by item; exit 1 on drift. */
export async function hardenVerify(options: HardenOptions): Promise<number> {
  const engine = await engineFor(options);
  const loaded = options.profile ? await loadProfile(options.profile, options.root ?? '/') : undefined;
  const report = await engine.verify(loaded);
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : describeVerify(report));
  return report.drift === 0 ? ExitCode.ok : ExitCode.failure;
}

/** `iot-agent harden rollback`: restores the snapshot taken by the last apply. */
export async function hardenRollback(options: HardenOptions): Promise<number> {
  const measure = await measureFor(options, 'cli');
  const report = await (await engineFor(options, measure)).rollback();
  const restored = `Restored the state of ${report.restoredTo}${report.exact ? '' : ' (the filter table differs from the snapshot: other software changed it since)'}\n`;
  printWithMeasurement(options, report, restored + report.notes.map((n) => `  note: ${n}\n`).join(''), measure);
  return ExitCode.ok;
}

/**
 * `iot-agent harden guard`: the boot-time revert as its own root step, beside the boot once
 * the network is up. Exit 0 when the profile was confirmed, kept or reverted; 1 when reverting failed.
 */
export async function hardenGuard(options: HardenOptions): Promise<number> {
  const engine = await engineFor(options, await measureFor(options, 'guard'));
  const given = options.grace === undefined ? undefined : Number(options.grace);
  if (given !== undefined && (!Number.isInteger(given) || given < 1 || given > 3_600)) {
    throw usage(`invalid --grace ${JSON.stringify(options.grace)}`, 'whole seconds from 1 to 3600 (default: hardening.bootGraceSeconds in the config)');
  }
  const explicit = (options.confirmHost ?? []).map(parseHostPort);
  // Loaded here: `plan` must stay fast, and only the guard reads the agent config.
  const { guardIdle, runGuard } = await import('../../hardening/guard.js');
  // Checked before the config is read: most boots have nothing to guard, and need no config for it.
  const idle = await guardIdle(engine);
  if (idle !== null) {
    const outcome: GuardOutcome = { status: 'nothing-to-guard', reason: idle };
    process.stdout.write(options.json ? `${JSON.stringify(outcome)}\n` : describeGuard(outcome, [], '', 0));
    return ExitCode.ok;
  }
  const { config, targets: needed, source: neededSource } = await endpointsFromConfig(options.config);
  const graceSeconds = given ?? config.hardening.bootGraceSeconds;
  const { targets, source } = explicit.length ? { targets: explicit, source: '--confirm-host' } : { targets: needed, source: neededSource };
  const runner = hardeningRunner(netnsPrefix(options.netns));
  const { probeProxyFor } = await import('../commands/needed-endpoints.js');
  const viaProxy = probeProxyFor(config);
  let outcome: GuardOutcome;
  try {
    outcome = await runGuard({ engine, targets, graceSeconds, probe: (t, ms) => probeTargets(runner, t, ms, viaProxy) });
  } catch (err) {
    throw new AgentError('the boot guard could not revert to the last known good profile', {
      cause: err, hint: 'run `iot-agent harden verify` and `iot-agent harden rollback`, or apply a profile by hand', exitCode: ExitCode.failure,
    });
  }
  await record('the verify result', () => engine.recordVerify('guard'));
  if (options.json) process.stdout.write(`${JSON.stringify({ ...outcome, targets: targets.map(formatHostPort), targetSource: source, graceSeconds })}\n`);
  else process.stdout.write(describeGuard(outcome, targets, source, graceSeconds));
  return ExitCode.ok;
}

/**
 * The endpoints the agent needs (needed-endpoints.ts), from the config and the cached
 * assignment. Read as root: the assignment is the agent's file, read with the checks for
 * such files and strictly parsed; an unusable one counts as "not provisioned". A config
 * error is an error: the guard stops on it, and the boot loads its fail-closed rules without
 * these endpoints (which only add ports besides 443 and 8883, and only a readable config
 * names such ports).
 */
async function endpointsFromConfig(configPath: string | undefined): Promise<{ config: AgentConfig; targets: HostPort[]; source: string }> {
  const [{ loadConfig }, { neededEndpoints }, { assignmentPath, parseAssignment }, { readUntrustedFile }, memory] = await Promise.all([
    import('../config.js'), import('../commands/needed-endpoints.js'), import('../state/assignment-store.js'), import('../lib/untrusted-file.js'),
    import('../state/hub-protocol-memory.js'),
  ]);
  const config = await loadConfig(configPath);
  let assignment: { assignedHub: string } | undefined;
  let source = 'assigned hub (cached assignment) and DPS';
  try {
    const stored = parseAssignment(await readUntrustedFile(assignmentPath(config.stateDir), MAX_ASSIGNMENT_BYTES));
    if (stored.status === 'valid') assignment = stored.assignment;
    else source = `DPS (cached assignment unusable: ${stored.reason})`;
  } catch (err) {
    const absent = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    source = absent ? 'DPS (not provisioned yet)' : `DPS (cached assignment unusable: ${describeError(err)})`;
  }
  // What network.hubProtocol auto learnt (the agent's file, strictly parsed): which port of the hub it uses.
  const learnt = await readUntrustedFile(path.join(config.stateDir, memory.HUB_PROTOCOL_FILE), 4096)
    .then((text) => memory.parseHubProtocolMemory(text).memory?.protocol, () => undefined);
  return { config, targets: neededEndpoints(config, assignment, learnt), source };
}

async function engineFor(options: HardenOptions, measure?: CliMeasure): Promise<HardeningEngine> {
  const backend = (options.backend ?? 'auto') as Backend;
  if (!BACKENDS.includes(backend)) throw usage(`unknown --backend ${JSON.stringify(options.backend)}`, `one of ${BACKENDS.join(', ')}`);
  if (options.netns !== undefined && !NETNS_NAME.test(options.netns)) {
    throw usage(`invalid --netns ${JSON.stringify(options.netns)}`, 'the name of a namespace listed by `ip netns list`');
  }
  const { egress, probeProxy } = await networkFromConfig(options.config);
  return new HardeningEngine({
    root: options.root ?? '/',
    ...(options.stateDir ? { stateDir: options.stateDir } : {}),
    backend,
    commandPrefix: netnsPrefix(options.netns),
    ...(measure ? { measure } : {}),
    egress,
    ...(probeProxy ? { probeProxy } : {}),
  });
}

/**
 * The outbound rules and the confirm probes' path from the agent config's network section
 * (needed-endpoints.ts). A config that cannot be read falls back to the defaults (443 and
 * 8883, no proxy): a board is hardened whatever its config says, never left open.
 */
async function networkFromConfig(configPath: string | undefined): Promise<{ egress: Egress; probeProxy: ProbeProxy | undefined }> {
  const [{ DEFAULTS, loadConfig }, { egressFor, probeProxyFor }] = await Promise.all([import('../config.js'), import('../commands/needed-endpoints.js')]);
  const config = await loadConfig(configPath).catch(() => DEFAULTS);
  return { egress: egressFor(config), probeProxy: probeProxyFor(config) };
}

type CliMeasure = Awaited<ReturnType<typeof import('./harden-measure.js').cliMeasure>>;

/**
 * The measurement of what an apply, rollback or guard leaves in force: into the config's
 * TPM (or --tpm) on the board itself; with a --root other than / (a test tree, not this
 * board) only into a TPM named with --tpm, so that a test never extends the machine's own.
 */
async function measureFor(options: HardenOptions, by: MeasuredBy): Promise<CliMeasure | undefined> {
  if (options.tpm === undefined && (options.root ?? '/') !== '/') return undefined;
  const { cliMeasure } = await import('./harden-measure.js');
  return cliMeasure({ configPath: options.config, tpm: options.tpm, by, warn: (message) => process.stderr.write(`iot-agent: warning: ${message}\n`) });
}

/** A report as JSON (with the measurement when there was one) or as text followed by the measurement's line. */
function printWithMeasurement(options: HardenOptions, report: object, text: string, measure: CliMeasure | undefined): void {
  const measured = measure?.last();
  if (options.json) process.stdout.write(`${JSON.stringify(measured ? { ...report, measurement: measured } : report)}\n`);
  else process.stdout.write(text + (measured ? describeMeasurement(measured) : ''));
}

function describeMeasurement(m: NonNullable<ReturnType<CliMeasure['last']>>): string {
  if (m.outcome === 'gap') return `  not measured into PCR ${m.pcr}: ${m.reason} (recorded as a gap, event ${m.seq})\n`;
  if (m.outcome === 'extended') return `  measured into PCR ${m.pcr} (event ${m.seq})\n`;
  return `  PCR ${m.pcr} already holds this state\n`;
}

function confirmOptions(options: HardenOptions): ConfirmOptions | undefined {
  const hosts = options.confirmHost ?? [];
  if (options.confirmTimeout === undefined && hosts.length === 0) return undefined;
  if (hosts.length === 0) throw usage('--confirm-timeout needs at least one --confirm-host host:port', 'the hub and DPS endpoints to prove reachable');
  const timeoutSeconds = options.confirmTimeout === undefined ? 60 : Number(options.confirmTimeout);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 3600) {
    throw usage(`invalid --confirm-timeout ${JSON.stringify(options.confirmTimeout)}`, 'whole seconds from 1 to 3600');
  }
  return { targets: hosts.map(parseHostPort), timeoutSeconds };
}

function usage(message: string, hint: string): AgentError {
  return new AgentError(message, { hint, exitCode: ExitCode.usage });
}

function describeApply(r: ApplyReport & { chosen?: string }): string {
  const lines: string[] = [];
  if (r.chosen) lines.push(`Boot: ${r.chosen}`);
  const short = r.hash.slice(0, 12);
  if (!r.changed) lines.push(`Profile ${r.profile} (${short}) is already applied: nothing changed`);
  else if (r.rolledBack) lines.push(`Profile ${r.profile} (${short}) was applied and rolled back${r.reconnected ? '; the targets answer again' : '; the targets still do not answer'}`);
  else lines.push(`Applied profile ${r.profile} (${short}) in ${r.durationMs} ms${r.confirmed ? ', confirmed' : ''}`);
  for (const p of r.probes ?? []) lines.push(`  ${p.ok ? 'reachable  ' : 'unreachable'} ${p.target}: ${p.detail}`);
  for (const note of r.notes) lines.push(`  note: ${note}`);
  return `${lines.join('\n')}\n`;
}

function describeGuard(o: GuardOutcome, targets: readonly HostPort[], source: string, graceSeconds: number): string {
  if (o.status === 'nothing-to-guard') return `Nothing to guard: ${o.reason}\n`;
  const lines = [`Guarding for up to ${graceSeconds} s: ${targets.map(formatHostPort).join(', ')} (${source})`];
  if (o.status === 'confirmed') lines.push(`Confirmed after ${o.rounds} probe round(s): ${o.reason}`);
  if (o.status === 'kept') lines.push(`Kept the applied profile: ${o.reason}`);
  if (o.status === 'reverted') {
    lines.push(`Reverted: ${o.reason}`, o.reconnected ? '  the targets answer again' : '  the targets still do not answer');
  }
  for (const p of o.status === 'reverted' ? o.after : o.probes) lines.push(`  ${p.ok ? 'reachable  ' : 'unreachable'} ${p.target}: ${p.detail}`);
  return `${lines.join('\n')}\n`;
}

function describeVerify(r: VerifyReport): string {
  const lines = [`Profile ${r.profile} (${r.hash.slice(0, 12)}), applied ${r.appliedHash ? r.appliedHash.slice(0, 12) : 'none recorded'}`];
  for (const i of r.items) {
    lines.push(`${i.ok ? 'ok   ' : 'DRIFT'} ${i.kind.padEnd(8)} ${i.target}${i.ok ? '' : `: expected ${i.expected}, found ${i.actual}`}`);
  }
  lines.push(r.drift === 0 ? 'No drift' : `${r.drift} item(s) drifted`);
  return `${lines.join('\n')}\n`;
}
