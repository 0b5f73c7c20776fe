import { AGENT_CHAINS, type FirewallRules } from './render-firewall.js';

/**
 * The `filter` table as `iptables-save` prints it, and the `iptables-restore --noflush`
 * text that moves the agent's chains from one state to another while every other
 * chain and rule stays exactly where it is. Pure.
 */
export interface FilterTable {
  /** Chain name → policy (`-` for user chains), in save order. */
  chains: Map<string, string>;
  /** Rule lines (`-A CHAIN ...`) in save order, counters stripped. */
  rules: string[];
}

const AGENT_NAMES = new Set(AGENT_CHAINS.map((c) => c.chain));

/** Parses the `*filter` section of `iptables-save` output (an empty table if absent). */
export function parseFilterTable(saveOutput: string): FilterTable {
  const table: FilterTable = { chains: new Map(), rules: [] };
  let inFilter = false;
  for (const rawLine of saveOutput.split('\n')) {
    const line = rawLine.trim();
    if (line.startsWith('*')) inFilter = line === '*filter';
    else if (!inFilter || line === '' || line.startsWith('#')) continue;
    else if (line === 'COMMIT') inFilter = false;
    else if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(/\s+/);
      table.chains.set(name, policy);
    } else table.rules.push(stripCounters(line));
  }
  return table;
}

/** `iptables-save -c` puts `[pkts:bytes]` before each rule; drop it. */
function stripCounters(line: string): string {
  return line.replace(/^\[\d+:\d+\]\s+/, '');
}

/** The agent's rules of one chain, as `-A CHAIN ...` lines in order. */
export function chainRules(table: FilterTable, chain: string): string[] {
  return table.rules.filter((r) => r.startsWith(`-A ${chain} `));
}

/** Jump rules from any chain into an agent chain, with their 1-based position in that chain. */
export function agentJumps(table: FilterTable): { line: string; chain: string; position: number }[] {
  const positions = new Map<string, number>();
  const jumps: { line: string; chain: string; position: number }[] = [];
  for (const line of table.rules) {
    const chain = line.split(/\s+/)[1] ?? '';
    const position = (positions.get(chain) ?? 0) + 1;
    positions.set(chain, position);
    const target = /\s-[jg]\s+(\S+)/.exec(line)?.[1];
    if (target !== undefined && AGENT_NAMES.has(target) && !AGENT_NAMES.has(chain)) jumps.push({ line, chain, position });
  }
  return jumps;
}

/**
 * Restore text that loads `desired` into the agent's chains (declaring a chain flushes
 * only that chain) and inserts a jump at the top of INPUT/OUTPUT where one is missing.
 * With `live` undefined (plan, no root), every jump is shown as inserted.
 */
export function applyText(desired: FirewallRules, live: FilterTable | undefined): string {
  const lines = ['*filter'];
  for (const { chain } of AGENT_CHAINS) lines.push(`:${chain} - [0:0]`);
  for (const { chain } of AGENT_CHAINS) {
    for (const spec of desired.chains[chain] ?? []) lines.push(`-A ${chain} ${spec}`);
  }
  const present = live ? agentJumps(live) : [];
  for (const { chain, hook } of AGENT_CHAINS) {
    if (!present.some((j) => j.chain === hook && j.line === `-A ${hook} -j ${chain}`)) lines.push(`-I ${hook} 1 -j ${chain}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * Restore text that brings the agent's chains and jumps from `live` back to what they
 * were in `previous` (possibly: not there at all), leaving everything else alone. A jump
 * goes back to its old position in its chain, or to the end of the chain when other
 * software has removed rules above it since (fail2ban-style tools come and go): an
 * insert position past the end would make the whole restore fail.
 */
export function revertText(previous: FilterTable, live: FilterTable): string {
  const lines = ['*filter'];
  const ours = AGENT_CHAINS.map((c) => c.chain).filter((c) => previous.chains.has(c) || live.chains.has(c));
  if (ours.length === 0) return '';
  for (const chain of ours) lines.push(`:${chain} - [0:0]`);
  const liveJumps = agentJumps(live);
  for (const jump of liveJumps) lines.push(jump.line.replace(/^-A /, '-D '));
  for (const chain of ours) if (!previous.chains.has(chain)) lines.push(`-X ${chain}`);
  for (const chain of ours) if (previous.chains.has(chain)) lines.push(...chainRules(previous, chain));
  // Rules each chain holds once the live jumps are deleted; every insert adds one.
  const length = new Map<string, number>();
  for (const line of live.rules) {
    const chain = line.split(/\s+/)[1] ?? '';
    if (!liveJumps.some((j) => j.line === line)) length.set(chain, (length.get(chain) ?? 0) + 1);
  }
  // In save order, so each chain's jumps come in order of position.
  for (const jump of agentJumps(previous)) {
    const size = length.get(jump.chain) ?? 0;
    lines.push(jump.line.replace(/^-A (\S+)/, `-I $1 ${Math.min(jump.position, size + 1)}`));
    length.set(jump.chain, size + 1);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Restore text that removes the agent's chains and jumps (used when a family is no longer managed). */
export function removeText(live: FilterTable): string {
  return revertText({ chains: new Map(), rules: [] }, live);
}

/** True when the live agent chains and jumps already hold exactly `recorded` (as saved after the last apply). */
export function agentStateEquals(a: FilterTable, b: FilterTable): boolean {
  const view = (t: FilterTable) => JSON.stringify({
    chains: AGENT_CHAINS.map((c) => [c.chain, t.chains.has(c.chain), chainRules(t, c.chain)]),
    jumps: agentJumps(t).map((j) => j.line),
  });
  return view(a) === view(b);
}

const JUMP_INSERT = /^-I (\S+) 1 -j (\S+)$/;

/**
 * True when `text` is `tested` with some jump inserts left out: whatever the kernel
 * accepted in `tested` (a --test run before the live table was known, with every jump)
 * it accepts in `text`, since the jumps only point at chains both declare.
 */
export function coveredByTest(text: string, tested: string): boolean {
  const isJump = (line: string) => JUMP_INSERT.test(line) && AGENT_NAMES.has(JUMP_INSERT.exec(line)![2]!);
  const rest = (t: string) => t.split('\n').filter((l) => !isJump(l));
  const testedLines = new Set(tested.split('\n'));
  return JSON.stringify(rest(text)) === JSON.stringify(rest(tested))
    && text.split('\n').filter(isJump).every((l) => testedLines.has(l));
}
