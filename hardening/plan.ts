import path from 'node:path';
import { profileHash, type Profile } from './profile.js';
import { DEFAULT_EGRESS, renderFirewall, type Egress, type FirewallRules } from './render-firewall.js';
import type { OriginalsRecord } from './records.js';
import { renderHost, type HostChanges, type UsbFacts } from './render-host.js';
import { applyText, type FilterTable } from './restore-text.js';

/**
 * Everything `apply` will do for a profile. Pure: built from the profile, the board's USB
 * facts, the original values of keys earlier profiles set (which this one hands back), and
 * what the agent's config asks of the outbound rules (the proxy, 443, 8883).
 */
export interface Plan {
  profile: string;
  hash: string;
  origin: string;
  firewall: { 4: FirewallRules | undefined; 6: FirewallRules | undefined };
  host: HostChanges;
}

export function buildPlan(profile: Profile, origin: string, usb: UsbFacts, originals: OriginalsRecord | null, egress: Egress = DEFAULT_EGRESS): Plan {
  const host = renderHost(profile, usb);
  const setSysfs = new Set(host.sysfs.map((e) => e.path));
  host.restoreSysctls = Object.fromEntries(Object.entries(originals?.sysctls ?? {})
    .filter((e): e is [string, string] => e[1] !== null && !(e[0] in host.sysctls)));
  host.restoreSysfs = Object.entries(originals?.sysfs ?? {})
    .filter((e): e is [string, string] => e[1] !== null && !setSysfs.has(e[0]))
    .map(([p, value]) => ({ path: p, value }));
  return {
    profile: profile.name,
    hash: profileHash(profile),
    origin,
    firewall: { 4: renderFirewall(profile, 4, egress), 6: renderFirewall(profile, 6, egress) },
    host,
  };
}

/** Every sysctl a plan writes: the profile's, and the ones it hands back. */
export function planSysctls(plan: Plan): Record<string, string> {
  return { ...plan.host.sysctls, ...plan.host.restoreSysctls };
}

/** Every sysfs value a plan writes. */
export function planSysfs(plan: Plan): { path: string; value: string }[] {
  return [...plan.host.sysfs, ...plan.host.restoreSysfs];
}

/** The plan as plain data for `--json` (restore text as it would be loaded on a firewall without our jumps). */
export function planJson(plan: Plan, root: string, live?: { 4?: FilterTable; 6?: FilterTable }): Record<string, unknown> {
  return {
    profile: plan.profile,
    hash: plan.hash,
    origin: plan.origin,
    iptablesRestore: plan.firewall[4] ? applyText(plan.firewall[4], live?.[4]) : null,
    ip6tablesRestore: plan.firewall[6] ? applyText(plan.firewall[6], live?.[6]) : null,
    ip6tablesRemoveAgentChains: plan.firewall[6] === undefined,
    sysctls: plan.host.sysctls,
    files: plan.host.files.map((f) => ({ path: path.join(root, f.path), content: f.content })),
    removeFiles: plan.host.removeFiles.map((f) => path.join(root, f)),
    sysfs: plan.host.sysfs.map((s) => ({ path: path.join(root, s.path), value: s.value })),
    restore: {
      sysctls: plan.host.restoreSysctls,
      sysfs: plan.host.restoreSysfs.map((s) => ({ path: path.join(root, s.path), value: s.value })),
    },
  };
}

/** The plan for a person: each section with exactly what will be loaded or written. */
export function formatPlan(plan: Plan, root: string): string {
  const json = planJson(plan, root);
  const out: string[] = [`Profile ${plan.profile} (${plan.origin}), sha256 ${plan.hash}`, ''];
  out.push('== iptables-restore --noflush (filter table; only the IOT-AGENT-* chains and their jumps)');
  out.push(String(json.iptablesRestore).trimEnd(), '');
  out.push('== ip6tables-restore --noflush');
  out.push(typeof json.ip6tablesRestore === 'string' && json.ip6tablesRestore ? json.ip6tablesRestore.trimEnd() : '(no IPv6 rules: the agent\'s IPv6 chains are removed if present)', '');
  out.push('== sysctl (live, in this network namespace)');
  for (const [k, v] of Object.entries(plan.host.sysctls)) out.push(`${k} = ${v}`);
  out.push('');
  for (const f of plan.host.files) out.push(`== write ${path.join(root, f.path)}`, f.content.trimEnd(), '');
  if (plan.host.removeFiles.length) out.push('== remove if present', ...plan.host.removeFiles.map((f) => path.join(root, f)), '');
  out.push('== sysfs');
  if (plan.host.sysfs.length === 0) out.push('(nothing)');
  for (const s of plan.host.sysfs) out.push(`${path.join(root, s.path)} = ${s.value}`);
  const restored = [...Object.entries(plan.host.restoreSysctls), ...plan.host.restoreSysfs.map((s) => [path.join(root, s.path), s.value])];
  if (restored.length) {
    out.push('', '== no longer managed: back to the value before the agent first set it');
    for (const [key, value] of restored) out.push(`${key} = ${value}`);
  }
  out.push('', 'Jump rules are inserted at the top of INPUT/OUTPUT only where missing; no other chain or rule is touched.');
  return `${out.join('\n')}\n`;
}
