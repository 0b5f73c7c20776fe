import { AgentError, ExitCode } from '../errors.js';
import { BACKENDS, type Backend } from '../../hardening/backend.js';
import { HardeningEngine, type ApplyReport, type VerifyReport } from '../../hardening/engine.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { formatPlan, planJson } from '../../hardening/plan.js';
import { parseHostPort } from '../../hardening/probe.js';

export interface HardenOptions {
  /** The agent config (global option); hub and DPS endpoints will come from it in a later issue. */
  config?: string;
  profile?: string;
  json?: boolean;
  root?: string;
  stateDir?: string;
  backend?: string;
  netns?: string;
  confirmTimeout?: string;
  confirmHost?: string[];
  boot?: boolean;
}

const DEFAULT_PROFILE = 'baseline';

/** `iot-agent harden plan`: prints exactly what apply would do; changes nothing, needs no privileges. */
export async function hardenPlan(options: HardenOptions): Promise<number> {
  const root = options.root ?? '/';
  const loaded = await loadProfile(options.profile ?? DEFAULT_PROFILE, root);
  const plan = await engineFor(options).plan(loaded);
  process.stdout.write(options.json ? `${JSON.stringify(planJson(plan, root))}\n` : formatPlan(plan, root));
  return ExitCode.ok;
}

/** `iot-agent harden apply`: applies a profile, as a transaction with --confirm-timeout. */
export async function hardenApply(options: HardenOptions): Promise<number> {
  const engine = engineFor(options);
  const root = options.root ?? '/';
  const confirm = confirmOptions(options);
  let report: ApplyReport & { chosen?: string };
  if (options.boot) {
    if (confirm) throw usage('--boot cannot be combined with --confirm-timeout/--confirm-host', 'the network is not up at boot; the daemon confirms later');
    report = await engine.applyAtBoot(() => loadProfile(options.profile ?? DEFAULT_PROFILE, root));
  } else {
    const loaded: LoadedProfile = await loadProfile(options.profile ?? DEFAULT_PROFILE, root);
    report = await engine.apply(loaded, confirm);
  }
  if (options.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(describeApply(report));
  if (report.rolledBack) {
    if (!options.json) process.stderr.write(`iot-agent: ${report.reason}\n`);
    return ExitCode.failure;
  }
  return ExitCode.ok;
}

/** `iot-agent harden verify`: live state against the profile, item by item; exit 1 on drift. */
export async function hardenVerify(options: HardenOptions): Promise<number> {
  const engine = engineFor(options);
  const loaded = options.profile ? await loadProfile(options.profile, options.root ?? '/') : undefined;
  const report = await engine.verify(loaded);
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : describeVerify(report));
  return report.drift === 0 ? ExitCode.ok : ExitCode.failure;
}

/** `iot-agent harden rollback`: restores the snapshot taken by the last apply. */
export async function hardenRollback(options: HardenOptions): Promise<number> {
  const report = await engineFor(options).rollback();
  if (options.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    process.stdout.write(`Restored the state of ${report.restoredTo}${report.exact ? '' : ' (the filter table differs from the snapshot: other software changed it since)'}\n`);
    for (const note of report.notes) process.stdout.write(`  note: ${note}\n`);
  }
  return ExitCode.ok;
}

function engineFor(options: HardenOptions): HardeningEngine {
  const backend = (options.backend ?? 'auto') as Backend;
  if (!BACKENDS.includes(backend)) throw usage(`unknown --backend ${JSON.stringify(options.backend)}`, `one of ${BACKENDS.join(', ')}`);
  if (options.netns !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(options.netns)) {
    throw usage(`invalid --netns ${JSON.stringify(options.netns)}`, 'the name of a namespace listed by `ip netns list`');
  }
  return new HardeningEngine({
    root: options.root ?? '/',
    ...(options.stateDir ? { stateDir: options.stateDir } : {}),
    backend,
    commandPrefix: options.netns ? ['ip', 'netns', 'exec', options.netns] : [],
  });
}

function confirmOptions(options: HardenOptions): { targets: ReturnType<typeof parseHostPort>[]; timeoutSeconds: number } | undefined {
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

function describeVerify(r: VerifyReport): string {
  const lines = [`Profile ${r.profile} (${r.hash.slice(0, 12)}), applied ${r.appliedHash ? r.appliedHash.slice(0, 12) : 'none recorded'}`];
  for (const i of r.items) {
    lines.push(`${i.ok ? 'ok   ' : 'DRIFT'} ${i.kind.padEnd(8)} ${i.target}${i.ok ? '' : `: expected ${i.expected}, found ${i.actual}`}`);
  }
  lines.push(r.drift === 0 ? 'No drift' : `${r.drift} item(s) drifted`);
  return `${lines.join('\n')}\n`;
}
