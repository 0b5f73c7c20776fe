import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Plan } from './plan.js';
import type { AppliedRecord } from './records.js';
import { AGENT_CHAINS, type Family } from './render-firewall.js';
import type { DriftItem } from './reports.js';
import { agentJumps, chainRules, parseFilterTable, type FilterTable } from './restore-text.js';

/** Everything a plan is about, as read from the system once per operation. */
export interface LiveState {
  /** `iptables-save` / `ip6tables-save` output (null: the tool failed, e.g. no IPv6 in the kernel). */
  firewall: Record<Family, string | null>;
  /** Every sysctl the plan sets or restores (null: the kernel lacks it). */
  sysctls: Record<string, string | null>;
  /** Every file the agent may own, by path relative to the root (null: absent). */
  files: Record<string, string | null>;
  /** Every sysfs value the plan sets or restores (null: absent). */
  sysfs: Record<string, string | null>;
}

/**
 * Drift as a pure comparison: the live state against the plan, item by item, including the
 * keys the plan hands back (managed by an earlier profile, restored to their original value).
 */
export function compare(plan: Plan, applied: AppliedRecord | null, live: LiveState, root: string): DriftItem[] {
  const items: DriftItem[] = [];
  const item = (kind: DriftItem['kind'], target: string, expected: string, actual: string) =>
    items.push({ kind, target, ok: expected === actual, expected, actual });
  item('profile', 'applied profile hash', plan.hash, applied?.hash ?? '(none recorded)');

  for (const family of [4, 6] as const) {
    const label = family === 4 ? 'iptables' : 'ip6tables';
    const managed = plan.firewall[family] !== undefined;
    const saved = live.firewall[family];
    if (saved === null) {
      if (managed) item('firewall', label, 'readable', `${label}-save failed`);
      continue;
    }
    const lines = agentLines(parseFilterTable(saved));
    const recorded = applied?.hash === plan.hash ? applied.firewall[family] : null;
    if (!managed) {
      item('firewall', `${label} agent chains`, '(none)', lines.length ? `${lines.length} lines` : '(none)');
    } else if (recorded === null) {
      item('firewall', `${label} agent chains`, `profile ${plan.profile} as applied`, 'no record of this profile being applied');
    } else {
      for (const { chain, hook } of AGENT_CHAINS) {
        const want = recorded.filter((l) => l.startsWith(`-A ${chain} `));
        const have = lines.filter((l) => l.startsWith(`-A ${chain} `));
        item('firewall', `${label} ${chain}`, describeLines(want, have, 'expected'), describeLines(want, have, 'actual'));
        const jump = `-A ${hook} -j ${chain}`;
        item('firewall', `${label} ${hook} jump`, jump, lines.includes(jump) ? jump : '(missing)');
      }
    }
  }

  for (const [key, value] of Object.entries({ ...plan.host.sysctls, ...plan.host.restoreSysctls })) {
    const actual = live.sysctls[key] ?? null;
    // Without IPv6 in the kernel its keys are absent, which is as good as disabled.
    const absentOk = actual === null && key.startsWith('net.ipv6.');
    item('sysctl', key, value, absentOk ? value : actual ?? '(absent)');
  }
  const at = (relative: string) => path.join(root, relative);
  for (const file of plan.host.files) {
    const actual = live.files[file.path] ?? null;
    item('file', at(file.path), digestOf(file.content), actual === null ? '(absent)' : digestOf(actual));
  }
  for (const file of plan.host.removeFiles) {
    item('file', at(file), '(absent)', (live.files[file] ?? null) === null ? '(absent)' : 'present');
  }
  for (const entry of [...plan.host.sysfs, ...plan.host.restoreSysfs]) {
    item('sysfs', at(entry.path), entry.value, live.sysfs[entry.path] ?? '(absent)');
  }
  return items;
}

/** The agent's part of a filter table: its chains' rules and the jumps into them. */
export function agentLines(table: FilterTable): string[] {
  const lines: string[] = [];
  for (const { chain } of AGENT_CHAINS) if (table.chains.has(chain)) lines.push(`:${chain}`, ...chainRules(table, chain));
  return [...lines, ...agentJumps(table).map((j) => j.line)];
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
