import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../hardening/builtin-profiles.js';
import { mergeProfiles, parseProfileText } from '../../hardening/load-profile.js';
import { profileHash, ProfileError, validateProfile } from '../../hardening/profile.js';

const validate = (yaml: string) => validateProfile(parseProfileText(yaml, 'test.yaml', 'test'), 'test.yaml', 'test');

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
    expect(validate('{}\n')).toMatchObject({
      firewall: { inbound: [], outbound: { defaults: true, allow: [] }, icmpEcho: { mode: 'drop' }, synLimit: { rate: '25/second', burst: 50 } },
      ipv6: 'harden',
      usb: { mode: 'leave', allow: [] },
      network: { ignoreBogusIcmpErrors: true, ignoreBroadcastEcho: true, synCookies: true, reversePathFilter: 'strict',
        acceptRedirects: false, sendRedirects: false, acceptSourceRoute: false },
    });
  });

  it('reads port ranges and CIDRs of both families', () => {
    const p = validate('firewall:\n  inbound:\n    - { protocol: udp, port: "5000-5010", from: 10.1.0.0/16 }\n    - { port: 22, from: "fd00::/8" }\n    - { port: 80, from: 192.0.2.1 }\n');
    expect(p.firewall.inbound).toEqual([
      { protocol: 'udp', ports: { from: 5000, to: 5010 }, cidr: '10.1.0.0/16' },
      { protocol: 'tcp', ports: { from: 22, to: 22 }, cidr: 'fd00::/8' },
      { protocol: 'tcp', ports: { from: 80, to: 80 }, cidr: '192.0.2.1/32' },
    ]);
  });

  const rejects: [string, string, string][] = [
    ['an unknown top-level key', 'firewal: {}\n', 'firewal: unknown key'],
    ['a nested unknown key', 'usb: { mode: leave, alow: [] }\n', 'usb.alow: unknown key'],
    ['a port of the wrong type', 'firewall:\n  inbound: [{ port: "ssh" }]\n', 'firewall.inbound[0].port: must be a port'],
    ['port zero', 'firewall:\n  inbound: [{ port: 0 }]\n', 'firewall.inbound[0].port'],
    ['a reversed range', 'firewall:\n  inbound: [{ port: "90-80" }]\n', 'firewall.inbound[0].port'],
    ['a missing port', 'firewall:\n  inbound: [{ protocol: tcp }]\n', 'firewall.inbound[0].port: is required'],
    ['a bad protocol', 'firewall:\n  inbound: [{ port: 1, protocol: sctp }]\n', 'firewall.inbound[0].protocol: must be one of tcp, udp'],
    ['an IPv4 prefix over 32', 'firewall:\n  inbound: [{ port: 1, from: 10.0.0.0/33 }]\n', 'firewall.inbound[0].from'],
    ['a host name as CIDR', 'firewall:\n  outbound:\n    allow: [{ port: 1, to: example.com }]\n', 'firewall.outbound.allow[0].to'],
    ['a list where a mapping belongs', 'firewall: []\n', 'firewall: must be a mapping, got a list'],
    ['a boolean as a string', 'network: { syn_cookies: "yes" }\n', 'network.syn_cookies: must be true or false'],
    ['a bad rate', 'firewall:\n  syn_limit: { rate: fast }\n', 'firewall.syn_limit.rate'],
    ['a limit without limit mode', 'firewall:\n  icmp_echo_limit: { rate: 1/second }\n', 'firewall.icmp_echo_limit: only meaningful'],
    ['a bad USB id', 'usb: { mode: authorized-only, allow: ["1D6B:2"] }\n', 'usb.allow[0]'],
    ['duplicate keys', 'ipv6: leave\nipv6: harden\n', 'not valid YAML'],
  ];
  for (const [what, yaml, message] of rejects) {
    it(`rejects ${what}, naming the field`, () => {
      let error: unknown;
      try { validate(yaml); } catch (err) { error = err; }
      expect(error).toBeInstanceOf(ProfileError);
      expect((error as Error).message).toContain(message);
      expect((error as ProfileError).exitCode).toBe(2);
    });
  }

  it('merges a site profile over its parent: mappings key by key, lists replaced', () => {
    const merged = mergeProfiles(
      { firewall: { inbound: [{ port: 22 }], icmp_echo: 'drop' }, ipv6: 'disable' },
      { firewall: { inbound: [{ port: 8080 }] }, name: 'site' },
    );
    expect(merged).toEqual({ firewall: { inbound: [{ port: 8080 }], icmp_echo: 'drop' }, ipv6: 'disable', name: 'site' });
  });

  it('hashes the effect, not the spelling', () => {
    const a = validate('ipv6: harden\nfirewall: { inbound: [{ port: 22, protocol: tcp }] }\n');
    const b = validate('firewall:\n  inbound:\n    - protocol: tcp\n      port: 22\n');
    expect(profileHash(a)).toBe(profileHash(b));
    expect(profileHash(a)).not.toBe(profileHash(validate('ipv6: disable\n')));
  });
});
