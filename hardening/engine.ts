import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, ExitCode } from '../agent/errors.js';
import { isProcessAlive } from '../agent/state/process-alive.js';
import { restoreCommand, saveCommand, type Backend } from './backend.js';
import type { LoadedProfile } from './load-profile.js';
import { buildPlan, type Plan } from './plan.js';
import { probeTargets, type HostPort, type ProbeResult } from './probe.js';
import type { Profile } from './profile.js';
import { AGENT_CHAINS, type Family, type FirewallRules } from './render-firewall.js';
import { isHostController, MANAGED_FILES, USB_DEVICES_DIR } from './render-host.js';
import { agentJumps, applyText, chainRules, coveredByTest, parseFilterTable, removeText, revertText, type FilterTable } from './restore-text.js';
import { ExecRunner, type CommandRunner } from './runner.js';
import { DEFAULT_STATE_DIR, readTextOrNull, StateStore, writeFileAtomic } from './state-store.js';
import { CommandSysctl, ProcSysctl, type SysctlIo } from './sysctl-io.js';
import { toolIdentity } from './tool-identity.js';

/**
 * The thin I/O side of hardening: reads the live state, loads rendered rules atomically,
 * keeps a snapshot, and records what was applied. Decisions about *what* to load live in
 * the pure modules (render-*, restore-text, plan).
 */
export interface EngineOptions {
  /** Root for /etc and /sys (a prepared directory tree in tests). */
  root?: string;
  /**
   * Snapshots and records; default `<root>/var/lib/iot-agent-hardening`: its own directory,
   * owned by root (the hardening units' StateDirectory=), never the agent's /var/lib/iot-agent,
   * which systemd hands to the unprivileged agent user. Records are 0644: the agent reads them.
   */
  stateDir?: string;
  backend?: Backend;
  /** Put in front of every command, e.g. `['ip', 'netns', 'exec', NAME]`. */
  commandPrefix?: readonly string[];
  runner?: CommandRunner;
  /** Default: /proc/sys directly without a prefix or runner of the caller's; `sysctl` through the runner otherwise. */
  sysctl?: SysctlIo;
  now?: () => number;
}

/** What was applied last, with the firewall as the backend printed it right after loading. */
export interface AppliedRecord {
  profile: Profile;
  hash: string;
  origin: string;
  appliedAt: string;
  backend: Backend;
  /** Proven not to cut the device off its hub (confirmed transaction, or by the daemon). */
  confirmed: boolean;
  firewall: Record<Family, string[] | null>;
  /**
   * What `firewall` was read back from: the rendered rules and the save tool's binary. A
   * later apply of the same rules with the same binary reuses the lines instead of
   * reading the table back again (the boot path re-applies the same profile every boot).
   */
  readback?: Record<Family, string | null>;
  /** The boot it was applied in: at the next boot the kernel starts with empty tables. */
  bootId?: string;
}

export interface KnownGoodRecord {
  profile: Profile;
  hash: string;
  origin: string;
  confirmedAt: string;
}

export interface Snapshot {
  takenAt: string;
  backend: Backend;
  /** `iptables-save -t filter` / `ip6tables-save -t filter` before the change (null: unavailable). */
  firewall: Record<Family, string | null>;
  sysctls: Record<string, string | null>;
  files: Record<string, string | null>;
  sysfs: Record<string, string | null>;
  applied: AppliedRecord | null;
  /** The snapshot this one replaced: rollback walks back one profile at a time. */
  older?: Snapshot | null;
}

interface LiveState {
  firewall: Record<Family, string | null>;
  sysctls: Record<string, string | null>;
}

/** The rule text a --test run accepted before the live table was read (null: none was run, or it failed). */
type TestedTexts = Record<Family, string | null>;

/** How many profiles back rollback can go. */
const SNAPSHOT_DEPTH = 8;

export interface DriftItem {
  kind: 'profile' | 'firewall' | 'sysctl' | 'file' | 'sysfs';
  target: string;
  ok: boolean;
  expected: string;
  actual: string;
}

export interface VerifyReport {
  profile: string;
  hash: string;
  appliedHash: string | null;
  drift: number;
  items: DriftItem[];
}

export interface ApplyReport {
  profile: string;
  hash: string;
  changed: boolean;
  confirmed: boolean;
  rolledBack: boolean;
  reason?: string;
  probes?: ProbeResult[];
  /** After an automatic rollback: whether the targets answered again. */
  reconnected?: boolean;
  notes: string[];
  durationMs: number;
}

export interface RollbackReport {
  restoredTo: string;
  exact: boolean;
  notes: string[];
}

export interface ConfirmOptions {
  targets: readonly HostPort[];
  timeoutSeconds: number;
}

export { DEFAULT_STATE_DIR } from './state-store.js';

/** Who ran a verify that was recorded: the boot unit, the guard, or an apply (CLI or harden-apply@). */
export type VerifiedBy = 'boot' | 'guard' | 'apply';

/**
 * The drift found by the last root run (boot apply, guard, harden-apply@), for readers that
 * cannot read the firewall themselves: the unprivileged agent reports it with its time.
 */
export interface VerifiedRecord extends VerifyReport {
  checkedAt: string;
  by: VerifiedBy;
}

/**
 * The outcome of the last non-boot `harden apply`, so that whoever asked for it through
 * systemd (iot-agent-harden-apply@NAME.service) can read it back. `requestId` is the
 * caller's IOT_AGENT_REQUEST_ID, passed through the unit's environment file.
 */
export interface ApplyOutcomeRecord {
  requestId: string | null;
  invocationId: string | null;
  profile: string;
  finishedAt: string;
  report?: ApplyReport;
  error?: string;
}

export class HardeningEngine {
  readonly root: string;
  readonly backend: Backend;
  readonly store: StateStore;
  private readonly runner: CommandRunner;
  private readonly sysctl: SysctlIo;
  private readonly now: () => number;

  constructor(options: EngineOptions = {}) {
    this.root = options.root ?? '/';
    this.backend = options.backend ?? 'auto';
    this.store = new StateStore(options.stateDir ?? path.join(this.root, DEFAULT_STATE_DIR));
    this.runner = options.runner ?? new ExecRunner(options.commandPrefix ?? []);
    const ownNamespace = options.runner === undefined && (options.commandPrefix ?? []).length === 0;
    this.sysctl = options.sysctl ?? (ownNamespace ? new ProcSysctl() : new CommandSysctl(this.runner));
    this.now = options.now ?? Date.now;
  }

  /** What apply would do. Reads only the USB controllers under the root; needs no privileges. */
  async plan(loaded: LoadedProfile): Promise<Plan> {
    return buildPlan(loaded.profile, loaded.origin, await this.usbControllers());
  }

  async applied(): Promise<AppliedRecord | null> {
    return this.store.read<AppliedRecord>('applied');
  }

  async knownGood(): Promise<KnownGoodRecord | null> {
    return this.store.read<KnownGoodRecord>('known-good');
  }

  /** The drift recorded by the last root run that verified (null: none recorded). */
  async lastVerified(): Promise<VerifiedRecord | null> {
    return this.store.read<VerifiedRecord>('verified');
  }

  /** Verifies the applied profile and records the result with its time; null when none is applied. */
  async recordVerify(by: VerifiedBy): Promise<VerifiedRecord | null> {
    if (!(await this.applied())) {
      await this.store.remove('verified');
      return null;
    }
    const record: VerifiedRecord = { ...(await this.verify()), checkedAt: new Date(this.now()).toISOString(), by };
    await this.store.write('verified', record);
    return record;
  }

  async lastApplyOutcome(): Promise<ApplyOutcomeRecord | null> {
    return this.store.read<ApplyOutcomeRecord>('last-apply');
  }

  async recordApplyOutcome(outcome: Omit<ApplyOutcomeRecord, 'finishedAt'>): Promise<void> {
    await this.store.write('last-apply', { ...outcome, finishedAt: new Date(this.now()).toISOString() });
  }

  /**
   * Applies a profile: checks the rule text with --test, snapshots everything it will
   * touch, then loads it. With `confirm`, proves the targets still answer a TLS handshake
   * within the timeout, and otherwise restores the snapshot by itself.
   */
  async apply(loaded: LoadedProfile, confirm?: ConfirmOptions): Promise<ApplyReport> {
    return this.locked(() => this.applyUnlocked(loaded, confirm));
  }

  private async applyUnlocked(loaded: LoadedProfile, confirm?: ConfirmOptions): Promise<ApplyReport> {
    const started = this.now();
    const plan = await this.plan(loaded);
    const notes: string[] = [];
    const report = (extra: Partial<ApplyReport>): ApplyReport => ({
      profile: plan.profile, hash: plan.hash, changed: false, confirmed: false, rolledBack: false, notes, durationMs: 0,
      ...extra,
    });
    // Everything read before the change, side by side: the live tables and sysctls, the
    // files and sysfs values for the snapshot, the records, and a --test of the rules with
    // every jump (what is loaded later is that text, or it less jumps already present).
    // The --test goes first: on nft it is the longest step (the kernel aborts the batch),
    // and each process started holds this thread up for a millisecond or two. Skipped when
    // the profile was applied in this boot already: most likely there is nothing to do, and
    // on nft the reads would wait for the --test.
    const [previous, boot] = await Promise.all([this.applied(), bootId()]);
    const likelyUnchanged = previous?.hash === plan.hash && previous.bootId === boot;
    const [tested, live, knownGood, existing, files, sysfs, tools] = await Promise.all([
      likelyUnchanged ? { 4: null, 6: null } : this.testAhead(plan),
      this.readLive(plan),
      this.knownGood(),
      this.store.read<Snapshot>('snapshot'),
      Promise.all(MANAGED_FILES.map(async (f) => [f, await readTextOrNull(this.at(f))] as const)),
      Promise.all(plan.host.sysfs.map(async (e) => [e.path, await readTrimmed(this.at(e.path))] as const)),
      Promise.all(([4, 6] as const).map((f) => toolIdentity(saveCommand(this.backend, f)[0]!))),
    ]);

    const current = await this.compare(plan, previous, live);
    if (previous?.hash === plan.hash && current.every((i) => i.ok)) {
      return report({ confirmed: previous.confirmed, durationMs: this.now() - started });
    }
    if (confirm) {
      // A change can only be proven harmless if the targets answer before it.
      const before = await probeTargets(this.runner, confirm.targets, 3_000);
      const down = before.filter((p) => !p.ok);
      if (down.length) {
        throw new AgentError(`cannot confirm: ${down.map((p) => `${p.target} (${p.detail})`).join(', ')} unreachable before applying; nothing applied`, {
          hint: 'check the --confirm-host endpoints, or apply without --confirm-timeout',
        });
      }
    }

    const { 4: saved4, 6: saved6 } = live.firewall;
    if (saved4 === null) throw new AgentError('iptables-save failed');
    const text4 = applyText(plan.firewall[4]!, parseFilterTable(saved4));
    const text6 = plan.firewall[6]
      ? applyText(plan.firewall[6], parseFilterTable(saved6 ?? ''))
      : saved6 === null ? '' : removeText(parseFilterTable(saved6));
    if (saved6 === null && plan.firewall[6] === undefined) notes.push('ip6tables unavailable: IPv6 rules left alone');
    // Only a text the early --test did not cover is tested now (e.g. removing IPv6 chains).
    await Promise.all([
      tested[4] !== null && coveredByTest(text4, tested[4]) ? undefined : this.restore(4, text4, true),
      !text6 || (tested[6] !== null && coveredByTest(text6, tested[6])) ? undefined : this.restore(6, text6, true),
    ]);

    const sysctlsBefore = live.sysctls;
    const snapshot: Snapshot = {
      takenAt: new Date(this.now()).toISOString(),
      backend: this.backend,
      firewall: { 4: saved4, 6: saved6 },
      sysctls: sysctlsBefore,
      files: Object.fromEntries(files),
      sysfs: Object.fromEntries(sysfs),
      applied: previous,
    };
    // Re-applying the profile already recorded (a repair) keeps the snapshot from before
    // that profile, so rollback always undoes the profile, not the repair.
    const kept = previous?.hash === plan.hash ? existing : null;
    if (kept) notes.push(`re-applied over drift; rollback still returns to the state of ${kept.takenAt}`);
    // Durable before anything changes: a power cut mid-apply leaves a snapshot to return to.
    await Promise.all([
      kept ? undefined : this.store.write('snapshot', { ...snapshot, older: trimSnapshots(existing, SNAPSHOT_DEPTH - 1) }),
      confirm ? this.store.write('pending', { hash: plan.hash, startedAt: snapshot.takenAt, timeoutSeconds: confirm.timeoutSeconds }) : undefined,
    ]);

    // The same rules loaded by the same binary read back the same: reuse the recorded lines.
    const readback = { 4: readbackKey(this.backend, tools[0]!, plan.firewall[4]), 6: readbackKey(this.backend, tools[1]!, plan.firewall[6]) };
    const known = (family: Family) => (readback[family] !== null && previous?.readback?.[family] === readback[family] ? previous.firewall[family] : null);
    const firewall: Record<Family, string[] | null> = {
      4: known(4),
      6: text6 ? known(6) : saved6 === null ? null : agentLines(parseFilterTable(saved6)),
    };
    try {
      const sysctls = Object.fromEntries(Object.entries(plan.host.sysctls).filter(([k, v]) => {
        if (sysctlsBefore[k] !== null) return sysctlsBefore[k] !== v;
        if (!k.startsWith('net.ipv6.')) throw new AgentError(`sysctl ${k} does not exist on this kernel`);
        notes.push(`sysctl ${k} absent (IPv6 not in this kernel): skipped`);
        return false;
      }));
      // Every part at once: none depends on another, and any failure restores the snapshot.
      const results = await Promise.allSettled([
        this.restore(4, text4, false).then(async () => { firewall[4] ??= await this.agentLinesOrNull(4); }),
        text6 ? this.restore(6, text6, false).then(async () => { firewall[6] ??= await this.agentLinesOrNull(6); }) : undefined,
        this.sysctl.write(sysctls),
        ...plan.host.files.map((file) => writeFileAtomic(this.at(file.path), file.content)),
        ...plan.host.removeFiles.map((file) => rm(this.at(file), { force: true })),
        ...plan.host.sysfs.map((entry) => writeFile(this.at(entry.path), `${entry.value}\n`)),
      ]);
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
      if (firewall[4] === null) throw new AgentError('iptables-save failed after loading the rules');
    } catch (err) {
      // Back to the state just before this apply (held in memory when a repair kept the older snapshot).
      await this.restoreSnapshot(snapshot);
      if (!kept) await this.popSnapshot();
      await this.store.remove('pending');
      throw new AgentError(`applying profile ${plan.profile} failed, previous state restored`, { cause: err });
    }

    const record: AppliedRecord = {
      profile: loaded.profile, hash: plan.hash, origin: loaded.origin, appliedAt: new Date(this.now()).toISOString(),
      backend: this.backend, confirmed: !confirm && knownGood?.hash === plan.hash, firewall, readback, bootId: boot,
    };
    await this.store.write('applied', record);
    if (!confirm) return report({ changed: true, confirmed: record.confirmed, durationMs: this.now() - started });

    const outcome = await this.awaitReachable(confirm, this.now());
    if (outcome.ok) {
      record.confirmed = true;
      await this.store.write('applied', record);
      await this.recordKnownGood(record);
      await this.store.remove('pending');
      return report({ changed: true, confirmed: true, probes: outcome.probes, durationMs: this.now() - started });
    }
    await this.restoreSnapshot(snapshot);
    if (!kept) await this.popSnapshot();
    await this.store.remove('pending');
    const failed = outcome.probes.filter((p) => !p.ok).map((p) => `${p.target}: ${p.detail}`).join('; ');
    const after = await probeTargets(this.runner, confirm.targets, 3_000);
    return report({
      changed: true, rolledBack: true, probes: outcome.probes, reconnected: after.every((p) => p.ok),
      reason: `not reachable within ${confirm.timeoutSeconds} s after applying ${plan.profile} (${failed}); previous state restored`,
      durationMs: this.now() - started,
    });
  }

  /**
   * `--test` of each family's rules with every jump inserted, run while the live table is
   * still being read. A rejection is not final here: the exact text is tested again later.
   */
  private async testAhead(plan: Plan): Promise<TestedTexts> {
    const test = async (family: Family): Promise<string | null> => {
      const rules = plan.firewall[family];
      if (!rules) return null;
      const text = applyText(rules, undefined);
      return this.restore(family, text, true).then(() => text, () => null);
    };
    const [v4, v6] = await Promise.all([test(4), test(6)]);
    return { 4: v4, 6: v6 };
  }

  /** Restores the snapshot taken by the last apply that changed something. */
  async rollback(): Promise<RollbackReport> {
    return this.locked(async () => {
      const snapshot = await this.store.read<Snapshot>('snapshot');
      if (!snapshot) {
        throw new AgentError('no hardening snapshot to roll back to', { hint: 'a snapshot is taken by `iot-agent harden apply`' });
      }
      const notes = await this.restoreSnapshot(snapshot);
      await this.popSnapshot();
      const exact = sameFilter(parseFilterTable(await this.save(4)), parseFilterTable(snapshot.firewall[4] ?? ''));
      return { restoredTo: snapshot.takenAt, exact, notes };
    });
  }

  /** Reads the live state back and compares it, item by item, with the profile (default: the applied one). */
  async verify(loaded?: LoadedProfile): Promise<VerifyReport> {
    const applied = await this.applied();
    const source = loaded ?? (applied ? { profile: applied.profile, origin: applied.origin } : undefined);
    if (!source) {
      throw new AgentError('no hardening profile has been applied here', {
        hint: 'apply one with `iot-agent harden apply`, or name one with --profile', exitCode: ExitCode.failure,
      });
    }
    const plan = await this.plan(source);
    const items = await this.compare(plan, applied, await this.readLive(plan));
    return { profile: plan.profile, hash: plan.hash, appliedHash: applied?.hash ?? null, drift: items.filter((i) => !i.ok).length, items };
  }

  /** Records the applied profile as known good: the daemon calls this once the hub answered. */
  async markKnownGood(): Promise<KnownGoodRecord | null> {
    const applied = await this.applied();
    if (!applied) return null;
    if (!applied.confirmed) await this.store.write('applied', { ...applied, confirmed: true });
    return this.recordKnownGood(applied);
  }

  /** Applies the last known good profile again (after the applied one kept the hub away). */
  async revertToKnownGood(): Promise<ApplyReport | null> {
    const good = await this.knownGood();
    if (!good) return null;
    return this.apply({ profile: good.profile, origin: good.origin });
  }

  /**
   * The boot path: the applied profile again, or the last known good one when a remote
   * change was interrupted before it was confirmed, or `fallback` on a fresh device.
   */
  async applyAtBoot(fallback: () => Promise<LoadedProfile>): Promise<ApplyReport & { chosen: string }> {
    const pending = await this.store.read<{ hash: string }>('pending');
    const applied = await this.applied();
    const good = await this.knownGood();
    let chosen: LoadedProfile;
    let why: string;
    if (pending && good) {
      chosen = { profile: good.profile, origin: good.origin };
      why = `last known good (a remote change ${pending.hash.slice(0, 12)} was interrupted before it was confirmed)`;
    } else if (applied) {
      chosen = { profile: applied.profile, origin: applied.origin };
      why = applied.confirmed ? 'applied profile (known good)' : 'applied profile (not yet confirmed by the hub)';
    } else if (good) {
      chosen = { profile: good.profile, origin: good.origin };
      why = 'last known good';
    } else {
      chosen = await fallback();
      why = 'no profile recorded yet: the configured one';
    }
    await this.store.remove('pending');
    return { ...(await this.apply(chosen)), chosen: why };
  }

  /** After restoring the newest snapshot, the one before it becomes the one rollback uses. */
  private async popSnapshot(): Promise<void> {
    const top = await this.store.read<Snapshot>('snapshot');
    if (top?.older) await this.store.write('snapshot', top.older);
    else await this.store.remove('snapshot');
  }

  private async recordKnownGood(record: AppliedRecord): Promise<KnownGoodRecord> {
    const good: KnownGoodRecord = {
      profile: record.profile, hash: record.hash, origin: record.origin, confirmedAt: new Date(this.now()).toISOString(),
    };
    await this.store.write('known-good', good);
    return good;
  }

  /** Probes until every target answers, or the confirm timeout (counted from the change) runs out. */
  private async awaitReachable(confirm: ConfirmOptions, started: number): Promise<{ ok: boolean; probes: ProbeResult[] }> {
    const deadline = started + confirm.timeoutSeconds * 1000;
    for (;;) {
      const remaining = deadline - this.now();
      const probes = await probeTargets(this.runner, confirm.targets, Math.min(3_000, Math.max(remaining, 200)));
      if (probes.every((p) => p.ok)) return { ok: true, probes };
      if (this.now() + 250 >= deadline) return { ok: false, probes };
      await new Promise((r) => setTimeout(r, Math.min(500, deadline - this.now())));
    }
  }

  private async restoreSnapshot(snapshot: Snapshot): Promise<string[]> {
    const notes: string[] = [];
    for (const family of [4, 6] as const) {
      const before = snapshot.firewall[family];
      if (before === null) continue;
      const text = revertText(parseFilterTable(before), parseFilterTable(await this.save(family)));
      if (!text) continue;
      await this.restore(family, text, true);
      await this.restore(family, text, false);
    }
    const sysctls = Object.fromEntries(Object.entries(snapshot.sysctls).filter((e): e is [string, string] => e[1] !== null));
    await this.sysctl.write(sysctls);
    for (const [file, content] of Object.entries(snapshot.files)) {
      if (content === null) await rm(this.at(file), { force: true });
      else await writeFileAtomic(this.at(file), content);
    }
    for (const [file, value] of Object.entries(snapshot.sysfs)) {
      if (value === null) notes.push(`${this.at(file)} did not exist before: left as is`);
      else await writeFile(this.at(file), `${value}\n`);
    }
    if (snapshot.applied) await this.store.write('applied', snapshot.applied);
    else await this.store.remove('applied');
    return notes;
  }

  /** The live firewall tables and sysctls a plan is about, read once per operation. */
  private async readLive(plan: Plan): Promise<LiveState> {
    const [v4, v6, sysctls] = await Promise.all([
      this.save(4),
      this.trySave(6, plan.firewall[6] !== undefined),
      this.sysctl.read(Object.keys(plan.host.sysctls)),
    ]);
    return { firewall: { 4: v4, 6: v6 }, sysctls };
  }

  private async compare(plan: Plan, applied: AppliedRecord | null, liveState: LiveState): Promise<DriftItem[]> {
    const items: DriftItem[] = [];
    const item = (kind: DriftItem['kind'], target: string, expected: string, actual: string) =>
      items.push({ kind, target, ok: expected === actual, expected, actual });
    item('profile', 'applied profile hash', plan.hash, applied?.hash ?? '(none recorded)');

    for (const family of [4, 6] as const) {
      const label = family === 4 ? 'iptables' : 'ip6tables';
      const managed = plan.firewall[family] !== undefined;
      const saved = liveState.firewall[family];
      if (saved === null) {
        if (managed) item('firewall', `${label}`, 'readable', 'ip6tables-save failed');
        continue;
      }
      const live = agentLines(parseFilterTable(saved));
      const recorded = applied?.hash === plan.hash ? applied.firewall[family] : null;
      if (!managed) {
        item('firewall', `${label} agent chains`, '(none)', live.length ? `${live.length} lines` : '(none)');
      } else if (recorded === null) {
        item('firewall', `${label} agent chains`, `profile ${plan.profile} as applied`, 'no record of this profile being applied');
      } else {
        for (const { chain, hook } of AGENT_CHAINS) {
          const want = recorded.filter((l) => l.startsWith(`-A ${chain} `));
          const have = live.filter((l) => l.startsWith(`-A ${chain} `));
          item('firewall', `${label} ${chain}`, describeLines(want, have, 'expected'), describeLines(want, have, 'actual'));
          const jump = `-A ${hook} -j ${chain}`;
          item('firewall', `${label} ${hook} jump`, jump, live.includes(jump) ? jump : '(missing)');
        }
      }
    }

    const sysctls = liveState.sysctls;
    for (const [key, value] of Object.entries(plan.host.sysctls)) {
      const actual = sysctls[key];
      // Without IPv6 in the kernel its keys are absent, which is as good as disabled.
      const absentOk = actual === null && key.startsWith('net.ipv6.');
      item('sysctl', key, value, absentOk ? value : actual ?? '(absent)');
    }
    for (const file of plan.host.files) {
      const actual = await readTextOrNull(this.at(file.path));
      item('file', this.at(file.path), digestOf(file.content), actual === null ? '(absent)' : digestOf(actual));
    }
    for (const file of plan.host.removeFiles) {
      const actual = await readTextOrNull(this.at(file));
      item('file', this.at(file), '(absent)', actual === null ? '(absent)' : 'present');
    }
    for (const entry of plan.host.sysfs) {
      item('sysfs', this.at(entry.path), entry.value, (await readTrimmed(this.at(entry.path))) ?? '(absent)');
    }
    return items;
  }

  private at(relative: string): string {
    return path.join(this.root, relative);
  }

  private async usbControllers(): Promise<string[]> {
    try {
      return (await readdir(this.at(USB_DEVICES_DIR))).filter(isHostController);
    } catch {
      return [];
    }
  }

  private async save(family: Family): Promise<string> {
    return (await this.runner.run(saveCommand(this.backend, family))).stdout;
  }

  /** ip6tables output, or null when IPv6 filtering is unavailable and not needed. */
  private async trySave(family: Family, needed: boolean): Promise<string | null> {
    try {
      return await this.save(family);
    } catch (err) {
      if (needed) throw err;
      return null;
    }
  }

  private async agentLinesOrNull(family: Family): Promise<string[] | null> {
    const saved = await this.trySave(family, false);
    return saved === null ? null : agentLines(parseFilterTable(saved));
  }

  private async restore(family: Family, text: string, test: boolean): Promise<void> {
    try {
      await this.runner.run(restoreCommand(this.backend, family, test), { input: text });
    } catch (err) {
      throw new AgentError(`${family === 4 ? 'iptables' : 'ip6tables'} rules were ${test ? 'rejected by --test' : 'not loaded'}`, {
        cause: err, hint: 'run `iot-agent harden plan` to see the rule text; is the kernel missing an xtables match (conntrack, hashlimit, comment)?',
      });
    }
  }

  /** One change at a time per state directory (the daemon and a technician may both try). */
  private async locked<T>(action: () => Promise<T>): Promise<T> {
    // Readable by all (the agent reads the records), writable by root only.
    await mkdir(this.store.dir, { recursive: true, mode: 0o755 });
    const lock = path.join(this.store.dir, 'lock');
    // The boot id makes a lock left by a previous boot stale even if its pid is reused.
    const owner = `${process.pid} ${await bootId()}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await writeFile(lock, `${owner}\n`, { flag: 'wx' });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw lockError(lock, err);
        const [pid = '', boot = ''] = ((await readTextOrNull(lock)) ?? '').trim().split(' ');
        const holder = Number(pid);
        const live = boot === owner.split(' ')[1] && Number.isInteger(holder) && holder > 0 && (holder === process.pid || isProcessAlive(holder));
        if (live) throw lockError(lock, undefined, holder);
        await rm(lock, { force: true });
      }
    }
    try {
      return await action();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

let bootIdRead: Promise<string> | undefined;

/** This boot's id, read once per process (it cannot change while the process lives). */
function bootId(): Promise<string> {
  bootIdRead ??= readTextOrNull('/proc/sys/kernel/random/boot_id').then((text) => (text ?? 'unknown').trim());
  return bootIdRead;
}

/** The agent's part of a filter table: its chains' rules and the jumps into them. */
export function agentLines(table: FilterTable): string[] {
  const lines: string[] = [];
  for (const { chain } of AGENT_CHAINS) if (table.chains.has(chain)) lines.push(`:${chain}`, ...chainRules(table, chain));
  return [...lines, ...agentJumps(table).map((j) => j.line)];
}

/** Identifies a readback: backend, save binary and the rendered chain rules (null: nothing to read back). */
function readbackKey(backend: Backend, tool: string | null, rules: FirewallRules | undefined): string | null {
  if (!rules || tool === null) return null;
  return createHash('sha256').update(JSON.stringify([backend, tool, rules])).digest('hex');
}

function trimSnapshots(snapshot: Snapshot | null, depth: number): Snapshot | null {
  if (!snapshot || depth <= 0) return null;
  return { ...snapshot, older: trimSnapshots(snapshot.older ?? null, depth - 1) };
}

function sameFilter(a: FilterTable, b: FilterTable): boolean {
  return JSON.stringify([...a.chains]) === JSON.stringify([...b.chains]) && JSON.stringify(a.rules) === JSON.stringify(b.rules);
}

function describeLines(want: string[], have: string[], side: 'expected' | 'actual'): string {
  if (JSON.stringify(want) === JSON.stringify(have)) return `${want.length} rules`;
  if (side === 'expected') return `${want.length} rules`;
  const missing = want.filter((l) => !have.includes(l));
  const extra = have.filter((l) => !want.includes(l));
  const parts = [`${have.length} rules`];
  if (missing.length) parts.push(`missing: ${missing.join(' | ')}`);
  if (extra.length) parts.push(`unexpected: ${extra.join(' | ')}`);
  if (!missing.length && !extra.length) parts.push('reordered');
  return parts.join('; ');
}

function digestOf(content: string): string {
  return `${Buffer.byteLength(content)} bytes, sha256 ${createHash('sha256').update(content).digest('hex').slice(0, 16)}`;
}

async function readTrimmed(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function lockError(lock: string, cause: unknown, holder?: number): AgentError {
  return new AgentError(`another hardening change is in progress${holder ? ` (pid ${holder})` : ''}`, {
    cause, hint: `wait for it to finish; remove ${lock} only if that process is gone`,
  });
}
