/**
 * The built-in profiles, as the YAML an operator would write, so that site profiles
 * can start from a copy (`iot-agent harden plan --profile strict --json`) or `extends:` them.
 */
export const BUILTIN_PROFILES: Record<string, string> = {
  baseline: `
description: Safe default for any board; inbound SSH from anywhere, ping rate-limited, IPv6 hardened, USB storage blocked.
firewall:
  inbound:
    - { protocol: tcp, port: 22 }
  outbound:
    defaults: true
  icmp_echo: limit
  icmp_echo_limit: { rate: 2/second, burst: 5 }
  syn_limit: { rate: 50/second, burst: 100 }
ipv6: harden
usb:
  mode: block-storage
`,
  strict: `
description: Devices in the field; nothing inbound, no ping, IPv6 off, only allow-listed USB devices.
firewall:
  inbound: []
  outbound:
    defaults: true
  icmp_echo: drop
  syn_limit: { rate: 20/second, burst: 40 }
ipv6: disable
usb:
  mode: authorized-only
  allow: []
network:
  reverse_path_filter: strict
`,
};
