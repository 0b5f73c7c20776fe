import { describe, expect, it } from 'vitest';
import { failClosedRules } from '../../hardening/fail-closed.js';
import { INPUT_CHAIN, OUTPUT_CHAIN } from '../../hardening/render-firewall.js';

describe('the fail-closed rule set', () => {
  const endpoints = [{ host: 'hub.example.net', port: 8883 }, { host: '192.0.2.10', port: 3128 }, { host: 'proxy.example.net', port: 8080 }, { host: '2001:db8::1', port: 3128 }];
  const v4 = failClosedRules(4, endpoints);

  it('drops everything inbound but loopback, established traffic and DHCP replies', () => {
    expect(v4.chains[INPUT_CHAIN]).toEqual([
      '-i lo -j ACCEPT', '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', '-p udp --sport 67 --dport 68 -j ACCEPT', '-j DROP',
    ]);
  });

  it('lets out DHCP, DNS, NTP, DPS and the hub, and every other endpoint the agent needs by port, rejecting the rest', () => {
    const out = v4.chains[OUTPUT_CHAIN]!;
    for (const rule of ['-p udp --dport 53 -j ACCEPT', '-p tcp --dport 53 -j ACCEPT', '-p udp --dport 123 -j ACCEPT', '-p tcp --dport 443 -j ACCEPT',
      '-p tcp --dport 8883 -j ACCEPT', '-p udp --sport 68 --dport 67 -j ACCEPT', '-d 192.0.2.10/32 -p tcp --dport 3128 -j ACCEPT', '-p tcp --dport 8080 -j ACCEPT']) {
      expect(out).toContain(rule);
    }
    expect(out.at(-1)).toBe('-j REJECT');
    expect(out.filter((r) => r.includes('8883'))).toHaveLength(1);
    expect(out.join('\n')).not.toContain('2001:db8');
    expect(failClosedRules(6, endpoints).chains[OUTPUT_CHAIN]).toContain('-d 2001:db8::1/128 -p tcp --dport 3128 -j ACCEPT');
  });

  it('needs no optional match module: no comment, limit or hashlimit', () => {
    for (const family of [4, 6] as const) {
      const all = Object.values(failClosedRules(family, endpoints).chains).flat().join('\n');
      expect(all).not.toMatch(/-m (comment|limit|hashlimit)/);
    }
  });
});
