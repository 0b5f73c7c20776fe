import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { AgentError, ExitCode } from '../agent/lib/errors.js';
import { isMapping, PROFILE_LABEL, yamlKindOf } from '../agent/lib/validate.js';

/**
 * A hardening profile: plain data, validated once here, at the edge. Everything below
 * (rendering, engine) trusts a `Profile` and never re-checks it.
 */
export type Protocol = 'tcp' | 'udp';

export interface PortRule {
  protocol: Protocol;
  /** One port or an inclusive range. */
  ports: { from: number; to: number };
  /** Peer network (source for inbound, destination for outbound); undefined means any. */
  cidr?: string;
}

export type IcmpEcho = { mode: 'drop' } | { mode: 'limit'; rate: string; burst: number };
export type SynLimit = { rate: string; burst: number } | false;
export type Ipv6Mode = 'disable' | 'harden' | 'leave';
export type UsbMode = 'block-storage' | 'authorized-only' | 'leave';
export type ReversePathFilter = 'strict' | 'loose' | 'off';

export interface Profile {
  name: string;
  description: string;
  firewall: {
    inbound: PortRule[];
    outbound: {
      /**
       * DNS (53 udp+tcp), NTP (123 udp) and DHCP, and what the agent's config needs to reach
       * DPS and the hub: HTTPS (443) and MQTT over TLS (8883), or only its HTTPS proxy
       * (render-firewall.ts `Egress`, from agent/commands/needed-endpoints.ts).
       */
      defaults: boolean;
      allow: PortRule[];
    };
    icmpEcho: IcmpEcho;
    synLimit: SynLimit;
  };
  ipv6: Ipv6Mode;
  usb: {
    mode: UsbMode;
    allow: string[];
    /**
     * authorized-only: USB network and communications devices (CDC, wireless controller
     * class) and the USB devices behind the board's network interfaces stay authorized.
     * Only present when the profile says so; absent means true (and keeps the hash of
     * profiles written before the key existed).
     */
    allowNetworkDevices?: boolean;
  };
  network: {
    ignoreBogusIcmpErrors: boolean;
    ignoreBroadcastEcho: boolean;
    synCookies: boolean;
    reversePathFilter: ReversePathFilter;
    acceptRedirects: boolean;
    sendRedirects: boolean;
    acceptSourceRoute: boolean;
  };
}

export class ProfileError extends AgentError {
  static override readonly errorName: string = 'ProfileError';

  constructor(source: string, field: string, reason: string) {
    super(`profile ${source}: ${field ? `${field}: ` : ''}${reason}`, {
      hint: 'see the built-in profiles with `iot-agent harden plan --profile strict`; nothing was applied',
      exitCode: ExitCode.usage,
    });
  }
}

type Raw = Record<string, unknown>;

const RATE = /^[1-9][0-9]{0,5}\/(second|minute|hour|day)$/;
const USB_ID = /^[0-9a-f]{4}:[0-9a-f]{4}$/;

/** Checks an already parsed YAML document and returns the profile it describes. */
export function validateProfile(raw: unknown, source: string, fallbackName: string): Profile {
  const v = new Validator(source);
  const top = v.object(raw, '', ['name', 'description', 'extends', 'firewall', 'ipv6', 'usb', 'network']);
  const fw = v.object(top.firewall ?? {}, 'firewall', ['inbound', 'outbound', 'icmp_echo', 'icmp_echo_limit', 'syn_limit']);
  const out = v.object(fw.outbound ?? {}, 'firewall.outbound', ['defaults', 'allow']);
  const usb = v.object(top.usb ?? {}, 'usb', ['mode', 'allow', 'allow_network_devices']);
  const net = v.object(top.network ?? {}, 'network', [
    'ignore_bogus_icmp_errors', 'ignore_broadcast_echo', 'syn_cookies', 'reverse_path_filter',
    'accept_redirects', 'send_redirects', 'accept_source_route']);

  const icmpMode = v.oneOf(fw.icmp_echo ?? 'drop', 'firewall.icmp_echo', ['drop', 'limit'] as const);
  const icmpEcho: IcmpEcho = icmpMode === 'drop'
    ? { mode: 'drop' }
    : { mode: 'limit', ...v.rate(fw.icmp_echo_limit ?? { rate: '1/second', burst: 5 }, 'firewall.icmp_echo_limit') };
  if (icmpMode === 'drop' && fw.icmp_echo_limit !== undefined) {
    v.fail('firewall.icmp_echo_limit', 'only meaningful with icmp_echo: limit');
  }

  return {
    name: v.matching(top.name ?? fallbackName, 'name', PROFILE_LABEL, 'letters, digits, ".", "_" or "-", at most 64'),
    description: v.string(top.description ?? '', 'description'),
    firewall: {
      inbound: v.list(fw.inbound ?? [], 'firewall.inbound').map((r, i) => v.portRule(r, `firewall.inbound[${i}]`, 'from')),
      outbound: {
        defaults: v.boolean(out.defaults ?? true, 'firewall.outbound.defaults'),
        allow: v.list(out.allow ?? [], 'firewall.outbound.allow').map((r, i) => v.portRule(r, `firewall.outbound.allow[${i}]`, 'to')),
      },
      icmpEcho,
      synLimit: fw.syn_limit === false ? false : v.rate(fw.syn_limit ?? { rate: '25/second', burst: 50 }, 'firewall.syn_limit'),
    },
    ipv6: v.oneOf(top.ipv6 ?? 'harden', 'ipv6', ['disable', 'harden', 'leave'] as const),
    usb: {
      mode: v.oneOf(usb.mode ?? 'leave', 'usb.mode', ['block-storage', 'authorized-only', 'leave'] as const),
      allow: v.list(usb.allow ?? [], 'usb.allow').map((id, i) =>
        v.matching(id, `usb.allow[${i}]`, USB_ID, 'a vendor:product id such as "1d6b:0002" (lowercase hex)')),
      ...(usb.allow_network_devices === undefined ? {} : { allowNetworkDevices: v.boolean(usb.allow_network_devices, 'usb.allow_network_devices') }),
    },
    network: {
      ignoreBogusIcmpErrors: v.boolean(net.ignore_bogus_icmp_errors ?? true, 'network.ignore_bogus_icmp_errors'),
      ignoreBroadcastEcho: v.boolean(net.ignore_broadcast_echo ?? true, 'network.ignore_broadcast_echo'),
      synCookies: v.boolean(net.syn_cookies ?? true, 'network.syn_cookies'),
      reversePathFilter: v.oneOf(net.reverse_path_filter ?? 'strict', 'network.reverse_path_filter', ['strict', 'loose', 'off'] as const),
      acceptRedirects: v.boolean(net.accept_redirects ?? false, 'network.accept_redirects'),
      sendRedirects: v.boolean(net.send_redirects ?? false, 'network.send_redirects'),
      acceptSourceRoute: v.boolean(net.accept_source_route ?? false, 'network.accept_source_route'),
    },
  };
}

/** The identity of a profile's effect: SHA-256 over its canonical JSON (reported to the twin). */
export function profileHash(profile: Profile): string {
  return createHash('sha256').update(canonicalJson(profile)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Raw).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The IP family of a CIDR the validator accepted. */
export function cidrFamily(cidr: string): 4 | 6 {
  return isIP(cidr.split('/')[0] ?? '') === 6 ? 6 : 4;
}

class Validator {
  constructor(private readonly source: string) {}

  fail(field: string, reason: string): never {
    throw new ProfileError(this.source, field, reason);
  }

  object(value: unknown, field: string, keys: string[]): Raw {
    if (!isMapping(value)) this.fail(field, `must be a mapping, got ${yamlKindOf(value)}`);
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) {
        this.fail(field ? `${field}.${key}` : key, `unknown key (known: ${keys.join(', ')})`);
      }
    }
    return value;
  }

  list(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, `must be a list, got ${yamlKindOf(value)}`);
    return value;
  }

  string(value: unknown, field: string): string {
    if (typeof value !== 'string') this.fail(field, `must be a string, got ${yamlKindOf(value)}`);
    return value;
  }

  matching(value: unknown, field: string, pattern: RegExp, expected: string): string {
    const text = this.string(value, field);
    if (!pattern.test(text)) this.fail(field, `${JSON.stringify(text)} is not ${expected}`);
    return text;
  }

  boolean(value: unknown, field: string): boolean {
    if (typeof value !== 'boolean') this.fail(field, `must be true or false, got ${yamlKindOf(value)}`);
    return value;
  }

  oneOf<T extends string>(value: unknown, field: string, choices: readonly T[]): T {
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      this.fail(field, `must be one of ${choices.join(', ')}, got ${yamlKindOf(value)}`);
    }
    return value as T;
  }

  rate(value: unknown, field: string): { rate: string; burst: number } {
    const raw = this.object(value, field, ['rate', 'burst']);
    const rate = this.matching(raw.rate, `${field}.rate`, RATE, 'a rate such as "25/second" (per second, minute, hour or day)');
    const burst = raw.burst ?? 5;
    if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1 || burst > 10000) {
      this.fail(`${field}.burst`, `must be an integer from 1 to 10000, got ${yamlKindOf(burst)}`);
    }
    return { rate, burst };
  }

  portRule(value: unknown, field: string, peerKey: 'from' | 'to'): PortRule {
    const raw = this.object(value, field, ['protocol', 'port', peerKey]);
    const protocol = this.oneOf(raw.protocol ?? 'tcp', `${field}.protocol`, ['tcp', 'udp'] as const);
    if (raw.port === undefined) this.fail(`${field}.port`, 'is required');
    const ports = this.ports(raw.port, `${field}.port`);
    const peer = raw[peerKey];
    return peer === undefined ? { protocol, ports } : { protocol, ports, cidr: this.cidr(peer, `${field}.${peerKey}`) };
  }

  ports(value: unknown, field: string): { from: number; to: number } {
    const range = typeof value === 'string' ? /^(\d{1,5})-(\d{1,5})$/.exec(value) : null;
    const [from, to] = range ? [Number(range[1]), Number(range[2])] : [value, value];
    const valid = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
    if (!valid(from) || !valid(to) || from > to) {
      this.fail(field, `must be a port from 1 to 65535 or a range "low-high", got ${yamlKindOf(value)}`);
    }
    return { from, to };
  }

  cidr(value: unknown, field: string): string {
    const text = this.string(value, field);
    const [address = '', prefix, extra] = text.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
    if (family === 0 || extra !== undefined || !(bits >= 0 && bits <= (family === 6 ? 128 : 32))) {
      this.fail(field, `${JSON.stringify(text)} is not an IPv4 or IPv6 address or CIDR such as 10.0.0.0/8`);
    }
    return `${address}/${bits}`;
  }
}
