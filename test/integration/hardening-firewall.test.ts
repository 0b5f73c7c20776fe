import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { filterTable, NetnsPair, requireHardeningTools, ruleCounters, sendTcpFlags } from '../support/netns.js';

// The strict profile on the default (nft) backend, in a namespace of the test's own,
// attacked from a second namespace over a veth pair.
const ALLOWED_PORT = 8080;
const CLOSED_PORT = 2323;
let hostIpv6Before: string;

describe('strict profile on the nft backend, in a network namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let engine: HardeningEngine;
  let profile: LoadedProfile;
  let beforeApply: string;
  const foreignRule = ['-A', 'INPUT', '-s', '192.0.2.7/32', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT'];

  beforeAll(async () => {
    hostIpv6Before = readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim();
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'hping3', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-nft-'));
    // A site profile: strict plus one inbound service, as an operator would write it.
    const file = path.join(root, 'field.yaml');
    writeFileSync(file, `extends: strict\nfirewall:\n  inbound:\n    - { protocol: tcp, port: ${ALLOWED_PORT} }\n`);
    profile = await loadProfile(file, root);
    engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
    // Software that was there first: a rule of its own in INPUT.
    const added = await pair.exec(pair.device, ['iptables-nft', ...foreignRule]);
    expect(added.code, added.stderr).toBe(0);
    beforeApply = await filterTable(pair, 'iptables-nft-save');
    await pair.listenTcp(ALLOWED_PORT);
    const report = await engine.apply(profile);
    expect(report.changed).toBe(true);
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('drops XMAS, NULL, SYN+FIN and SYN+RST packets, each counted by its named rule', async () => {
    const sent = { 'drop-xmas-all': 7, 'drop-xmas-fin-psh-urg': 6, 'drop-null': 5, 'drop-syn-fin': 4, 'drop-syn-rst': 3 };
    const before = await ruleCounters(pair, 'iptables-nft-save');
    await Promise.all([
      sendTcpFlags(pair, ['-F', '-S', '-R', '-P', '-A', '-U'], ALLOWED_PORT, sent['drop-xmas-all']),
      sendTcpFlags(pair, ['-F', '-P', '-U'], ALLOWED_PORT, sent['drop-xmas-fin-psh-urg']),
      sendTcpFlags(pair, [], ALLOWED_PORT, sent['drop-null']),
      sendTcpFlags(pair, ['-S', '-F'], ALLOWED_PORT, sent['drop-syn-fin']),
      sendTcpFlags(pair, ['-S', '-R'], ALLOWED_PORT, sent['drop-syn-rst']),
    ]);
    const after = await ruleCounters(pair, 'iptables-nft-save');
    for (const [name, count] of Object.entries(sent)) {
      expect((after.get(name) ?? 0) - (before.get(name) ?? 0), name).toBe(count);
    }
  });

  it('gives no reply to an ICMP echo request', async () => {
    const before = (await ruleCounters(pair, 'iptables-nft-save')).get('drop-echo') ?? 0;
    const ping = await pair.exec(pair.peer, ['hping3', '--icmp', '-c', '3', '-i', 'u100000', pair.deviceAddress]);
    expect(ping.stdout + ping.stderr).toMatch(/3 packets transmitted, 0 packets received/);
    expect((await ruleCounters(pair, 'iptables-nft-save')).get('drop-echo')! - before).toBe(3);
  });

  it('drops most of a 2000-packet SYN flood while a normal connection to an allowed port succeeds', async () => {
    const before = (await ruleCounters(pair, 'iptables-nft-save')).get('drop-syn-flood') ?? 0;
    const flood = pair.exec(pair.peer, ['hping3', '-S', '-p', String(ALLOWED_PORT), '-c', '2000', '-i', 'u200', pair.deviceAddress], 30_000);
    await new Promise((r) => setTimeout(r, 150));
    // During the flood, from the peer's second address: its own per-source budget.
    const during = await pair.tcpConnect(ALLOWED_PORT, { from: pair.peerAddress2 });
    const result = await flood;
    expect(result.stdout + result.stderr).toMatch(/2000 packets transmitted/);
    const dropped = (await ruleCounters(pair, 'iptables-nft-save')).get('drop-syn-flood')! - before;
    expect(during).toBe("connected");
    expect(dropped).toBeGreaterThan(1500);
    expect(dropped).toBeLessThanOrEqual(2000);
  });

  it('leaves a port that is not in the profile unreachable', async () => {
    expect(await pair.tcpConnect(CLOSED_PORT, { timeoutSeconds: 1 })).toBe('timeout');
    expect(await pair.tcpConnect(ALLOWED_PORT, { timeoutSeconds: 3 })).toBe('connected');
  });

  it('disables IPv6 inside the namespace and leaves the host untouched', async () => {
    const inside = await pair.exec(pair.device, ['sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.default.disable_ipv6']);
    expect(inside.stdout.trim().split('\n')).toEqual(['1', '1']);
    const peer = await pair.exec(pair.peer, ['sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6']);
    expect(peer.stdout.trim()).toBe('0');
    expect(readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim()).toBe(hostIpv6Before);
  });

  it('keeps the foreign rule, unchanged, after apply', async () => {
    const table = await filterTable(pair, 'iptables-nft-save');
    expect(table).toContain('-A INPUT -s 192.0.2.7/32 -p tcp -m tcp --dport 9 -j ACCEPT');
    const input = table.split('\n').filter((l) => l.startsWith('-A INPUT '));
    expect(input).toEqual(['-A INPUT -j IOT-AGENT-IN', '-A INPUT -s 192.0.2.7/32 -p tcp -m tcp --dport 9 -j ACCEPT']);
  });

  it('changes nothing when the same profile is applied twice', async () => {
    const counters = await ruleCounters(pair, 'iptables-nft-save');
    const table = await filterTable(pair, 'iptables-nft-save');
    const report = await engine.apply(profile);
    expect(report.changed).toBe(false);
    expect(await filterTable(pair, 'iptables-nft-save')).toBe(table);
    expect(await ruleCounters(pair, 'iptables-nft-save')).toEqual(counters);
  });

  it('verifies without drift, and reports a deleted rule and a changed sysctl as drift', async () => {
    expect((await engine.verify()).drift).toBe(0);
    await pair.exec(pair.device, ['iptables-nft', '-D', 'IOT-AGENT-IN', '-p', 'tcp', '--tcp-flags', 'ALL', 'NONE',
      '-m', 'comment', '--comment', 'iot-agent:drop-null', '-j', 'DROP']);
    await pair.exec(pair.device, ['sysctl', '-q', '-w', 'net.ipv4.tcp_syncookies=0']);
    const report = await engine.verify();
    const drifted = report.items.filter((i) => !i.ok);
    expect(drifted.map((i) => i.target)).toEqual(['iptables IOT-AGENT-IN', 'net.ipv4.tcp_syncookies']);
    expect(drifted[0]!.actual).toMatch(/missing: .*drop-null/);
    // Applying again repairs the drift.
    expect((await engine.apply(profile)).changed).toBe(true);
    expect((await engine.verify()).drift).toBe(0);
  });

  it('restores the exact previous iptables-save output on rollback, foreign rule included', async () => {
    const report = await engine.rollback();
    expect(report.exact).toBe(true);
    expect(await filterTable(pair, 'iptables-nft-save')).toBe(beforeApply);
    const sysctl = await pair.exec(pair.device, ['sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6']);
    expect(sysctl.stdout.trim()).toBe('0');
  });
});
