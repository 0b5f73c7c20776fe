import { isIP } from 'node:net';
import type { HostPort } from './probe.js';
import { INPUT_CHAIN, OUTPUT_CHAIN, type Family, type FirewallRules } from './render-firewall.js';

/**
 * The built-in minimal rule set the boot path loads when the profile itself cannot be
 * applied: the board must never come up on the network with empty tables. Inbound, only
 * loopback, established traffic and DHCP replies; outbound, what the agent needs to tell
 * the cloud about it (DHCP, DNS, NTP, HTTPS for DPS, MQTT over TLS for the hub, and any
 * other endpoint it needs, by port). Only the conntrack and protocol matches every kernel
 * with netfilter has (no comment, hashlimit or limit module: a missing one may be why the
 * profile failed). Pure.
 */
const STANDARD_PORTS = new Set([53, 123, 443, 8883]);

export function failClosedRules(family: Family, endpoints: readonly HostPort[]): FirewallRules {
  const established = '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT';
  const inbound = ['-i lo -j ACCEPT', established];
  const outbound = ['-o lo -j ACCEPT', established];
  if (family === 4) {
    inbound.push('-p udp --sport 67 --dport 68 -j ACCEPT');
    outbound.push('-p udp --sport 68 --dport 67 -j ACCEPT');
  } else {
    // Neighbour discovery is untracked by conntrack; without it there is no IPv6 at all.
    for (const type of ['neighbour-solicitation', 'neighbour-advertisement']) {
      inbound.push(`-p ipv6-icmp --icmpv6-type ${type} -m hl --hl-eq 255 -j ACCEPT`);
      outbound.push(`-p ipv6-icmp --icmpv6-type ${type} -j ACCEPT`);
    }
    outbound.push('-p ipv6-icmp --icmpv6-type router-solicitation -j ACCEPT');
    inbound.push('-s fe80::/10 -p udp --sport 547 --dport 546 -j ACCEPT');
    outbound.push('-p udp --sport 546 --dport 547 -j ACCEPT');
  }
  outbound.push(
    '-p udp --dport 53 -j ACCEPT', '-p tcp --dport 53 -j ACCEPT', '-p udp --dport 123 -j ACCEPT',
    '-p tcp --dport 443 -j ACCEPT', '-p tcp --dport 8883 -j ACCEPT',
  );
  for (const endpoint of endpoints) {
    const literal = isIP(endpoint.host);
    if (STANDARD_PORTS.has(endpoint.port) || (literal !== 0 && literal !== family)) continue;
    const peer = literal === 0 ? '' : `-d ${endpoint.host}/${family === 4 ? 32 : 128} `;
    outbound.push(`${peer}-p tcp --dport ${endpoint.port} -j ACCEPT`);
  }
  inbound.push('-j DROP');
  outbound.push('-j REJECT');
  return { family, chains: { [INPUT_CHAIN]: inbound, [OUTPUT_CHAIN]: outbound } };
}
