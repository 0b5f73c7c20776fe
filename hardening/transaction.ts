import { createHash } from 'node:crypto';
import { AgentError } from '../agent/lib/errors.js';
import { bootId } from '../agent/lib/boot-id.js';
import { saveCommand, type Backend } from './backend.js';
import { agentLines, compare, type LiveState } from './drift.js';
import type { FirewallIo } from './firewall-io.js';
import type { HostIo } from './host-io.js';
import type { LoadedProfile } from './load-profile.js';
import { planSysctls, type Plan } from './plan.js';
import { describeFailures, probeUntilReachable, type HostPort, type Probe } from './probe.js';
import type { AppliedRecord, KnownGoodRecord, OriginalsRecord, Records, Snapshot } from './records.js';
import type { Family, FirewallRules } from './render-firewall.js';
import type { ApplyReport } from './reports.js';
import { applyText, coveredByTest, parseFilterTable, removeText } from './restore-text.js';
import { toolIdentity } from './tool-identity.js';

/**
 * Applying a profile, as the transaction it promises to be:
 *   plan → test → snapshot → load → confirm → commit, or roll back.
 * Nothing changes before the rule text passed `--test` and the snapshot (and, for a
 * confirmed change, the proof that the endpoints answer now) is durable; any failure while
 * loading, and endpoints that stop answering within the confirm time, restore the snapshot.
 */
export interface ConfirmOptions {
  targets: readonly HostPort[];
  timeoutSeconds: number;
}

/** The engine's parts a transaction works with. */
export interface TransactionParts {
  records: Records;
  firewall: FirewallIo;
  host: HostIo;
  backend: Backend;
  probe: Probe;
  now: () => number;
  plan(loaded: LoadedProfile, originals: OriginalsRecord | null): Promise<Plan>;
  /** The known good profile's rules, the fallback of a rollback that cannot restore the snapshot. */
  knownGoodRules(good: KnownGoodRecord | null): Promise<Record<Family, FirewallRules | undefined> | null>;
}

/** How many profiles back rollback can go. */
const SNAPSHOT_DEPTH = 8;
const CONFIRM_INTERVAL_MS = 500;

/** What was read before any change: the history and the live state. */
interface Before {
  previous: AppliedRecord | null;
  knownGood: KnownGoodRecord | null;
  existing: Snapshot | null;
  originals: OriginalsRecord | null;
  boot: string;
  live: LiveState;
  /** The rule text a --test run accepted while the live state was read (null: none ran, or it failed). */
  tested: Record<Family, string | null>;
  tools: Record<Family, string | null>;
}

export async function applyTransaction(t: TransactionParts, loaded: LoadedProfile, confirm?: ConfirmOptions): Promise<ApplyReport> {
  const started = t.now();
  const notes: string[] = [];
  const { plan, before } = await planStep(t, loaded, notes);
  const report = (extra: Partial<ApplyReport>): ApplyReport => ({
    profile: plan.profile, hash: plan.hash, changed: false, confirmed: false, rolledBack: false, notes, durationMs: t.now() - started, ...extra,
  });
  if (before.previous?.hash === plan.hash && compare(plan, before.previous, before.live, t.host.root).every((i) => i.ok)) {
    return report({ confirmed: before.previous.confirmed });
  }
  if (confirm) await reachableBefore(t, confirm);
  const texts = await testStep(t, plan, before, notes);
  const snapshot = await snapshotStep(t, plan, before, confirm, notes);
  const applied = await loadStep(t, plan, loaded, before, texts, snapshot, notes);
  if (!confirm) return report({ changed: true, confirmed: applied.confirmed });

  const outcome = await probeUntilReachable({
    probe: t.probe, targets: confirm.targets, deadline: t.now() + confirm.timeoutSeconds * 1000, intervalMs: CONFIRM_INTERVAL_MS, now: t.now,
  });
  if (outcome.ok) {
    await commitStep(t, applied);
    return report({ changed: true, confirmed: true, probes: outcome.probes });
  }
  await rollBackStep(t, snapshot, before, notes);
  const after = await t.probe(confirm.targets, 3_000);
  return report({
    changed: true, rolledBack: true, probes: outcome.probes, reconnected: after.every((p) => p.ok),
    reason: `not reachable within ${confirm.timeoutSeconds} s after applying ${plan.profile} (${describeFailures(outcome.probes)}); previous state restored`,
  });
}

/**
 * Plan, and read everything the later steps need, side by side: the history (a corrupt
 * record reads as absent, with a note), the live state, and a --test of the rules with
 * every jump. The --test goes first: on nft it is the longest step. It is skipped when the
 * profile was applied in this boot already (most likely there is nothing to do).
 */
async function planStep(t: TransactionParts, loaded: LoadedProfile, notes: string[]): Promise<{ plan: Plan; before: Before }> {
  const [previous, originals, boot] = await Promise.all([t.records.applied.readOrNote(notes), t.records.originals.readOrNote(notes), bootId()]);
  const plan = await t.plan(loaded, originals);
  const likelyUnchanged = previous?.hash === plan.hash && previous.bootId === boot;
  const [tested, live, knownGood, existing, tools] = await Promise.all([
    likelyUnchanged ? { 4: null, 6: null } : testAhead(t, plan),
    readLive(t, plan),
    t.records.knownGood.readOrNote(notes),
    t.records.snapshot.readOrNote(notes),
    Promise.all(([4, 6] as const).map((f) => toolIdentity(saveCommand(t.backend, f)[0]!))),
  ]);
  return { plan, before: { previous, knownGood, existing, originals, boot, live, tested, tools: { 4: tools[0]!, 6: tools[1]! } } };
}

/** The live firewall tables and host values a plan is about, read once per operation. */
export async function readLive(t: Pick<TransactionParts, 'firewall' | 'host'>, plan: Plan): Promise<LiveState> {
  const [v4, v6, host] = await Promise.all([
    t.firewall.save(4),
    t.firewall.trySave(6, plan.firewall[6] !== undefined),
    t.host.read(plan),
  ]);
  return { firewall: { 4: v4, 6: v6 }, ...host };
}

/** A change can only be proven harmless if the endpoints answer before it. */
async function reachableBefore(t: TransactionParts, confirm: ConfirmOptions): Promise<void> {
  const down = (await t.probe(confirm.targets, 3_000)).filter((p) => !p.ok);
  if (down.length) {
    throw new AgentError(`cannot confirm: ${down.map((p) => `${p.target} (${p.detail})`).join(', ')} unreachable before applying; nothing applied`, {
      hint: 'check the --confirm-host endpoints, or apply without --confirm-timeout',
    });
  }
}

/** `--test` of each family's rules with every jump inserted, while the live state is read. A rejection is final only later. */
async function testAhead(t: TransactionParts, plan: Plan): Promise<Record<Family, string | null>> {
  const test = async (family: Family): Promise<string | null> => {
    const rules = plan.firewall[family];
    if (!rules) return null;
    const text = applyText(rules, undefined);
    return t.firewall.restore(family, text, true).then(() => text, () => null);
  };
  const [v4, v6] = await Promise.all([test(4), test(6)]);
  return { 4: v4, 6: v6 };
}

/** The exact texts to load; each one the early --test did not cover is tested now. */
async function testStep(t: TransactionParts, plan: Plan, before: Before, notes: string[]): Promise<Record<Family, string>> {
  const { 4: saved4, 6: saved6 } = before.live.firewall;
  if (saved4 === null) throw new AgentError('iptables-save failed');
  const text4 = applyText(plan.firewall[4]!, parseFilterTable(saved4));
  const text6 = plan.firewall[6]
    ? applyText(plan.firewall[6], parseFilterTable(saved6 ?? ''))
    : saved6 === null ? '' : removeText(parseFilterTable(saved6));
  if (saved6 === null && plan.firewall[6] === undefined) notes.push('ip6tables unavailable: IPv6 rules left alone');
  const covered = (family: Family, text: string) => before.tested[family] !== null && coveredByTest(text, before.tested[family]);
  await Promise.all([
    covered(4, text4) ? undefined : t.firewall.restore(4, text4, true),
    !text6 || covered(6, text6) ? undefined : t.firewall.restore(6, text6, true),
  ]);
  return { 4: text4, 6: text6 };
}

/**
 * Durable before anything changes: the snapshot (a power cut mid-apply leaves one to return
 * to), the original value of each key the agent now sets for the first time, and for a
 * confirmed change the pending marker the boot path looks for. Re-applying the recorded
 * profile (a repair) keeps the snapshot from before that profile, so rollback undoes the
 * profile, not the repair; the returned snapshot is the state just before this apply.
 */
async function snapshotStep(t: TransactionParts, plan: Plan, before: Before, confirm: ConfirmOptions | undefined, notes: string[]): Promise<Snapshot & { kept: boolean }> {
  const snapshot: Snapshot = {
    takenAt: new Date(t.now()).toISOString(), backend: t.backend, firewall: before.live.firewall,
    sysctls: before.live.sysctls, files: before.live.files, sysfs: before.live.sysfs, applied: before.previous,
  };
  const kept = before.previous?.hash === plan.hash && before.existing !== null;
  if (kept) notes.push(`re-applied over drift; rollback still returns to the state of ${before.existing!.takenAt}`);
  // A value already recorded stays: it is the one from before the agent. Without a record
  // (a board set up before values were recorded), the oldest snapshot, taken before the
  // agent's first profile, knows them.
  const known = before.originals ?? firstValues(before.existing);
  const originals = {
    sysctls: { ...pick(before.live.sysctls, Object.keys(plan.host.sysctls)), ...known?.sysctls },
    sysfs: { ...pick(before.live.sysfs, plan.host.sysfs.map((e) => e.path)), ...known?.sysfs },
  };
  const grown = JSON.stringify(originals) !== JSON.stringify(before.originals ?? {});
  await Promise.all([
    kept ? undefined : t.records.snapshot.write({ ...snapshot, older: trimSnapshots(before.existing, SNAPSHOT_DEPTH - 1) }),
    grown ? t.records.originals.write(originals) : undefined,
    confirm ? t.records.pending.write({ hash: plan.hash, startedAt: snapshot.takenAt, timeoutSeconds: confirm.timeoutSeconds }) : undefined,
  ]);
  return { ...snapshot, kept };
}

/** Every part at once (none depends on another); any failure rolls back. Then the record of what was applied. */
async function loadStep(t: TransactionParts, plan: Plan, loaded: LoadedProfile, before: Before, texts: Record<Family, string>,
  snapshot: Snapshot & { kept: boolean }, notes: string[]): Promise<AppliedRecord> {
  // The same rules loaded by the same binary read back the same: reuse the recorded lines.
  const readback = { 4: readbackKey(t.backend, before.tools[4], plan.firewall[4]), 6: readbackKey(t.backend, before.tools[6], plan.firewall[6]) };
  const known = (family: Family) => (readback[family] !== null && before.previous?.readback?.[family] === readback[family] ? before.previous.firewall[family] : null);
  const saved6 = before.live.firewall[6];
  const firewall: Record<Family, string[] | null> = {
    4: known(4),
    6: texts[6] ? known(6) : saved6 === null ? null : agentLines(parseFilterTable(saved6)),
  };
  try {
    const changed = Object.fromEntries(Object.entries(planSysctls(plan)).filter(([key, value]) => {
      const live = before.live.sysctls[key] ?? null;
      if (live !== null) return live !== value;
      if (!key.startsWith('net.ipv6.')) throw new AgentError(`sysctl ${key} does not exist on this kernel`);
      notes.push(`sysctl ${key} absent (IPv6 not in this kernel): skipped`);
      return false;
    }));
    const results = await Promise.allSettled([
      t.firewall.restore(4, texts[4], false).then(async () => { firewall[4] ??= await t.firewall.agentLinesOrNull(4); }),
      texts[6] ? t.firewall.restore(6, texts[6], false).then(async () => { firewall[6] ??= await t.firewall.agentLinesOrNull(6); }) : undefined,
      ...t.host.write(plan, changed),
    ]);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    if (firewall[4] === null) throw new AgentError('iptables-save failed after loading the rules');
  } catch (err) {
    const restored: string[] = [];
    await rollBackStep(t, snapshot, before, restored);
    throw new AgentError(`applying profile ${plan.profile} failed, previous state restored${restored.length ? ` (${restored.join('; ')})` : ''}`, { cause: err });
  }
  const record: AppliedRecord = {
    profile: loaded.profile, hash: plan.hash, origin: loaded.origin, appliedAt: new Date(t.now()).toISOString(),
    backend: t.backend, confirmed: before.knownGood?.hash === plan.hash, firewall, readback, bootId: before.boot,
  };
  await t.records.applied.write(record);
  return record;
}

/** The endpoints answered: the profile is known good, and the change is no longer pending. */
async function commitStep(t: TransactionParts, applied: AppliedRecord): Promise<void> {
  await t.records.applied.write({ ...applied, confirmed: true });
  await t.records.knownGood.write({ profile: applied.profile, hash: applied.hash, origin: applied.origin, confirmedAt: new Date(t.now()).toISOString() });
  await t.records.pending.remove();
}

/** Back to the state just before this apply (held in memory when a repair kept the older snapshot). */
async function rollBackStep(t: TransactionParts, snapshot: Snapshot & { kept: boolean }, before: Before, notes: string[]): Promise<void> {
  await restoreSnapshot(t, snapshot, before.knownGood, notes);
  if (!snapshot.kept) await popSnapshot(t.records);
  await t.records.pending.remove();
}

/** Restores firewall (with its fallbacks), host values and the applied record as a snapshot holds them. */
export async function restoreSnapshot(t: Pick<TransactionParts, 'firewall' | 'host' | 'records' | 'knownGoodRules'>, snapshot: Snapshot,
  knownGood: KnownGoodRecord | null, notes: string[]): Promise<void> {
  await t.firewall.revert(snapshot.firewall, await t.knownGoodRules(knownGood), notes);
  await t.host.restore(snapshot, notes);
  if (snapshot.applied) await t.records.applied.write(snapshot.applied);
  else await t.records.applied.remove();
}

/** After restoring the newest snapshot, the one before it becomes the one rollback uses. */
export async function popSnapshot(records: Records): Promise<void> {
  const top = await records.snapshot.readOrNote([]);
  if (top?.older) await records.snapshot.write(top.older);
  else await records.snapshot.remove();
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

/** The values in the snapshot taken before the agent's first profile, if the chain still reaches back that far. */
function firstValues(snapshot: Snapshot | null): OriginalsRecord | null {
  let oldest = snapshot;
  while (oldest?.older) oldest = oldest.older;
  return oldest && oldest.applied === null ? { sysctls: oldest.sysctls, sysfs: oldest.sysfs } : null;
}

function pick<T>(values: Record<string, T>, keys: readonly string[]): Record<string, T> {
  return Object.fromEntries(keys.filter((k) => k in values).map((k) => [k, values[k]!]));
}
