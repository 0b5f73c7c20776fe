import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../hardening/builtin-profiles.js';
import { mergeProfiles, parseProfileText } from '../../hardening/load-profile.js';
import { cidrFamily, profileHash, ProfileError, validateProfile, type Profile } from '../../hardening/profile.js';

const validate = (yaml: string) => validateProfile(parseProfileText(yaml, 'test.yaml', 'test'), 'test.yaml', 'test');

/** The error a profile document is refused with (fails the test when it is accepted). */
function refusal(yaml: string): ProfileError {
  try {
    validate(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ProfileError);
    return err as ProfileError;
  }
  throw new Error(`accepted: ${yaml}`);
}

describe('profile schema', () => {
  it('accepts both built-in profiles', () => {
    for (const [name, text] of Object.entries(BUILTIN_PROFILES)) {
      const profile = validate(text);
      expect(profile.name).toBe('test');
      expect(profile.firewall.outbound.defaults, name).toBe(true);
    }
    expect(validate(BUILTIN_PROFILES.strict!)).toMatchObject({ ipv6: 'disable', usb: { mode: 'authorized-only' }, firewall: { inbound: [], icmpEcho: { mode: 'drop' } } });
  });

  it('defaults to nothing inbound, hardened IPv6, USB left alone and every network protection on', () => {
    expect(validate('{}\n')).toEqual({
      name: 'test',
      description: '',
      firewall: { inbound: [], outbound: { defaults: true, allow: [] }, icmpEcho: { mode: 'drop' }, synLimit: { rate: '25/second', burst: 50 } },
      ipv6: 'harden',
      usb: { mode: 'leave', allow: [] },
      network: { ignoreBogusIcmpErrors: true, ignoreBroadcastEcho: true, synCookies: true, reversePathFilter: 'strict',
        acceptRedirects: false, sendRedirects: false, acceptSourceRoute: false },
    });
  });

  it('takes every key a document names, each into its own field', () => {
    const p = validate([
      'name: site.v2_a-b', 'description: Lab boards', 'extends: strict',
      'firewall:', '  outbound: { defaults: false, allow: [{ protocol: udp, port: 514 }] }', '  icmp_echo: limit',
      '  icmp_echo_limit: { rate: 3/minute, burst: 7 }', '  syn_limit: false',
      'ipv6: leave', 'usb: { mode: block-storage, allow: ["1d6b:0002"], allow_network_devices: false }',
      'network:', '  ignore_bogus_icmp_errors: false', '  ignore_broadcast_echo: false', '  syn_cookies: false',
      '  reverse_path_filter: off', '  accept_redirects: true', '  send_redirects: true', '  accept_source_route: true', '',
    ].join('\n'));
    expect(p).toEqual({
      name: 'site.v2_a-b',
      description: 'Lab boards',
      firewall: {
        inbound: [], outbound: { defaults: false, allow: [{ protocol: 'udp', ports: { from: 514, to: 514 } }] },
        icmpEcho: { mode: 'limit', rate: '3/minute', burst: 7 }, synLimit: false,
      },
      ipv6: 'leave',
      usb: { mode: 'block-storage', allow: ['1d6b:0002'], allowNetworkDevices: false },
      network: { ignoreBogusIcmpErrors: false, ignoreBroadcastEcho: false, synCookies: false, reversePathFilter: 'off',
        acceptRedirects: true, sendRedirects: true, acceptSourceRoute: true },
    });
  });

  it('rate-limits echo at 1/second with a burst of 5 when icmp_echo: limit names no limit', () => {
    expect(validate('firewall: { icmp_echo: limit }\n').firewall.icmpEcho).toEqual({ mode: 'limit', rate: '1/second', burst: 5 });
  });

  it('gives a rate without a burst a burst of 5', () => {
    expect(validate('firewall: { syn_limit: { rate: 10/hour } }\n').firewall.synLimit).toEqual({ rate: '10/hour', burst: 5 });
  });

  it('accepts each IPv6, USB and reverse path filter mode', () => {
    for (const mode of ['disable', 'harden', 'leave']) expect(validate(`ipv6: ${mode}\n`).ipv6).toBe(mode);
    for (const mode of ['block-storage', 'authorized-only', 'leave']) expect(validate(`usb: { mode: ${mode} }\n`).usb.mode).toBe(mode);
    for (const mode of ['strict', 'loose', 'off']) expect(validate(`network: { reverse_path_filter: ${mode} }\n`).network.reversePathFilter).toBe(mode);
  });

  it('reads port ranges and CIDRs of both families', () => {
    const p = validate('firewall:\n  inbound:\n    - { protocol: udp, port: "5000-5010", from: 10.1.0.0/16 }\n    - { port: 22, from: "fd00::/8" }\n    - { port: 80, from: 192.0.2.1 }\n');
    expect(p.firewall.inbound).toEqual([
      { protocol: 'udp', ports: { from: 5000, to: 5010 }, cidr: '10.1.0.0/16' },
      { protocol: 'tcp', ports: { from: 22, to: 22 }, cidr: 'fd00::/8' },
      { protocol: 'tcp', ports: { from: 80, to: 80 }, cidr: '192.0.2.1/32' },
    ]);
  });

  it('accepts the edges of every range: ports 1 and 65535, bursts 1 and 10000, prefixes /0 to /32 and /128', () => {
    const p = validate([
      'firewall:',
      '  inbound: [{ port: 1 }, { port: 65535, from: "::1" }, { port: "1-65535", from: 0.0.0.0/0 }, { port: "7-7", from: 10.0.0.1/32 }]',
      '  outbound: { allow: [{ port: 443, to: "2001:db8::/128" }, { port: 443, to: "::/0" }] }',
      '  icmp_echo: limit', '  icmp_echo_limit: { rate: 999999/day, burst: 10000 }', '  syn_limit: { rate: 1/second, burst: 1 }', '',
    ].join('\n'));
    expect(p.firewall.inbound.map((r) => [r.ports, r.cidr])).toEqual([
      [{ from: 1, to: 1 }, undefined], [{ from: 65535, to: 65535 }, '::1/128'], [{ from: 1, to: 65535 }, '0.0.0.0/0'], [{ from: 7, to: 7 }, '10.0.0.1/32'],
    ]);
    expect(p.firewall.outbound.allow.map((r) => r.cidr)).toEqual(['2001:db8::/128', '::/0']);
    expect(p.firewall.icmpEcho).toEqual({ mode: 'limit', rate: '999999/day', burst: 10000 });
    expect(p.firewall.synLimit).toEqual({ rate: '1/second', burst: 1 });
  });

  const rejects: [string, string, string][] = [
    ['an unknown top-level key', 'firewal: {}\n', 'firewal: unknown key (known: name, description, extends, firewall, ipv6, usb, network)'],
    ['a nested unknown key', 'usb: { mode: leave, alow: [] }\n', 'usb.alow: unknown key (known: mode, allow, allow_network_devices)'],
    ['an unknown firewall key', 'firewall: { outbound_allow: [] }\n', 'firewall.outbound_allow: unknown key'],
    ['an unknown outbound key', 'firewall: { outbound: { deny: [] } }\n', 'firewall.outbound.deny: unknown key'],
    ['an unknown network key', 'network: { forwarding: false }\n', 'network.forwarding: unknown key'],
    ['an unknown rate key', 'firewall: { syn_limit: { rate: 1/second, per: ip } }\n', 'firewall.syn_limit.per: unknown key'],
    ['a source on an outbound rule', 'firewall:\n  outbound:\n    allow: [{ port: 1, from: 10.0.0.0/8 }]\n', 'firewall.outbound.allow[0].from: unknown key (known: protocol, port, to)'],
    ['a destination on an inbound rule', 'firewall:\n  inbound: [{ port: 1, to: 10.0.0.0/8 }]\n', 'firewall.inbound[0].to: unknown key (known: protocol, port, from)'],
    ['a port of the wrong type', 'firewall:\n  inbound: [{ port: "ssh" }]\n', 'firewall.inbound[0].port: must be a port from 1 to 65535 or a range "low-high", got string "ssh"'],
    ['a port number as text', 'firewall:\n  inbound: [{ port: "22" }]\n', 'firewall.inbound[0].port: must be a port'],
    ['a fractional port', 'firewall:\n  inbound: [{ port: 22.5 }]\n', 'firewall.inbound[0].port: must be a port'],
    ['port zero', 'firewall:\n  inbound: [{ port: 0 }]\n', 'firewall.inbound[0].port: must be a port'],
    ['port 65536', 'firewall:\n  inbound: [{ port: 65536 }]\n', 'firewall.inbound[0].port: must be a port'],
    ['a range to 65536', 'firewall:\n  inbound: [{ port: "1-65536" }]\n', 'firewall.inbound[0].port: must be a port'],
    ['a range from zero', 'firewall:\n  inbound: [{ port: "0-10" }]\n', 'firewall.inbound[0].port: must be a port'],
    ['a reversed range', 'firewall:\n  inbound: [{ port: "90-80" }]\n', 'firewall.inbound[0].port: must be a port'],
    ['a range with text around it', 'firewall:\n  inbound: [{ port: "x80-90" }]\n', 'firewall.inbound[0].port: must be a port'],
    ['a range with text after it', 'firewall:\n  inbound: [{ port: "80-90x" }]\n', 'firewall.inbound[0].port: must be a port'],
    ['a missing port', 'firewall:\n  inbound: [{ protocol: tcp }]\n', 'firewall.inbound[0].port: is required'],
    ['a bad protocol', 'firewall:\n  inbound: [{ port: 1, protocol: sctp }]\n', 'firewall.inbound[0].protocol: must be one of tcp, udp, got string "sctp"'],
    ['an IPv4 prefix over 32', 'firewall:\n  inbound: [{ port: 1, from: 10.0.0.0/33 }]\n', 'firewall.inbound[0].from: "10.0.0.0/33" is not an IPv4 or IPv6 address or CIDR such as 10.0.0.0/8'],
    ['an IPv6 prefix over 128', 'firewall:\n  inbound: [{ port: 1, from: "fd00::/129" }]\n', 'firewall.inbound[0].from: "fd00::/129" is not'],
    ['an empty prefix', 'firewall:\n  inbound: [{ port: 1, from: 10.0.0.0/ }]\n', 'firewall.inbound[0].from: "10.0.0.0/" is not'],
    ['a prefix that is not a number', 'firewall:\n  inbound: [{ port: 1, from: 10.0.0.0/8a }]\n', 'firewall.inbound[0].from: "10.0.0.0/8a" is not'],
    ['a prefix with a sign', 'firewall:\n  inbound: [{ port: 1, from: 10.0.0.0/-8 }]\n', 'firewall.inbound[0].from: "10.0.0.0/-8" is not'],
    ['a prefix of four digits', 'firewall:\n  inbound: [{ port: 1, from: 10.0.0.0/0008 }]\n', 'firewall.inbound[0].from: "10.0.0.0/0008" is not'],
    ['two prefixes', 'firewall:\n  inbound: [{ port: 1, from: 10.0.0.0/8/8 }]\n', 'firewall.inbound[0].from: "10.0.0.0/8/8" is not'],
    ['a host name as CIDR', 'firewall:\n  outbound:\n    allow: [{ port: 1, to: example.com }]\n', 'firewall.outbound.allow[0].to: "example.com" is not'],
    ['a number as CIDR', 'firewall:\n  outbound:\n    allow: [{ port: 1, to: 10 }]\n', 'firewall.outbound.allow[0].to: must be a string, got number 10'],
    ['a list where a mapping belongs', 'firewall: []\n', 'firewall: must be a mapping, got a list'],
    ['a scalar where a mapping belongs', 'usb: strict\n', 'usb: must be a mapping, got string "strict"'],
    ['an empty rule', 'firewall: { inbound: [~] }\n', 'firewall.inbound[0]: must be a mapping, got nothing'],
    ['a mapping where a list belongs', 'firewall: { inbound: { port: 22 } }\n', 'firewall.inbound: must be a list, got a mapping'],
    ['a scalar where a rule belongs', 'firewall: { inbound: [22] }\n', 'firewall.inbound[0]: must be a mapping, got number 22'],
    ['a boolean as a string', 'network: { syn_cookies: "yes" }\n', 'network.syn_cookies: must be true or false, got string "yes"'],
    ['outbound defaults as a number', 'firewall: { outbound: { defaults: 1 } }\n', 'firewall.outbound.defaults: must be true or false, got number 1'],
    ['a list as a name', 'name: [a]\n', 'name: must be a string, got a list'],
    ['a name starting with a dot', 'name: .hidden\n', 'name: ".hidden" is not letters, digits, ".", "_" or "-", at most 64'],
    ['a name with a slash', 'name: a/b\n', 'name: "a/b" is not'],
    ['a name of 65 characters', `name: a${'b'.repeat(64)}\n`, `name: "a${'b'.repeat(64)}" is not letters, digits`],
    ['a description that is not text', 'description: [a]\n', 'description: must be a string, got a list'],
    ['a bad IPv6 mode', 'ipv6: off\n', 'ipv6: must be one of disable, harden, leave, got string "off"'],
    ['a bad USB mode', 'usb: { mode: block }\n', 'usb.mode: must be one of block-storage, authorized-only, leave, got string "block"'],
    ['a USB mode that is not text', 'usb: { mode: 1 }\n', 'usb.mode: must be one of'],
    ['a bad reverse path filter', 'network: { reverse_path_filter: 1 }\n', 'network.reverse_path_filter: must be one of strict, loose, off, got number 1'],
    ['a bad echo mode', 'firewall: { icmp_echo: accept }\n', 'firewall.icmp_echo: must be one of drop, limit'],
    ['a bad rate', 'firewall:\n  syn_limit: { rate: fast }\n', 'firewall.syn_limit.rate: "fast" is not a rate such as "25/second" (per second, minute, hour or day)'],
    ['a rate of zero', 'firewall:\n  syn_limit: { rate: 0/second }\n', 'firewall.syn_limit.rate: "0/second" is not'],
    ['a rate with a leading zero', 'firewall:\n  syn_limit: { rate: 01/second }\n', 'firewall.syn_limit.rate'],
    ['a rate of seven digits', 'firewall:\n  syn_limit: { rate: 1000000/second }\n', 'firewall.syn_limit.rate'],
    ['a rate per week', 'firewall:\n  syn_limit: { rate: 1/week }\n', 'firewall.syn_limit.rate'],
    ['a rate with text around it', 'firewall:\n  syn_limit: { rate: " 1/second" }\n', 'firewall.syn_limit.rate'],
    ['a rate with text after it', 'firewall:\n  syn_limit: { rate: 1/seconds }\n', 'firewall.syn_limit.rate'],
    ['a missing rate', 'firewall:\n  syn_limit: { burst: 5 }\n', 'firewall.syn_limit.rate: must be a string, got nothing'],
    ['syn_limit: true', 'firewall:\n  syn_limit: true\n', 'firewall.syn_limit: must be a mapping, got boolean true'],
    ['a burst of zero', 'firewall:\n  syn_limit: { rate: 1/second, burst: 0 }\n', 'firewall.syn_limit.burst: must be an integer from 1 to 10000, got number 0'],
    ['a burst over 10000', 'firewall:\n  syn_limit: { rate: 1/second, burst: 10001 }\n', 'firewall.syn_limit.burst: must be an integer from 1 to 10000, got number 10001'],
    ['a fractional burst', 'firewall:\n  icmp_echo: limit\n  icmp_echo_limit: { rate: 1/second, burst: 2.5 }\n', 'firewall.icmp_echo_limit.burst: must be an integer'],
    ['a burst as text', 'firewall:\n  syn_limit: { rate: 1/second, burst: "5" }\n', 'firewall.syn_limit.burst: must be an integer from 1 to 10000, got string "5"'],
    ['a limit without limit mode', 'firewall:\n  icmp_echo_limit: { rate: 1/second }\n', 'firewall.icmp_echo_limit: only meaningful with icmp_echo: limit'],
    ['an outbound allow list that is not a list', 'firewall: { outbound: { allow: 5 } }\n', 'firewall.outbound.allow: must be a list, got number 5'],
    ['a port range inside a list', 'firewall:\n  inbound: [{ port: ["80-90"] }]\n', 'firewall.inbound[0].port: must be a port from 1 to 65535 or a range "low-high", got a list'],
    ['a bad USB id', 'usb: { mode: authorized-only, allow: ["1D6B:2"] }\n', 'usb.allow[0]: "1D6B:2" is not a vendor:product id such as "1d6b:0002" (lowercase hex)'],
    ['a USB id with text around it', 'usb: { allow: ["x1d6b:0002"] }\n', 'usb.allow[0]'],
    ['a USB id with text after it', 'usb: { allow: ["1d6b:0002x"] }\n', 'usb.allow[0]'],
    ['a USB id in upper case', 'usb: { allow: ["1D6B:0002"] }\n', 'usb.allow[0]'],
    ['a USB allow list that is not a list', 'usb: { allow: "1d6b:0002" }\n', 'usb.allow: must be a list, got string "1d6b:0002"'],
    ['duplicate keys', 'ipv6: leave\nipv6: harden\n', 'not valid YAML'],
  ];
  for (const [what, yaml, message] of rejects) {
    it(`rejects ${what}, naming the field`, () => {
      const error = refusal(yaml);
      expect(error.message).toContain(`profile test.yaml: ${message}`);
      expect(error.exitCode).toBe(2);
    });
  }

  it.each(['ignore_bogus_icmp_errors', 'ignore_broadcast_echo', 'syn_cookies', 'reverse_path_filter', 'accept_redirects', 'send_redirects', 'accept_source_route'])(
    'names network.%s when its value is of the wrong type', (key) => {
      expect(refusal(`network: { ${key}: [] }\n`).message).toMatch(new RegExp(`^profile test\\.yaml: network\\.${key}: must be (true or false|one of strict, loose, off), got a list$`));
    });

  it('says nothing was applied, and where to find a valid profile, with every refusal', () => {
    expect(refusal('ipv6: off\n').hint).toBe('see the built-in profiles with `iot-agent harden plan --profile strict`; nothing was applied');
  });

  it('names no field when the whole document is wrong', () => {
    expect(new ProfileError('site.yaml', '', 'must be a YAML mapping at the top level').message).toBe('profile site.yaml: must be a YAML mapping at the top level');
    expect(() => validateProfile([], 'site.yaml', 'site')).toThrow(/^profile site\.yaml: must be a mapping, got a list$/);
  });

  it('accepts a name of 64 characters', () => {
    expect(validate(`name: A${'9'.repeat(63)}\n`).name).toBe(`A${'9'.repeat(63)}`);
  });

  it('takes the file name as the profile name when the document names none', () => {
    expect(validateProfile({}, 'lab.yaml', 'lab').name).toBe('lab');
  });
});

describe('merging a site profile over its parent', () => {
  it('merges mappings key by key and replaces lists', () => {
    const merged = mergeProfiles(
      { firewall: { inbound: [{ port: 22 }], icmp_echo: 'drop' }, ipv6: 'disable' },
      { firewall: { inbound: [{ port: 8080 }] }, name: 'site' },
    );
    expect(merged).toEqual({ firewall: { inbound: [{ port: 8080 }], icmp_echo: 'drop' }, ipv6: 'disable', name: 'site' });
  });
});

describe('the profile hash', () => {
  const literal = (): Profile => ({
    name: 'p', description: '',
    firewall: { inbound: [{ protocol: 'tcp', ports: { from: 22, to: 22 } }], outbound: { defaults: true, allow: [] }, icmpEcho: { mode: 'drop' }, synLimit: false },
    ipv6: 'leave',
    usb: { mode: 'leave', allow: [], allowNetworkDevices: undefined },
    network: { ignoreBogusIcmpErrors: true, ignoreBroadcastEcho: true, synCookies: true, reversePathFilter: 'strict', acceptRedirects: false, sendRedirects: false, acceptSourceRoute: false },
  });

  /** The canonical JSON of `literal()`, with its USB allow list as given. */
  const canonical = (usbAllow = '[]') => '{"description":"","firewall":{"icmpEcho":{"mode":"drop"},"inbound":[{"ports":{"from":22,"to":22},"protocol":"tcp"}],'
    + '"outbound":{"allow":[],"defaults":true},"synLimit":false},"ipv6":"leave","name":"p","network":{"acceptRedirects":false,'
    + '"acceptSourceRoute":false,"ignoreBogusIcmpErrors":true,"ignoreBroadcastEcho":true,"reversePathFilter":"strict","sendRedirects":false,'
    + `"synCookies":true},"usb":{"allow":${usbAllow},"mode":"leave"}}`;
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

  it('is SHA-256 over compact JSON with keys sorted and absent keys left out, so records written by earlier versions still match', () => {
    expect(profileHash(literal())).toBe(sha256(canonical()));
  });

  it('writes a list\'s items apart, with a comma between them', () => {
    const p = literal();
    p.usb.allow = ['1d6b:0002', '1d6b:0003'];
    expect(profileHash(p)).toBe(sha256(canonical('["1d6b:0002","1d6b:0003"]')));
  });

  it('hashes the effect, not the spelling', () => {
    const a = validate('ipv6: harden\nfirewall: { inbound: [{ port: 22, protocol: tcp }] }\n');
    const b = validate('firewall:\n  inbound:\n    - protocol: tcp\n      port: 22\n');
    expect(profileHash(a)).toBe(profileHash(b));
    expect(profileHash(a)).not.toBe(profileHash(validate('ipv6: disable\n')));
  });

  it('does not depend on the order keys were written in, only on the order of rules', () => {
    const p = literal();
    const reversed = Object.fromEntries(Object.entries(p).reverse()) as unknown as Profile;
    reversed.network = Object.fromEntries(Object.entries(p.network).reverse()) as unknown as Profile['network'];
    expect(profileHash(reversed)).toBe(profileHash(p));
    const two = { ...p, firewall: { ...p.firewall, inbound: [{ protocol: 'tcp' as const, ports: { from: 22, to: 22 } }, { protocol: 'udp' as const, ports: { from: 53, to: 53 } }] } };
    const swapped = { ...two, firewall: { ...two.firewall, inbound: [...two.firewall.inbound].reverse() } };
    expect(profileHash(swapped)).not.toBe(profileHash(two));
  });
});

describe('the family of a CIDR', () => {
  it('is 6 for an IPv6 network and 4 for an IPv4 one', () => {
    expect(cidrFamily('fd00::/8')).toBe(6);
    expect(cidrFamily('::/0')).toBe(6);
    expect(cidrFamily('10.0.0.0/8')).toBe(4);
    expect(cidrFamily('192.0.2.1/32')).toBe(4);
  });
});
