import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../hardening/builtin-profiles.js';
import { parseProfileText } from '../../hardening/load-profile.js';
import { buildPlan, formatPlan } from '../../hardening/plan.js';
import { validateProfile, type Profile } from '../../hardening/profile.js';
import { INPUT_CHAIN, OUTPUT_CHAIN, renderFirewall } from '../../hardening/render-firewall.js';
import { renderHost, renderSysctls } from '../../hardening/render-host.js';
import { applyText, parseFilterTable, revertText } from '../../hardening/restore-text.js';

const profile = (yaml: string): Profile => validateProfile(parseProfileText(yaml, 't', 't'), 't', 't');
const strict = profile(BUILTIN_PROFILES.strict!);
const baseline = profile(BUILTIN_PROFILES.baseline!);

describe('firewall rendering', () => {
  const rules = renderFirewall(strict, 4)!.chains[INPUT_CHAIN]!;
  const index = (name: string) => rules.findIndex((r) => r.includes(`--comment iot-agent:${name} `));

  it('names every rule, so its counters can be read by name', () => {
    for (const r of [...rules, ...renderFirewall(strict, 4)!.chains[OUTPUT_CHAIN]!]) expect(r).toMatch(/-m comment --comment iot-agent:[\w.-]+ -j /);
  });

  it('drops scans before conntrack can file them as INVALID, and allows loopback first', () => {
    expect(rules[0]).toBe('-i lo -m comment --comment iot-agent:loopback -j ACCEPT');
    for (const scan of ['drop-null', 'drop-xmas-all', 'drop-xmas-fin-psh-urg', 'drop-syn-fin', 'drop-syn-rst']) {
      expect(index(scan)).toBeGreaterThan(0);
      expect(index(scan)).toBeLessThan(index('drop-invalid'));
    }
    expect(rules[index('drop-xmas-all')]).toContain('--tcp-flags ALL ALL');
    expect(rules[index('drop-xmas-fin-psh-urg')]).toContain('--tcp-flags ALL FIN,PSH,URG');
    expect(rules[index('drop-syn-rst')]).toContain('--tcp-flags SYN,RST SYN,RST');
  });

  it('allows ICMP types 3 and 11 only as RELATED, and drops echo requests in strict', () => {
    expect(rules[index('related-destination-unreachable')]).toBe('-p icmp --icmp-type destination-unreachable -m conntrack --ctstate RELATED -m comment --comment iot-agent:related-destination-unreachable -j ACCEPT');
    expect(rules[index('related-time-exceeded')]).toContain('--icmp-type time-exceeded -m conntrack --ctstate RELATED');
    expect(rules[index('drop-echo')]).toBe('-p icmp --icmp-type echo-request -m comment --comment iot-agent:drop-echo -j DROP');
    expect(index('echo-limited')).toBe(-1);
  });

  it('rate-limits echo requests when the profile says limit', () => {
    const base = renderFirewall(baseline, 4)!.chains[INPUT_CHAIN]!;
    expect(base.find((r) => r.includes('echo-limited'))).toContain('-m limit --limit 2/second --limit-burst 5');
  });

  it('limits SYNs per source with hashlimit and ends inbound with a drop', () => {
    expect(rules[index('drop-syn-flood')]).toContain('--hashlimit-above 20/second --hashlimit-burst 40 --hashlimit-mode srcip --hashlimit-name iot-agent-syn4');
    expect(rules.at(-1)).toBe('-m comment --comment iot-agent:default-deny-in -j DROP');
  });

  it('allows outbound DNS, NTP, 443 and 8883 plus additions, and rejects the rest', () => {
    const p = profile('firewall:\n  outbound:\n    allow: [{ port: 5671, to: 203.0.113.0/24 }, { port: 9000, to: "2001:db8::/32" }]\n');
    const out = renderFirewall(p, 4)!.chains[OUTPUT_CHAIN]!.join('\n');
    for (const needle of ['-p udp --dport 53 ', '-p tcp --dport 53 ', '-p udp --dport 123 ', '-p tcp --dport 443 ', '-p tcp --dport 8883 ',
      '-d 203.0.113.0/24 -p tcp --dport 5671 ']) expect(out).toContain(needle);
    expect(out).not.toContain('2001:db8');
    expect(renderFirewall(p, 6)!.chains[OUTPUT_CHAIN]!.join('\n')).toContain('-d 2001:db8::/32 -p tcp --dport 9000 ');
    expect(out.split('\n').at(-1)).toBe('-m comment --comment iot-agent:default-deny-out -j REJECT');
  });

  it('renders IPv6 rules only for ipv6: harden, without router advertisements or redirects', () => {
    expect(renderFirewall(strict, 6)).toBeUndefined();
    const v6 = renderFirewall(baseline, 6)!.chains[INPUT_CHAIN]!;
    expect(v6.find((r) => r.includes('router-advertisement'))).toMatch(/-j DROP$/);
    expect(v6.find((r) => r.includes('--icmpv6-type redirect'))).toMatch(/-j DROP$/);
    expect(v6.findIndex((r) => r.includes('neighbour-solicitation'))).toBeLessThan(v6.findIndex((r) => r.includes('drop-invalid')));
  });
});

describe('restore text', () => {
  const desired = renderFirewall(strict, 4)!;
  const foreign = '*filter\n:INPUT ACCEPT [10:20]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n-A INPUT -s 192.0.2.1/32 -j ACCEPT\n-A FORWARD -j DOCKER\nCOMMIT\n';

  it('declares only the agent chains and inserts the jumps where missing', () => {
    const text = applyText(desired, parseFilterTable(foreign));
    expect(text.split('\n').filter((l) => l.startsWith(':'))).toEqual([':IOT-AGENT-IN - [0:0]', ':IOT-AGENT-OUT - [0:0]']);
    expect(text).toContain('-I INPUT 1 -j IOT-AGENT-IN\n-I OUTPUT 1 -j IOT-AGENT-OUT\nCOMMIT\n');
    expect(text).not.toMatch(/DOCKER|192\.0\.2\.1|^-F|^-X/m);
  });

  it('does not insert a jump that is already there', () => {
    const live = parseFilterTable(foreign.replace('-A INPUT -s', '-A INPUT -j IOT-AGENT-IN\n-A INPUT -s').replace(':DOCKER', ':IOT-AGENT-IN - [0:0]\n:DOCKER'));
    expect(applyText(desired, live)).not.toContain('-I INPUT');
    expect(applyText(desired, live)).toContain('-I OUTPUT 1 -j IOT-AGENT-OUT');
  });

  it('reverts to a table without agent chains by deleting jumps, then the chains', () => {
    const previous = parseFilterTable(foreign);
    const live = parseFilterTable(`*filter\n:INPUT ACCEPT [0:0]\n:IOT-AGENT-IN - [0:0]\n:IOT-AGENT-OUT - [0:0]\n-A INPUT -j IOT-AGENT-IN\n-A INPUT -s 192.0.2.1/32 -j ACCEPT\n-A OUTPUT -j IOT-AGENT-OUT\n-A IOT-AGENT-IN -j DROP\nCOMMIT\n`);
    expect(revertText(previous, live)).toBe('*filter\n:IOT-AGENT-IN - [0:0]\n:IOT-AGENT-OUT - [0:0]\n-D INPUT -j IOT-AGENT-IN\n-D OUTPUT -j IOT-AGENT-OUT\n-X IOT-AGENT-IN\n-X IOT-AGENT-OUT\nCOMMIT\n');
  });

  it('reverts to earlier agent rules and jump positions', () => {
    const previous = parseFilterTable('*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -s 192.0.2.1/32 -j ACCEPT\n-A INPUT -j IOT-AGENT-IN\n-A IOT-AGENT-IN -j RETURN\nCOMMIT\n');
    const live = parseFilterTable('*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -j IOT-AGENT-IN\n-A INPUT -s 192.0.2.1/32 -j ACCEPT\n-A IOT-AGENT-IN -j DROP\nCOMMIT\n');
    expect(revertText(previous, live)).toBe('*filter\n:IOT-AGENT-IN - [0:0]\n-D INPUT -j IOT-AGENT-IN\n-A IOT-AGENT-IN -j RETURN\n-I INPUT 2 -j IOT-AGENT-IN\nCOMMIT\n');
  });

  it('puts a jump back at the end of its chain when the foreign rules above it have gone since', () => {
    // The jump was second, behind a fail2ban-style rule that was removed before the rollback.
    const previous = parseFilterTable('*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -s 192.0.2.1/32 -j DROP\n-A INPUT -j IOT-AGENT-IN\n-A IOT-AGENT-IN -j RETURN\nCOMMIT\n');
    const live = parseFilterTable('*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -j IOT-AGENT-IN\n-A IOT-AGENT-IN -j DROP\nCOMMIT\n');
    expect(revertText(previous, live)).toContain('-D INPUT -j IOT-AGENT-IN\n-A IOT-AGENT-IN -j RETURN\n-I INPUT 1 -j IOT-AGENT-IN\n');
    // With one foreign rule left of two above it: second place is still there.
    const two = parseFilterTable('*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -s 192.0.2.1/32 -j DROP\n-A INPUT -s 192.0.2.2/32 -j DROP\n-A INPUT -s 192.0.2.3/32 -j DROP\n-A INPUT -j IOT-AGENT-IN\nCOMMIT\n');
    const oneLeft = parseFilterTable('*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -j IOT-AGENT-IN\n-A INPUT -s 192.0.2.3/32 -j DROP\nCOMMIT\n');
    expect(revertText(two, oneLeft)).toContain('-I INPUT 2 -j IOT-AGENT-IN\n');
  });

  it('reads counters out of iptables-save -c output', () => {
    const t = parseFilterTable('*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n*filter\n:INPUT ACCEPT [1:2]\n[5:300] -A INPUT -j ACCEPT\nCOMMIT\n');
    expect(t.rules).toEqual(['-A INPUT -j ACCEPT']);
    expect([...t.chains]).toEqual([['INPUT', 'ACCEPT']]);
  });
});

describe('host rendering', () => {
  it('sets the network sysctls, each overridable', () => {
    expect(renderSysctls(strict)).toMatchObject({
      'net.ipv4.icmp_ignore_bogus_error_responses': '1', 'net.ipv4.icmp_echo_ignore_broadcasts': '1', 'net.ipv4.tcp_syncookies': '1',
      'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.conf.default.accept_redirects': '0', 'net.ipv4.conf.all.send_redirects': '0',
      'net.ipv4.conf.all.accept_source_route': '0', 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1',
    });
    const loose = renderSysctls(profile('ipv6: leave\nnetwork: { reverse_path_filter: loose, syn_cookies: false }\n'));
    expect(loose['net.ipv4.conf.all.rp_filter']).toBe('2');
    expect(loose['net.ipv4.tcp_syncookies']).toBe('0');
    expect(Object.keys(loose).some((k) => k.startsWith('net.ipv6.'))).toBe(false);
    expect(renderSysctls(baseline)['net.ipv6.conf.all.accept_ra']).toBe('0');
  });

  it('blocks USB storage with install-to-false and blacklist lines', () => {
    const host = renderHost(baseline, { controllers: ['usb1'], networkDevices: [] });
    const conf = host.files.find((f) => f.path.startsWith('etc/modprobe.d/'))!.content;
    expect(conf).toContain('install usb-storage /bin/false\ninstall uas /bin/false\nblacklist usb-storage\nblacklist uas\n');
    expect(host.sysfs).toEqual([]);
    expect(host.removeFiles).toEqual(['etc/udev/rules.d/70-iot-agent-usb-authorized.rules']);
  });

  it('authorizes only allow-listed USB devices on every host controller', () => {
    const host = renderHost(profile('usb: { mode: authorized-only, allow: ["0483:5740"] }\n'), { controllers: ['usb2', 'usb1'], networkDevices: [] });
    expect(host.sysfs).toEqual([
      { path: 'sys/bus/usb/devices/usb1/authorized_default', value: '0' },
      { path: 'sys/bus/usb/devices/usb2/authorized_default', value: '0' },
    ]);
    expect(host.files.find((f) => f.path.includes('udev'))!.content)
      .toContain('ATTR{idVendor}=="0483", ATTR{idProduct}=="5740", ATTR{authorized}="1"');
  });

  it('prints a plan with every section', () => {
    const text = formatPlan(buildPlan(strict, 'builtin:strict', { controllers: ['usb1'], networkDevices: [] }, null), '/');
    for (const section of ['== iptables-restore --noflush', '== ip6tables-restore --noflush', '== sysctl', '== write /etc/sysctl.d/90-iot-agent-hardening.conf',
      '== write /etc/udev/rules.d/70-iot-agent-usb-authorized.rules', '== sysfs', '/sys/bus/usb/devices/usb1/authorized_default = 0']) {
      expect(text).toContain(section);
    }
  });
});

describe('USB authorized-only keeps the board\'s network devices', () => {
  const usb = { controllers: ['usb1'], networkDevices: ['0bda:8153', '2c7c:0125'] };
  const udev = (yaml: string) => renderHost(profile(yaml), usb).files.find((f) => f.path.includes('udev'))!.content;

  it('authorizes communications and wireless-controller class devices and the devices behind the network interfaces, by default', () => {
    const rules = udev('usb: { mode: authorized-only, allow: ["0483:5740"] }\n');
    expect(rules).toContain('ATTR{bDeviceClass}=="02", ATTR{authorized}="1"');
    expect(rules).toContain('ATTR{bDeviceClass}=="e0", ATTR{authorized}="1"');
    expect(rules).toContain('ATTR{idVendor}=="0bda", ATTR{idProduct}=="8153", ATTR{authorized}="1"');
    expect(rules).toContain('ATTR{idVendor}=="2c7c", ATTR{idProduct}=="0125", ATTR{authorized}="1"');
    expect(rules).toContain('ATTR{idVendor}=="0483", ATTR{idProduct}=="5740", ATTR{authorized}="1"');
    expect(udev(BUILTIN_PROFILES.strict!)).toContain('ATTR{idVendor}=="2c7c"');
  });

  it('does not when the profile says usb.allow_network_devices: false', () => {
    const rules = udev('usb: { mode: authorized-only, allow_network_devices: false }\n');
    expect(rules).not.toMatch(/bDeviceClass|idVendor/);
  });

  it('keeps the hash of a profile that does not name the key, and refuses a value that is not a boolean', () => {
    const without = profile('usb: { mode: authorized-only }\n');
    expect(without.usb).toEqual({ mode: 'authorized-only', allow: [] });
    expect(profile('usb: { mode: authorized-only, allow_network_devices: true }\n').usb.allowNetworkDevices).toBe(true);
    expect(() => profile('usb: { allow_network_devices: "no" }\n')).toThrow(/usb\.allow_network_devices: must be true or false/);
  });
});

describe('keys a profile no longer manages', () => {
  const usb = { controllers: ['usb1'], networkDevices: [] };
  const originals = {
    sysctls: { 'net.ipv6.conf.all.disable_ipv6': '0', 'net.ipv6.conf.default.disable_ipv6': '0', 'net.ipv4.tcp_syncookies': '0', 'net.ipv6.conf.all.accept_ra': null },
    sysfs: { 'sys/bus/usb/devices/usb1/authorized_default': '1' },
  };

  it('go back to their value before the agent first set them (baseline after strict), and plan says so', () => {
    const plan = buildPlan(baseline, 'builtin:baseline', usb, originals);
    expect(plan.host.restoreSysctls).toEqual({ 'net.ipv6.conf.all.disable_ipv6': '0', 'net.ipv6.conf.default.disable_ipv6': '0' });
    expect(plan.host.restoreSysfs).toEqual([{ path: 'sys/bus/usb/devices/usb1/authorized_default', value: '1' }]);
    expect(formatPlan(plan, '/')).toContain('== no longer managed: back to the value before the agent first set it\nnet.ipv6.conf.all.disable_ipv6 = 0');
  });

  it('are not touched while the profile manages them, or when they never were', () => {
    const plan = buildPlan(strict, 'builtin:strict', usb, originals);
    expect(plan.host.restoreSysctls).toEqual({});
    expect(plan.host.restoreSysfs).toEqual([]);
    expect(buildPlan(baseline, 'builtin:baseline', usb, null).host.restoreSysctls).toEqual({});
  });
});
