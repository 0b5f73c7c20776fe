import path from 'node:path';
import { AgentError, describeError, ExitCode } from '../agent/lib/errors.js';
import { bootId } from '../agent/lib/boot-id.js';
import type { CommandRunner } from '../agent/lib/exec.js';
import type { Backend } from './backend.js';
import { compare } from './drift.js';
import { failClosedRules } from './fail-closed.js';
import { FirewallIo, label, oneLineError } from './firewall-io.js';
import { HostIo } from './host-io.js';
import { bootChoice, type History } from './known-good.js';
import type { LoadedProfile } from './load-profile.js';
import { withLock } from './lock.js';
import type { MeasureHook } from './measure.js';
import { buildPlan, type Plan } from './plan.js';
import { probeTargets, type HostPort, type Probe, type ProbeProxy } from './probe.js';
import {
  DEFAULT_STATE_DIR, Records, type AppliedRecord, type ApplyOutcomeRecord, type BootRecord, type KnownGoodRecord, type OriginalsRecord, type VerifiedBy, type VerifiedRecord,
} from './records.js';
import { DEFAULT_EGRESS, type Egress } from './render-firewall.js';
import type { ApplyReport, RollbackReport, VerifyReport } from './reports.js';
import { parseFilterTable } from './restore-text.js';
import { hardeningRunner } from './runner.js';
import { CommandSysctl, ProcSysctl, type SysctlIo } from './sysctl-io.js';
import { applyTransaction, popSnapshot, readLive, restoreSnapshot, type ConfirmOptions, type TransactionParts } from './transaction.js';

export type { ConfirmOptions } from './transaction.js';
export type { ApplyReport, DriftItem, RollbackReport, VerifyReport } from './reports.js';
export type { AppliedRecord, ApplyOutcomeRecord, KnownGoodRecord, VerifiedBy, VerifiedRecord } from './records.js';

/**
 * Hardening as its callers see it (CLI, commands, boot unit, guard): plan, apply, verify,
 * roll back, the boot path and the known-good bookkeeping. The transaction's steps live in
 * transaction.ts, the decisions in the pure modules (render-*, restore-text, drift,
 * known-good), the records in records.ts.
 */
export interface EngineOptions {
  /** Root for /etc and /sys (a prepared directory tree in tests). */
  root?: string;
  /**
   * Snapshots and records; default `<root>/var/lib/iot-agent-hardening`: its own directory,
   * owned by root (the hardening units' StateDirectory=), never the agent's /var/lib/iot-agent.
   */
  stateDir?: string;
  backend?: Backend;
  /** Put in front of every command, e.g. `['ip', 'netns', 'exec', NAME]`. */
  commandPrefix?: readonly string[];
  runner?: CommandRunner;
  /** Default: /proc/sys directly without a prefix or runner of the caller's; `sysctl` through the runner otherwise. */
  sysctl?: SysctlIo;
  now?: () => number;
  /** Measures what an apply or rollback leaves in force into the TPM (hardening/measure.ts), inside the lock. */
  measure?: MeasureHook;
  /** What the agent's config asks of the outbound rules (default: 443 and 8883, no proxy). */
  egress?: Egress;
  /** The proxy the confirm probes go through, as the agent's connections do. */
  probeProxy?: ProbeProxy;
}

export { DEFAULT_STATE_DIR } from './records.js';

/** The boot path's outcome: the report of the apply, or of the fail-closed rules loaded instead. */
export type BootReport = (ApplyReport & { chosen: string; failClosed?: false }) | { chosen: string; failClosed: true; error: string; notes: string[] };

export class HardeningEngine {
  readonly root: string;
  readonly backend: Backend;
  readonly records: Records;
  readonly runner: CommandRunner;
  private readonly firewall: FirewallIo;
  private readonly host: HostIo;
  private readonly now: () => number;
  private readonly measure: MeasureHook | undefined;
  private readonly egress: Egress;
  private readonly probeProxy: ProbeProxy | undefined;

  constructor(options: EngineOptions = {}) {
    this.root = options.root ?? '/';
    this.backend = options.backend ?? 'auto';
    this.records = new Records(options.stateDir ?? path.join(this.root, DEFAULT_STATE_DIR));
    this.runner = options.runner ?? hardeningRunner(options.commandPrefix);
    const ownNamespace = options.runner === undefined && (options.commandPrefix ?? []).length === 0;
    this.firewall = new FirewallIo(this.runner, this.backend);
    this.host = new HostIo(this.root, options.sysctl ?? (ownNamespace ? new ProcSysctl() : new CommandSysctl(this.runner)));
    this.now = options.now ?? Date.now;
    this.measure = options.measure;
    this.egress = options.egress ?? DEFAULT_EGRESS;
    this.probeProxy = options.probeProxy;
  }

  /** What apply would do. Reads only the USB facts under the root and the records; needs no privileges. */
  async plan(loaded: LoadedProfile, originals?: OriginalsRecord | null): Promise<Plan> {
    const values = originals === undefined ? await this.records.originals.readOrNote([]).catch(() => null) : originals;
    return buildPlan(loaded.profile, loaded.origin, await this.host.usbFacts(), values, this.egress);
  }

  applied(): Promise<AppliedRecord | null> {
    return this.records.applied.read();
  }

  knownGood(): Promise<KnownGoodRecord | null> {
    return this.records.knownGood.read();
  }

  /** The drift recorded by the last root run that verified (null: none recorded). */
  lastVerified(): Promise<VerifiedRecord | null> {
    return this.records.verified.read();
  }

  lastApplyOutcome(): Promise<ApplyOutcomeRecord | null> {
    return this.records.lastApply.read();
  }

  lastBoot(): Promise<BootRecord | null> {
    return this.records.boot.read();
  }

  /** Verifies the applied profile and records the result with its time; null when none is applied. */
  async recordVerify(by: VerifiedBy): Promise<VerifiedRecord | null> {
    if (!(await this.records.applied.readOrNote([]))) {
      await this.records.verified.remove();
      return null;
    }
    const record: VerifiedRecord = { ...(await this.verify()), checkedAt: new Date(this.now()).toISOString(), by };
    await this.records.verified.write(record);
    return record;
  }

  async recordApplyOutcome(outcome: Omit<ApplyOutcomeRecord, 'finishedAt'>): Promise<void> {
    await this.records.lastApply.write({ ...outcome, finishedAt: new Date(this.now()).toISOString() });
  }

  /**
   * Applies a profile as a transaction (transaction.ts). With `confirm`, proves the targets
   * still answer a TLS handshake within the timeout, and otherwise restores the snapshot.
   */
  apply(loaded: LoadedProfile, confirm?: ConfirmOptions): Promise<ApplyReport> {
    return withLock(this.records.dir, async () => {
      const report = await applyTransaction(this.parts(), loaded, confirm);
      await this.measure?.afterChange(this, { operation: 'apply', changed: report.changed && !report.rolledBack });
      return report;
    });
  }

  /** Restores the snapshot taken by the last apply that changed something. */
  rollback(): Promise<RollbackReport> {
    return withLock(this.records.dir, async () => {
      const snapshot = await this.records.snapshot.read();
      if (!snapshot) {
        throw new AgentError('no hardening snapshot to roll back to', { hint: 'a snapshot is taken by `iot-agent harden apply`' });
      }
      const notes: string[] = [];
      await restoreSnapshot(this.parts(), snapshot, await this.records.knownGood.readOrNote(notes), notes);
      await popSnapshot(this.records);
      await this.measure?.afterChange(this, { operation: 'rollback', changed: true });
      const live = parseFilterTable(await this.firewall.save(4));
      const before = parseFilterTable(snapshot.firewall[4] ?? '');
      const exact = JSON.stringify([[...live.chains], live.rules]) === JSON.stringify([[...before.chains], before.rules]);
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
    const items = compare(plan, applied, await readLive(this.parts(), plan), this.root);
    return { profile: plan.profile, hash: plan.hash, appliedHash: applied?.hash ?? null, drift: items.filter((i) => !i.ok).length, items };
  }

  /** The history the known-good policy decides on; a corrupt record reads as absent (a corrupt pending marker as present). */
  async history(notes: string[] = []): Promise<History> {
    const [applied, good, pending] = await Promise.all([
      this.records.applied.readOrNote(notes), this.records.knownGood.readOrNote(notes),
      this.records.pending.read().then((p) => p !== null, () => true),
    ]);
    return {
      applied: applied && { name: applied.profile.name, hash: applied.hash, confirmed: applied.confirmed },
      knownGood: good && { name: good.profile.name, hash: good.hash },
      pending,
    };
  }

  /** The applied profile answered the endpoints: it becomes the last known good one. */
  async markKnownGood(): Promise<KnownGoodRecord | null> {
    return withLock(this.records.dir, async () => {
      const applied = await this.records.applied.read();
      if (!applied) return null;
      if (!applied.confirmed) await this.records.applied.write({ ...applied, confirmed: true });
      const good = { profile: applied.profile, hash: applied.hash, origin: applied.origin, confirmedAt: new Date(this.now()).toISOString() };
      await this.records.knownGood.write(good);
      return good;
    });
  }

  /** Applies the last known good profile again (after the applied one kept the endpoints away). */
  async revertToKnownGood(): Promise<ApplyReport | null> {
    const good = await this.records.knownGood.read();
    return good ? this.apply({ profile: good.profile, origin: good.origin }) : null;
  }

  /**
   * The boot path, which must leave the board filtered whatever it finds: the profile the
   * known-good policy chooses (`configured` on a fresh device, or when every record is
   * unreadable). A corrupt record never stops it. If the chosen profile cannot be applied,
   * the fail-closed rule set is loaded instead (one restore per family), with `endpoints`
   * (those the agent needs) let through, and the failure is recorded for the agent to report.
   */
  async applyAtBoot(configured: () => Promise<LoadedProfile>, endpoints: () => Promise<HostPort[]>): Promise<BootReport> {
    const notes: string[] = [];
    await this.records.protect().catch((err: unknown) => notes.push(`could not tighten record modes: ${describeError(err)}`));
    const history = await this.history(notes);
    const choice = bootChoice(history);
    const boot = await bootId();
    let chosen: LoadedProfile | undefined;
    try {
      chosen = choice.source === 'configured' ? await configured() : await this.recorded(choice.source);
      await this.records.pending.remove();
      const report = await this.apply(chosen);
      await this.records.boot.write({ bootId: boot, at: new Date(this.now()).toISOString(), outcome: 'applied', profile: chosen.profile.name });
      // The apply reads the records again: a corrupt one is noted once, not once per read.
      return { ...report, notes: [...new Set([...notes, ...report.notes])], chosen: choice.why };
    } catch (err) {
      const error = oneLineError(err);
      try {
        await this.loadFailClosed(await endpoints().catch(() => []), notes);
      } catch (failed) {
        throw new AgentError(`the boot profile could not be applied (${error}), nor the fail-closed rules`, {
          cause: failed, hint: 'check iptables and the kernel\'s netfilter modules; `iot-agent harden apply` to retry',
        });
      }
      const profile = chosen?.profile.name ?? null;
      await this.records.boot.write({ bootId: boot, at: new Date(this.now()).toISOString(), outcome: 'fail-closed', profile, error })
        .catch((e: unknown) => notes.push(`could not record the boot outcome: ${describeError(e)}`));
      return { chosen: choice.why, failClosed: true, error, notes };
    }
  }

  /** The built-in minimal rule set, with one iptables-restore (and one ip6tables-restore; IPv6 off when that fails). */
  async loadFailClosed(endpoints: readonly HostPort[], notes: string[]): Promise<void> {
    await this.firewall.load(4, failClosedRules(4, endpoints));
    try {
      await this.firewall.load(6, failClosedRules(6, endpoints));
    } catch (err) {
      notes.push(`${label(6)} fail-closed rules not loaded (${oneLineError(err)}): IPv6 disabled instead`);
      await this.host.setSysctls({ 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
    }
  }

  private async recorded(source: 'applied' | 'known-good'): Promise<LoadedProfile> {
    const record = source === 'applied' ? await this.records.applied.read() : await this.records.knownGood.read();
    if (!record) throw new AgentError(`the ${source} record vanished`);
    return { profile: record.profile, origin: record.origin };
  }

  private parts(): TransactionParts {
    const probe: Probe = (targets, timeoutMs) => probeTargets(this.runner, targets, timeoutMs, this.probeProxy);
    return {
      records: this.records, firewall: this.firewall, host: this.host, backend: this.backend, probe, now: this.now,
      plan: (loaded, originals) => this.plan(loaded, originals),
      knownGoodRules: async (good) => {
        if (!good) return null;
        const plan = await this.plan({ profile: good.profile, origin: good.origin }).catch(() => null);
        return plan && plan.firewall;
      },
    };
  }
}
