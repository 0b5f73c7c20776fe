import path from 'node:path';
import { profileHash, type Profile } from './profile.js';
import { renderFirewall, type FirewallRules } from './render-firewall.js';
import { renderHost, type HostChanges } from './render-host.js';
import { applyText, type FilterTable } from './restore-text.js';

/** Everything `apply` will do for a profile. Pure: built from the profile and the USB controllers present. */
export interface Plan {
  profile: string;
  hash: string;
  origin: string;
  firewall: { 4: FirewallRules | undefined; 6: FirewallRules | undefined };
  host: HostChanges;
}

export function buildPlan(profile: Profile, origin: string, controllers: readonly string[]): Plan {
  return {
    profile: profile.name,
    hash: profileHash(profile),
    origin,
    firewall: { 4: renderFirewall(profile, 4), 6: renderFirewall(profile, 6) },
    host: renderHost(profile, controllers),
  };
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
  };
}

/** The plan for a person: each section with exactly what will be loaded or written. */
export function formatPlan(plan: Plan, root: string): string {
  const json = planJson(plan, root);
  const out: string[] = [`Profile ${plan.profile} (${plan.origin}), sha256 ${plan.hash}`, ''];
  out.push('== iptables-restore --noflush (filter table; only the IOT-AGENT-* chains and their jumps)');
  out.push(String(json.iptablesRestore).trimEnd(), '');
  out.push('== ip6tables-restore --noflush');
  out.push(json.ip6tablesRestore ? String(json.ip6tablesRestore).trimEnd() : '(no IPv6 rules: the agent\'s IPv6 chains are removed if present)', '');
  out.push('== sysctl (live, in this network namespace)');
  for (const [k, v] of Object.entries(plan.host.sysctls)) out.push(`${k} = ${v}`);
  out.push('');
  for (const f of plan.host.files) out.push(`== write ${path.join(root, f.path)}`, f.content.trimEnd(), '');
  if (plan.host.removeFiles.length) out.push('== remove if present', ...plan.host.removeFiles.map((f) => path.join(root, f)), '');
  out.push('== sysfs');
  if (plan.host.sysfs.length === 0) out.push('(nothing)');
  for (const s of plan.host.sysfs) out.push(`${path.join(root, s.path)} = ${s.value}`);
  out.push('', 'Jump rules are inserted at the top of INPUT/OUTPUT only where missing; no other chain or rule is touched.');
  return `${out.join('\n')}\n`;
}
