import { describe, expect, it } from 'vitest';
import { failClosedRules } from '../../hardening/fail-closed.js';
import { INPUT_CHAIN, OUTPUT_CHAIN } from '../../hardening/render-firewall.js';

const endpoints = [{ host: 'hub.example.net', port: 8883 }, { host: '192.0.2.10', port: 3128 }, { host: 'proxy.example.net', port: 8080 }, { host: '2001:db8::1', port: 3128 }];
const DEFAULTS = ['-p udp --dport 53 -j ACCEPT', '-p tcp --dport 53 -j ACCEPT', '-p udp --dport 123 -j ACCEPT', '-p tcp --dport 443 -j ACCEPT', '-p tcp --dport 8883 -j ACCEPT'];

describe('the fail-closed rule set', () => {
  it('drops everything inbound but loopback, established traffic and DHCP replies', () => {
    const v4 = failClosedRules(4, endpoints);
    expect(v4.family).toBe(4);
    expect(Object.keys(v4.chains)).toEqual([INPUT_CHAIN, OUTPUT_CHAIN]);
    expect(v4.chains[INPUT_CHAIN]).toEqual([
      '-i lo -j ACCEPT', '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', '-p udp --sport 67 --dport 68 -j ACCEPT', '-j DROP',
    ]);
  });

  it('lets out DHCP, DNS, NTP, DPS and the hub, and every other endpoint the agent needs by port, rejecting the rest', () => {
    expect(failClosedRules(4, endpoints).chains[OUTPUT_CHAIN]).toEqual([
      '-o lo -j ACCEPT', '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', '-p udp --sport 68 --dport 67 -j ACCEPT', ...DEFAULTS,
      '-d 192.0.2.10/32 -p tcp --dport 3128 -j ACCEPT', '-p tcp --dport 8080 -j ACCEPT', '-j REJECT',
    ]);
  });

  it('keeps IPv6 working: neighbour discovery from the link, router solicitations and DHCPv6', () => {
    const v6 = failClosedRules(6, endpoints);
    expect(v6.family).toBe(6);
    expect(v6.chains[INPUT_CHAIN]).toEqual([
      '-i lo -j ACCEPT', '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type neighbour-solicitation -m hl --hl-eq 255 -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type neighbour-advertisement -m hl --hl-eq 255 -j ACCEPT',
      '-s fe80::/10 -p udp --sport 547 --dport 546 -j ACCEPT', '-j DROP',
    ]);
    expect(v6.chains[OUTPUT_CHAIN]).toEqual([
      '-o lo -j ACCEPT', '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT', '-p ipv6-icmp --icmpv6-type neighbour-advertisement -j ACCEPT',
      '-p ipv6-icmp --icmpv6-type router-solicitation -j ACCEPT', '-p udp --sport 546 --dport 547 -j ACCEPT', ...DEFAULTS,
      '-p tcp --dport 8080 -j ACCEPT', '-d 2001:db8::1/128 -p tcp --dport 3128 -j ACCEPT', '-j REJECT',
    ]);
  });

  it('adds nothing for an endpoint on a standard port, whether named or by address', () => {
    const standard = [53, 123, 443, 8883].flatMap((port) => [{ host: 'hub.example.net', port }, { host: '192.0.2.1', port }, { host: '2001:db8::1', port }]);
    expect(failClosedRules(4, standard).chains[OUTPUT_CHAIN]!.slice(3, -1)).toEqual(DEFAULTS);
    expect(failClosedRules(6, standard).chains[OUTPUT_CHAIN]!.slice(6, -1)).toEqual(DEFAULTS);
  });

  it('needs no optional match module: no comment, limit or hashlimit', () => {
    for (const family of [4, 6] as const) {
      const all = Object.values(failClosedRules(family, endpoints).chains).flat().join('\n');
      expect(all).not.toMatch(/-m (comment|limit|hashlimit)/);
    }
  });
});
