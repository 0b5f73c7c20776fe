import { isIP } from 'node:net';
import { cidrFamily, type PortRule, type Profile } from './profile.js';

/**
 * Policy as data: the rules a profile asks for, in the agent's own chains, as the
 * argument text of `iptables-restore` lines. Pure, so it is printed by `plan` and
 * unit-tested without root.
 */
export type Family = 4 | 6;

export const INPUT_CHAIN = 'IOT-AGENT-IN';
export const OUTPUT_CHAIN = 'IOT-AGENT-OUT';
/** Our chains and the built-in chain each one is jumped to from. */
export const AGENT_CHAINS: readonly { chain: string; hook: string }[] = [
  { chain: INPUT_CHAIN, hook: 'INPUT' },
  { chain: OUTPUT_CHAIN, hook: 'OUTPUT' },
];

/** The comment every named rule carries, so tools (and tests) find its counters. */
export const RULE_PREFIX = 'iot-agent:';

export interface FirewallRules {
  family: Family;
  /** Chain name → rule specs in order (what follows `-A CHAIN`). */
  chains: Record<string, string[]>;
}

/**
 * What the agent's config asks of the outbound rules (derived once, at the CLI edge, from
 * network.* in the config root reads): the HTTPS proxy every connection to DPS and the hub
 * goes through, whether anything still goes direct on 443, and whether 8883 is used.
 */
export interface Egress {
  /** The proxy's host (an address narrows the rule to it) and port. */
  proxy?: { host: string; port: number };
  /** 443 to anywhere: DPS and the hub direct (no proxy, or some in network.noProxy). */
  direct443: boolean;
  /** 8883 to anywhere: MQTT over TLS to the hub (not with mqtt-ws, nor through a proxy in auto). */
  mqtt: boolean;
}

/** No proxy, 443 and 8883: what `outbound.defaults` meant before the config had a say. */
export const DEFAULT_EGRESS: Egress = { direct443: true, mqtt: true };

/** The filter rules for one IP family, or undefined when the profile leaves that family alone. */
export function renderFirewall(profile: Profile, family: Family, egress: Egress = DEFAULT_EGRESS): FirewallRules | undefined {
  if (family === 6 && profile.ipv6 !== 'harden') return undefined;
  return { family, chains: { [INPUT_CHAIN]: inboundRules(profile, family), [OUTPUT_CHAIN]: outboundRules(profile, family, egress) } };
}

/** Puts the rule's name (a comment match) just before its target (every spec ends in `-j TARGET`). */
function named(spec: string, name: string): string {
  const at = spec.lastIndexOf('-j ');
  return `${spec.slice(0, at)}-m comment --comment ${RULE_PREFIX}${name} ${spec.slice(at)}`;
}

function inboundRules(profile: Profile, family: Family): string[] {
  const fw = profile.firewall;
  const icmp = family === 4 ? 'icmp' : 'ipv6-icmp';
  const icmpType = family === 4 ? '--icmp-type' : '--icmpv6-type';
  const rules = [
    named('-i lo -j ACCEPT', 'loopback'),
    // Scans first: conntrack would call most of them INVALID, and we want each counted by name.
    named('-p tcp --tcp-flags ALL NONE -j DROP', 'drop-null'),
    named('-p tcp --tcp-flags ALL ALL -j DROP', 'drop-xmas-all'),
    named('-p tcp --tcp-flags ALL FIN,PSH,URG -j DROP', 'drop-xmas-fin-psh-urg'),
    named('-p tcp --tcp-flags SYN,FIN SYN,FIN -j DROP', 'drop-syn-fin'),
    named('-p tcp --tcp-flags SYN,RST SYN,RST -j DROP', 'drop-syn-rst'),
  ];
  if (family === 6) {
    // Neighbour discovery is untracked by conntrack: decide on it before the INVALID drop.
    rules.push(
      named(`-p ${icmp} ${icmpType} router-advertisement -j DROP`, 'drop-router-advertisement'),
      named(`-p ${icmp} ${icmpType} redirect -j DROP`, 'drop-redirect'),
      named(`-p ${icmp} ${icmpType} neighbour-solicitation -m hl --hl-eq 255 -j ACCEPT`, 'neighbour-solicitation'),
      named(`-p ${icmp} ${icmpType} neighbour-advertisement -m hl --hl-eq 255 -j ACCEPT`, 'neighbour-advertisement'),
    );
  }
  rules.push(
    named('-m conntrack --ctstate INVALID -j DROP', 'drop-invalid'),
    named('-m conntrack --ctstate ESTABLISHED -j ACCEPT', 'established'),
  );
  const relatedIcmp = family === 4 ? ['destination-unreachable', 'time-exceeded'] : ['destination-unreachable', 'packet-too-big', 'time-exceeded', 'parameter-problem'];
  for (const type of relatedIcmp) {
    rules.push(named(`-p ${icmp} ${icmpType} ${type} -m conntrack --ctstate RELATED -j ACCEPT`, `related-${type}`));
  }
  rules.push(
    named(`! -p ${icmp} -m conntrack --ctstate RELATED -j ACCEPT`, 'related'),
    named('-p tcp ! --syn -m conntrack --ctstate NEW -j DROP', 'drop-new-not-syn'),
  );
  const echo = 'echo-request';
  if (fw.icmpEcho.mode === 'limit') {
    rules.push(named(`-p ${icmp} ${icmpType} ${echo} -m limit --limit ${fw.icmpEcho.rate} --limit-burst ${fw.icmpEcho.burst} -j ACCEPT`, 'echo-limited'));
  }
  rules.push(named(`-p ${icmp} ${icmpType} ${echo} -j DROP`, 'drop-echo'));
  if (fw.synLimit) {
    rules.push(named(`-p tcp --syn -m conntrack --ctstate NEW -m hashlimit --hashlimit-above ${fw.synLimit.rate} `
      + `--hashlimit-burst ${fw.synLimit.burst} --hashlimit-mode srcip --hashlimit-name iot-agent-syn${family} -j DROP`, 'drop-syn-flood'));
  }
  if (fw.outbound.defaults) {
    rules.push(family === 4
      ? named('-p udp --sport 67 --dport 68 -j ACCEPT', 'dhcp-reply')
      : named('-s fe80::/10 -p udp --sport 547 --dport 546 -j ACCEPT', 'dhcpv6-reply'));
  }
  fw.inbound.forEach((rule, i) => {
    const spec = portSpec(rule, family, '-s');
    if (spec !== undefined) rules.push(named(`${spec} -m conntrack --ctstate NEW -j ACCEPT`, `allow-in-${i}`));
  });
  rules.push(named('-j DROP', 'default-deny-in'));
  return rules;
}

/**
 * What `outbound.defaults` allows, as named rules: name resolution and time always; then
 * HTTPS (DPS, the hub over WebSockets) and MQTT over TLS (the hub) as the agent's config
 * uses them, or only the proxy when everything goes through one: a board behind a proxy
 * has no business opening 443 to anywhere else.
 */
export function defaultOutbound(egress: Egress, family: Family): { name: string; rule: PortRule }[] {
  const port = (p: number) => ({ from: p, to: p });
  const rules: { name: string; rule: PortRule }[] = [
    { name: 'dns-udp', rule: { protocol: 'udp', ports: port(53) } },
    { name: 'dns-tcp', rule: { protocol: 'tcp', ports: port(53) } },
    { name: 'ntp', rule: { protocol: 'udp', ports: port(123) } },
  ];
  if (egress.direct443) rules.push({ name: 'https', rule: { protocol: 'tcp', ports: port(443) } });
  if (egress.mqtt) rules.push({ name: 'mqtts', rule: { protocol: 'tcp', ports: port(8883) } });
  if (egress.proxy) {
    const literal = isIP(egress.proxy.host);
    if (literal === 0 || literal === family) {
      const cidr = literal === 0 ? undefined : `${egress.proxy.host}/${literal === 4 ? 32 : 128}`;
      rules.push({ name: 'proxy', rule: { protocol: 'tcp', ports: port(egress.proxy.port), ...(cidr ? { cidr } : {}) } });
    }
  }
  return rules;
}

function outboundRules(profile: Profile, family: Family, egress: Egress): string[] {
  const fw = profile.firewall;
  const rules = [
    named('-o lo -j ACCEPT', 'loopback'),
    named('-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', 'established'),
  ];
  if (family === 6) {
    for (const type of ['router-solicitation', 'neighbour-solicitation', 'neighbour-advertisement', '143']) {
      rules.push(named(`-p ipv6-icmp --icmpv6-type ${type} -j ACCEPT`, `nd-${type === '143' ? 'mld-report' : type}`));
    }
  }
  if (fw.outbound.defaults) {
    for (const { name, rule } of defaultOutbound(egress, family)) rules.push(named(`${portSpec(rule, family, '-d')!} -j ACCEPT`, name));
    rules.push(family === 4
      ? named('-p udp --sport 68 --dport 67 -j ACCEPT', 'dhcp')
      : named('-p udp --sport 546 --dport 547 -j ACCEPT', 'dhcpv6'));
  }
  fw.outbound.allow.forEach((rule, i) => {
    const spec = portSpec(rule, family, '-d');
    if (spec !== undefined) rules.push(named(`${spec} -j ACCEPT`, `allow-out-${i}`));
  });
  rules.push(named('-j REJECT', 'default-deny-out'));
  return rules;
}

/** `-p tcp [-s CIDR] --dport N[:M]`, or undefined when the rule's CIDR is of the other family. */
function portSpec(rule: PortRule, family: Family, peerFlag: '-s' | '-d'): string | undefined {
  if (rule.cidr !== undefined && cidrFamily(rule.cidr) !== family) return undefined;
  const peer = rule.cidr === undefined ? '' : `${peerFlag} ${rule.cidr} `;
  const port = rule.ports.from === rule.ports.to ? `${rule.ports.from}` : `${rule.ports.from}:${rule.ports.to}`;
  return `${peer}-p ${rule.protocol} --dport ${port}`;
}
