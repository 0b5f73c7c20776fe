import { describe, expect, it } from 'vitest';
import { AGENT_CHAINS, DEFAULT_EGRESS, defaultOutbound, INPUT_CHAIN, OUTPUT_CHAIN, RULE_PREFIX, renderFirewall } from '../../hardening/render-firewall.js';
import { builtinProfile, profileFromYaml } from '../support/hardening-profiles.js';

const inbound = (yaml: string, family: 4 | 6) => renderFirewall(profileFromYaml(yaml), family)!.chains[INPUT_CHAIN]!;
const outbound = (yaml: string, family: 4 | 6) => renderFirewall(profileFromYaml(yaml), family)!.chains[OUTPUT_CHAIN]!;
const named = (rules: readonly string[], name: string) => rules.find((r) => r.includes(`--comment iot-agent:${name} `));
const strictIn = () => renderFirewall(builtinProfile('strict'), 4)!.chains[INPUT_CHAIN]!;

describe('firewall rendering', () => {
  it('names every rule, so its counters can be read by name', () => {
    const rules = renderFirewall(builtinProfile('baseline'), 6)!;
    for (const r of Object.values(rules.chains).flat()) expect(r).toMatch(/-m comment --comment iot-agent:[\w.-]+ -j (ACCEPT|DROP|REJECT)$/);
    expect(RULE_PREFIX).toBe('iot-agent:');
  });

  it('loads into the agent\'s own two chains, jumped to from INPUT and OUTPUT', () => {
    expect(AGENT_CHAINS).toEqual([{ chain: 'IOT-AGENT-IN', hook: 'INPUT' }, { chain: 'IOT-AGENT-OUT', hook: 'OUTPUT' }]);
    expect(Object.keys(renderFirewall(builtinProfile('strict'), 4)!.chains)).toEqual([INPUT_CHAIN, OUTPUT_CHAIN]);
    expect(renderFirewall(builtinProfile('strict'), 4)!.family).toBe(4);
  });

  it('renders strict for IPv4 rule by rule: scans, conntrack, related ICMP, no ping, SYN flood limit, DHCP, then drop', () => {
    expect(strictIn()).toEqual([
      '-i lo -m comment --comment iot-agent:loopback -j ACCEPT',
      '-p tcp --tcp-flags ALL NONE -m comment --comment iot-agent:drop-null -j DROP',
      '-p tcp --tcp-flags ALL ALL -m comment --comment iot-agent:drop-xmas-all -j DROP',
      '-p tcp --tcp-flags ALL FIN,PSH,URG -m comment --comment iot-agent:drop-xmas-fin-psh-urg -j DROP',
      '-p tcp --tcp-flags SYN,FIN SYN,FIN -m comment --comment iot-agent:drop-syn-fin -j DROP',
      '-p tcp --tcp-flags SYN,RST SYN,RST -m comment --comment iot-agent:drop-syn-rst -j DROP',
      '-m conntrack --ctstate INVALID -m comment --comment iot-agent:drop-invalid -j DROP',
      '-m conntrack --ctstate ESTABLISHED -m comment --comment iot-agent:established -j ACCEPT',
      '-p icmp --icmp-type destination-unreachable -m conntrack --ctstate RELATED -m comment --comment iot-agent:related-destination-unreachable -j ACCEPT',
      '-p icmp --icmp-type time-exceeded -m conntrack --ctstate RELATED -m comment --comment iot-agent:related-time-exceeded -j ACCEPT',
      '! -p icmp -m conntrack --ctstate RELATED -m comment --comment iot-agent:related -j ACCEPT',
      '-p tcp ! --syn -m conntrack --ctstate NEW -m comment --comment iot-agent:drop-new-not-syn -j DROP',
      '-p icmp --icmp-type echo-request -m comment --comment iot-agent:drop-echo -j DROP',
      '-p tcp --syn -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 20/second --hashlimit-burst 40 --hashlimit-mode srcip '
        + '--hashlimit-name iot-agent-syn4 -m comment --comment iot-agent:drop-syn-flood -j DROP',
      '-p udp --sport 67 --dport 68 -m comment --comment iot-agent:dhcp-reply -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-in -j DROP',
    ]);
  });

  it('lets out only DNS, NTP, HTTPS, MQTT over TLS and DHCP by default, and rejects the rest', () => {
    expect(renderFirewall(builtinProfile('strict'), 4)!.chains[OUTPUT_CHAIN]).toEqual([
      '-o lo -m comment --comment iot-agent:loopback -j ACCEPT',
      '-m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment iot-agent:established -j ACCEPT',
      '-p udp --dport 53 -m comment --comment iot-agent:dns-udp -j ACCEPT',
      '-p tcp --dport 53 -m comment --comment iot-agent:dns-tcp -j ACCEPT',
      '-p udp --dport 123 -m comment --comment iot-agent:ntp -j ACCEPT',
      '-p tcp --dport 443 -m comment --comment iot-agent:https -j ACCEPT',
      '-p tcp --dport 8883 -m comment --comment iot-agent:mqtts -j ACCEPT',
      '-p udp --sport 68 --dport 67 -m comment --comment iot-agent:dhcp -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-out -j REJECT',
    ]);
    expect(defaultOutbound(DEFAULT_EGRESS, 4).map(({ rule }) => `${rule.protocol}/${rule.ports.from}`)).toEqual(['udp/53', 'tcp/53', 'udp/123', 'tcp/443', 'tcp/8883']);
  });

  it('lets out a proxy at an address to that one address, and only in that address\'s family', () => {
    const behind = (host: string) => ({ proxy: { host, port: 3128 }, direct443: false, mqtt: false });
    const proxyRule = (host: string, family: 4 | 6) => defaultOutbound(behind(host), family).find((r) => r.name === 'proxy')?.rule;
    expect(proxyRule('fd00::3', 6)).toEqual({ protocol: 'tcp', ports: { from: 3128, to: 3128 }, cidr: 'fd00::3/128' });
    expect(proxyRule('10.9.8.7', 4)).toEqual({ protocol: 'tcp', ports: { from: 3128, to: 3128 }, cidr: '10.9.8.7/32' });
    expect(proxyRule('fd00::3', 4)).toBeUndefined();
    expect(proxyRule('10.9.8.7', 6)).toBeUndefined();
    expect(proxyRule('proxy.corp', 6)).toEqual({ protocol: 'tcp', ports: { from: 3128, to: 3128 } });
  });

  it('renders IPv6 rules only for ipv6: harden', () => {
    expect(renderFirewall(profileFromYaml('ipv6: disable\n'), 6)).toBeUndefined();
    expect(renderFirewall(profileFromYaml('ipv6: leave\n'), 6)).toBeUndefined();
    expect(renderFirewall(profileFromYaml('ipv6: harden\n'), 6)!.family).toBe(6);
    expect(renderFirewall(profileFromYaml('ipv6: disable\n'), 4)!.family).toBe(4);
  });

  it('drops router advertisements and redirects over IPv6, and lets neighbour discovery in only from the link (hop limit 255) before the INVALID drop', () => {
    const v6 = inbound('ipv6: harden\n', 6);
    expect(v6.slice(6, 11)).toEqual([
      '-p ipv6-icmp --icmpv6-type router-advertisement -m comment --comment iot-agent:drop-router-advertisement -j DROP',
      '-p ipv6-icmp --icmpv6-type redirect -m comment --comment iot-agent:drop-redirect -j DROP',
      '-p ipv6-icmp --icmpv6-type neighbour-solicitation -m hl --hl-eq 255 -m comment --comment iot-agent:neighbour-solicitation -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type neighbour-advertisement -m hl --hl-eq 255 -m comment --comment iot-agent:neighbour-advertisement -j ACCEPT',
      '-m conntrack --ctstate INVALID -m comment --comment iot-agent:drop-invalid -j DROP',
    ]);
    expect(strictIn().join('\n')).not.toMatch(/router-advertisement|neighbour|redirect/);
  });

  it('lets in the ICMPv6 errors IPv6 cannot work without, packet-too-big included, only as RELATED', () => {
    const v6 = inbound('ipv6: harden\n', 6);
    const related = v6.filter((r) => r.includes('--ctstate RELATED') && r.includes('--icmpv6-type'));
    expect(related).toEqual(['destination-unreachable', 'packet-too-big', 'time-exceeded', 'parameter-problem'].map((type) =>
      `-p ipv6-icmp --icmpv6-type ${type} -m conntrack --ctstate RELATED -m comment --comment iot-agent:related-${type} -j ACCEPT`));
    expect(named(v6, 'related')).toBe('! -p ipv6-icmp -m conntrack --ctstate RELATED -m comment --comment iot-agent:related -j ACCEPT');
    expect(named(v6, 'drop-echo')).toBe('-p ipv6-icmp --icmpv6-type echo-request -m comment --comment iot-agent:drop-echo -j DROP');
  });

  it('lets out router solicitations, neighbour discovery and MLD reports over IPv6, and DHCPv6 with the defaults', () => {
    expect(outbound('ipv6: harden\n', 6)).toEqual([
      '-o lo -m comment --comment iot-agent:loopback -j ACCEPT',
      '-m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment iot-agent:established -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type router-solicitation -m comment --comment iot-agent:nd-router-solicitation -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type neighbour-solicitation -m comment --comment iot-agent:nd-neighbour-solicitation -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type neighbour-advertisement -m comment --comment iot-agent:nd-neighbour-advertisement -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type 143 -m comment --comment iot-agent:nd-mld-report -j ACCEPT',
      '-p udp --dport 53 -m comment --comment iot-agent:dns-udp -j ACCEPT',
      '-p tcp --dport 53 -m comment --comment iot-agent:dns-tcp -j ACCEPT',
      '-p udp --dport 123 -m comment --comment iot-agent:ntp -j ACCEPT',
      '-p tcp --dport 443 -m comment --comment iot-agent:https -j ACCEPT',
      '-p tcp --dport 8883 -m comment --comment iot-agent:mqtts -j ACCEPT',
      '-p udp --sport 546 --dport 547 -m comment --comment iot-agent:dhcpv6 -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-out -j REJECT',
    ]);
    expect(named(inbound('ipv6: harden\n', 6), 'dhcpv6-reply')).toBe('-s fe80::/10 -p udp --sport 547 --dport 546 -m comment --comment iot-agent:dhcpv6-reply -j ACCEPT');
  });

  it('rate-limits echo requests when the profile says limit, and drops the rest', () => {
    const rules = renderFirewall(builtinProfile('baseline'), 4)!.chains[INPUT_CHAIN]!;
    const limited = rules.indexOf('-p icmp --icmp-type echo-request -m limit --limit 2/second --limit-burst 5 -m comment --comment iot-agent:echo-limited -j ACCEPT');
    expect(limited).toBeGreaterThan(0);
    expect(rules[limited + 1]).toBe('-p icmp --icmp-type echo-request -m comment --comment iot-agent:drop-echo -j DROP');
    expect(named(strictIn(), 'echo-limited')).toBeUndefined();
  });

  it('limits SYNs per source and family, and not at all with syn_limit: false', () => {
    expect(named(inbound('firewall: { syn_limit: { rate: 9/minute, burst: 3 } }\n', 6), 'drop-syn-flood'))
      .toContain('--hashlimit-above 9/minute --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name iot-agent-syn6 ');
    expect(inbound('firewall: { syn_limit: false }\n', 4).join('\n')).not.toContain('hashlimit');
  });

  it('renders the profile\'s inbound entries as new connections accepted just before the final drop, each in its own family', () => {
    const yaml = 'firewall:\n  inbound:\n    - { port: 22 }\n    - { protocol: udp, port: "5000-5010", from: 10.0.0.0/8 }\n    - { port: 80, from: "fd00::/8" }\n';
    expect(inbound(yaml, 4).slice(-4)).toEqual([
      '-p udp --sport 67 --dport 68 -m comment --comment iot-agent:dhcp-reply -j ACCEPT',
      '-p tcp --dport 22 -m conntrack --ctstate NEW -m comment --comment iot-agent:allow-in-0 -j ACCEPT',
      '-s 10.0.0.0/8 -p udp --dport 5000:5010 -m conntrack --ctstate NEW -m comment --comment iot-agent:allow-in-1 -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-in -j DROP',
    ]);
    expect(inbound(yaml, 6).slice(-3)).toEqual([
      '-p tcp --dport 22 -m conntrack --ctstate NEW -m comment --comment iot-agent:allow-in-0 -j ACCEPT',
      '-s fd00::/8 -p tcp --dport 80 -m conntrack --ctstate NEW -m comment --comment iot-agent:allow-in-2 -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-in -j DROP',
    ]);
  });

  it('renders the profile\'s outbound additions after the defaults, each in its own family', () => {
    const yaml = 'firewall:\n  outbound:\n    allow: [{ port: 5671, to: 203.0.113.0/24 }, { protocol: udp, port: "9000-9100", to: "2001:db8::/32" }]\n';
    expect(outbound(yaml, 4).slice(-2)).toEqual([
      '-d 203.0.113.0/24 -p tcp --dport 5671 -m comment --comment iot-agent:allow-out-0 -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-out -j REJECT',
    ]);
    expect(outbound(yaml, 6).slice(-2)).toEqual([
      '-d 2001:db8::/32 -p udp --dport 9000:9100 -m comment --comment iot-agent:allow-out-1 -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-out -j REJECT',
    ]);
  });

  it('lets nothing out but loopback, established traffic and the profile\'s additions without the defaults, and no DHCP reply in', () => {
    const yaml = 'firewall:\n  outbound: { defaults: false, allow: [{ port: 443, to: 192.0.2.7 }] }\n';
    expect(outbound(yaml, 4)).toEqual([
      '-o lo -m comment --comment iot-agent:loopback -j ACCEPT',
      '-m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment iot-agent:established -j ACCEPT',
      '-d 192.0.2.7/32 -p tcp --dport 443 -m comment --comment iot-agent:allow-out-0 -j ACCEPT',
      '-m comment --comment iot-agent:default-deny-out -j REJECT',
    ]);
    expect(inbound(yaml, 4).join('\n')).not.toContain('dhcp');
    expect(inbound(yaml, 6).join('\n')).not.toContain('dhcp');
    expect(outbound(yaml, 6).join('\n')).not.toMatch(/dhcp|dns|ntp|https|mqtts/);
  });
});
