import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { filterTable, NetnsPair, requireHardeningTools, ruleCounters, sendTcpFlags } from '../support/netns.js';

// The legacy (x_tables) backend, with the baseline profile: IPv6 hardened with ip6tables
// rather than disabled, so both families are loaded, checked and rolled back.
describe('baseline profile on the legacy iptables backend, in a network namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let engine: HardeningEngine;
  let baseline: LoadedProfile;
  let before4: string;
  let before6: string;

  beforeAll(async () => {
    requireHardeningTools(['iptables-legacy', 'iptables-legacy-save', 'iptables-legacy-restore', 'ip6tables-legacy-save',
      'ip6tables-legacy-restore', 'hping3', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-legacy-'));
    engine = new HardeningEngine({ root, backend: 'legacy', commandPrefix: pair.prefix(pair.device) });
    baseline = await loadProfile('baseline', root);
    for (const argv of [
      ['iptables-legacy', '-A', 'INPUT', '-s', '192.0.2.9/32', '-j', 'ACCEPT'],
      ['iptables-legacy', '-N', 'VENDOR-CHAIN'],
      ['iptables-legacy', '-A', 'VENDOR-CHAIN', '-p', 'udp', '--dport', '5353', '-j', 'RETURN'],
      ['iptables-legacy', '-A', 'OUTPUT', '-j', 'VENDOR-CHAIN'],
      ['ip6tables-legacy', '-A', 'INPUT', '-s', '2001:db8::9/128', '-j', 'ACCEPT'],
    ]) {
      const r = await pair.exec(pair.device, argv);
      expect(r.code, r.stderr).toBe(0);
    }
    before4 = await filterTable(pair, 'iptables-legacy-save');
    before6 = await filterTable(pair, 'ip6tables-legacy-save');
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('applies both families into its own chains and keeps the foreign rules and chain', async () => {
    expect((await engine.apply(baseline)).changed).toBe(true);
    const table4 = await filterTable(pair, 'iptables-legacy-save');
    expect(table4.split('\n').filter((l) => /^-A (INPUT|OUTPUT|VENDOR-CHAIN) /.test(l))).toEqual([
      '-A INPUT -j IOT-AGENT-IN',
      '-A INPUT -s 192.0.2.9/32 -j ACCEPT',
      '-A OUTPUT -j IOT-AGENT-OUT',
      '-A OUTPUT -j VENDOR-CHAIN',
      '-A VENDOR-CHAIN -p udp -m udp --dport 5353 -j RETURN',
    ]);
    const table6 = await filterTable(pair, 'ip6tables-legacy-save');
    expect(table6).toContain('-A INPUT -s 2001:db8::9/128 -j ACCEPT');
    expect(table6).toMatch(/-A IOT-AGENT-IN .*--icmpv6-type 134 .*iot-agent:drop-router-advertisement"? -j DROP/);
    const ra = await pair.exec(pair.device, ['sysctl', '-n', 'net.ipv6.conf.all.accept_ra']);
    expect(ra.stdout.trim()).toBe('0');
  });

  it('counts XMAS and SYN+RST probes on the named rules', async () => {
    const before = await ruleCounters(pair, 'iptables-legacy-save');
    await Promise.all([
      sendTcpFlags(pair, ['-F', '-S', '-R', '-P', '-A', '-U'], 22, 4),
      sendTcpFlags(pair, ['-S', '-R'], 22, 3),
    ]);
    const after = await ruleCounters(pair, 'iptables-legacy-save');
    expect(after.get('drop-xmas-all')! - (before.get('drop-xmas-all') ?? 0)).toBe(4);
    expect(after.get('drop-syn-rst')! - (before.get('drop-syn-rst') ?? 0)).toBe(3);
  });

  it('changes nothing on a second apply, and verifies without drift', async () => {
    const table = await filterTable(pair, 'iptables-legacy-save');
    expect((await engine.apply(baseline)).changed).toBe(false);
    expect(await filterTable(pair, 'iptables-legacy-save')).toBe(table);
    const report = await engine.verify();
    expect(report.items.filter((i) => !i.ok)).toEqual([]);
  });

  it('switching to strict removes its IPv6 chains, and rollback brings baseline back', async () => {
    const withBaseline6 = await filterTable(pair, 'ip6tables-legacy-save');
    expect((await engine.apply(await loadProfile('strict', root))).changed).toBe(true);
    expect(await filterTable(pair, 'ip6tables-legacy-save')).toBe(before6);
    await engine.rollback();
    expect(await filterTable(pair, 'ip6tables-legacy-save')).toBe(withBaseline6);
    expect((await engine.verify()).drift).toBe(0);
  });

  it('rolls back to the exact previous iptables-save output of both families', async () => {
    // One step further back than baseline: the state before the agent touched anything.
    await engine.rollback();
    expect(await filterTable(pair, 'iptables-legacy-save')).toBe(before4);
    expect(await filterTable(pair, 'ip6tables-legacy-save')).toBe(before6);
    expect(await engine.applied()).toBeNull();
    await expect(engine.rollback()).rejects.toThrow(/no hardening snapshot/);
  });
});
