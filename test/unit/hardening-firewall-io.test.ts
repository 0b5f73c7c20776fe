import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { agentLines } from '../../hardening/drift.js';
import { FirewallIo, label, oneLineError } from '../../hardening/firewall-io.js';
import type { FirewallRules } from '../../hardening/render-firewall.js';
import { parseFilterTable } from '../../hardening/restore-text.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { PrivateNetns } from '../support/private-netns.js';

/**
 * FirewallIo on its own: against the real iptables (nft) in a network namespace of each
 * test's own, and behind a runner whose every command fails to start (no iptables at all).
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

async function namespace(): Promise<{ ns: PrivateNetns; io: FirewallIo }> {
  const ns = await PrivateNetns.create();
  cleanups.push(() => ns.destroy());
  return { ns, io: new FirewallIo(hardeningRunner(ns.prefix), 'nft') };
}

const withoutTools = () => new FirewallIo(hardeningRunner([path.join(tmpdir(), 'iot-agent-no-such-program')]), 'nft');
const rules = (input: string[], output: string[] = []): FirewallRules => ({ family: 4, chains: { 'IOT-AGENT-IN': input, 'IOT-AGENT-OUT': output } });

describe('the firewall without its tools', () => {
  it('reads as null where the caller can do without the table, and fails where it cannot', async () => {
    const io = withoutTools();
    expect(await io.trySave(6, false)).toBeNull();
    expect(await io.agentLinesOrNull(4)).toBeNull();
    await expect(io.trySave(4, true)).rejects.toThrow(/iot-agent-no-such-program/);
  });

  it('says which family\'s rules were rejected by --test or not loaded, and what to look at', async () => {
    const io = withoutTools();
    const hint = 'run `iot-agent harden plan` to see the rule text; is the kernel missing an xtables match (conntrack, hashlimit, comment)?';
    await expect(io.restore(4, '*filter\nCOMMIT\n', true)).rejects.toMatchObject({ message: 'iptables rules were rejected by --test', hint });
    await expect(io.restore(6, '*filter\nCOMMIT\n', false)).rejects.toMatchObject({ message: 'ip6tables rules were not loaded', hint });
    expect([label(4), label(6)]).toEqual(['iptables', 'ip6tables']);
  });

  it('puts an error and its causes on one line for a note', () => {
    expect(oneLineError(new Error('restore failed  \n   line 2\nline 3', { cause: new Error('exit 1') }))).toBe('restore failed line 2 line 3: exit 1');
  });
});

describe('the firewall in a namespace', () => {
  it('loads rules with a jump only where the table lacks it', async () => {
    const { ns, io } = await namespace();
    await io.load(4, rules(['-p tcp --dport 22 -j ACCEPT']));
    await io.load(4, rules(['-p tcp --dport 2222 -j ACCEPT']));
    const saved = await ns.run(['iptables-nft-save', '-t', 'filter']);
    expect(saved.split('\n').filter((l) => l === '-A INPUT -j IOT-AGENT-IN')).toHaveLength(1);
    expect(agentLines(parseFilterTable(saved))).toContain('-A IOT-AGENT-IN -p tcp -m tcp --dport 2222 -j ACCEPT');
  });

  it('removes the agent\'s chains when neither the table from before nor the known good rules can be loaded', async () => {
    const { ns, io } = await namespace();
    await io.load(4, rules(['-j ACCEPT']));
    // A table from before that no kernel loads, and known good rules that none does either.
    const before = '*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -j IOT-AGENT-IN\n-A IOT-AGENT-IN -m no-such-match -j ACCEPT\nCOMMIT\n';
    const notes: string[] = [];
    await io.revert({ 4: before, 6: null }, { 4: rules(['-m no-such-match-either -j DROP']), 6: undefined }, notes);
    expect(notes).toEqual([
      expect.stringMatching(/^iptables: the state before the change could not be restored \(iptables rules were not loaded: .+\)$/),
      expect.stringMatching(/^iptables: the last known good profile's rules could not be loaded either \(iptables rules were not loaded: .+\)$/),
      'iptables: removed the agent\'s chains and jumps (the firewall as before the agent)',
    ]);
    expect(agentLines(parseFilterTable(await ns.run(['iptables-nft-save', '-t', 'filter'])))).toEqual([]);
  });
});
