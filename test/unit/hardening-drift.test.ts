import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { agentLines, compare, type LiveState } from '../../hardening/drift.js';
import { buildPlan, type Plan } from '../../hardening/plan.js';
import type { AppliedRecord } from '../../hardening/records.js';
import { parseFilterTable } from '../../hardening/restore-text.js';
import { profileFromYaml } from '../support/hardening-profiles.js';

const AUTHORIZED = 'sys/bus/usb/devices/usb1/authorized_default';
const SYSCTL_FILE = 'etc/sysctl.d/90-iot-agent-hardening.conf';
const UDEV_FILE = 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules';
const MODPROBE_FILE = 'etc/modprobe.d/iot-agent-usb-storage.conf';
const RULES = ['-A IOT-AGENT-IN -j DROP', '-A IOT-AGENT-OUT -p tcp --dport 443 -j ACCEPT', '-A IOT-AGENT-OUT -j REJECT'];
const SAVED = `*filter\n:INPUT ACCEPT [0:0]\n:IOT-AGENT-IN - [0:0]\n:IOT-AGENT-OUT - [0:0]\n-A INPUT -j IOT-AGENT-IN\n-A OUTPUT -j IOT-AGENT-OUT\n${RULES.join('\n')}\nCOMMIT\n`;
const digest = (content: string) => `${Buffer.byteLength(content)} bytes, sha256 ${createHash('sha256').update(content).digest('hex').slice(0, 16)}`;

/** IPv6 off, authorized-only USB, one sysctl and one sysfs value handed back. */
function planOf(): Plan {
  const profile = profileFromYaml('ipv6: disable\nusb: { mode: authorized-only, allow_network_devices: false }\n', 'lab');
  return buildPlan(profile, 'lab.yaml', { controllers: ['usb1'], networkDevices: [] },
    { sysctls: { 'net.ipv4.ip_forward': '1' }, sysfs: { 'sys/bus/usb/devices/usb2/authorized_default': '1' } });
}

/** The record of `plan` applied, with the firewall as it read back. */
const appliedOf = (plan: Plan, firewall4: string[] = agentLines(parseFilterTable(SAVED))): AppliedRecord =>
  ({ hash: plan.hash, firewall: { 4: firewall4, 6: null } }) as unknown as AppliedRecord;

/** The board exactly as the plan wants it. */
function liveOf(plan: Plan): LiveState {
  return {
    firewall: { 4: SAVED, 6: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n' },
    sysctls: { ...plan.host.sysctls, ...plan.host.restoreSysctls },
    files: Object.fromEntries([...plan.host.files.map((f): [string, string | null] => [f.path, f.content]), ...plan.host.removeFiles.map((f) => [f, null] as const)]),
    sysfs: Object.fromEntries([...plan.host.sysfs, ...plan.host.restoreSysfs].map((e) => [e.path, e.value])),
  };
}

const find = (items: ReturnType<typeof compare>, target: string) => items.find((i) => i.target === target);

describe('drift', () => {
  it('finds none on a board exactly as applied, and lists every item it checked', () => {
    const plan = planOf();
    const items = compare(plan, appliedOf(plan), liveOf(plan), '/r');
    expect(items.filter((i) => !i.ok)).toEqual([]);
    expect(items.slice(0, 6)).toEqual([
      { kind: 'profile', target: 'applied profile hash', ok: true, expected: plan.hash, actual: plan.hash },
      { kind: 'firewall', target: 'iptables IOT-AGENT-IN', ok: true, expected: '1 rules', actual: '1 rules' },
      { kind: 'firewall', target: 'iptables INPUT jump', ok: true, expected: '-A INPUT -j IOT-AGENT-IN', actual: '-A INPUT -j IOT-AGENT-IN' },
      { kind: 'firewall', target: 'iptables IOT-AGENT-OUT', ok: true, expected: '2 rules', actual: '2 rules' },
      { kind: 'firewall', target: 'iptables OUTPUT jump', ok: true, expected: '-A OUTPUT -j IOT-AGENT-OUT', actual: '-A OUTPUT -j IOT-AGENT-OUT' },
      { kind: 'firewall', target: 'ip6tables agent chains', ok: true, expected: '(none)', actual: '(none)' },
    ]);
    expect(items.filter((i) => i.kind === 'sysctl').map((i) => i.target)).toEqual([...Object.keys(plan.host.sysctls), 'net.ipv4.ip_forward']);
    expect(items.filter((i) => i.kind === 'file')).toEqual([
      { kind: 'file', target: `/r/${SYSCTL_FILE}`, ok: true, expected: digest(plan.host.files[0]!.content), actual: digest(plan.host.files[0]!.content) },
      { kind: 'file', target: `/r/${UDEV_FILE}`, ok: true, expected: digest(plan.host.files[1]!.content), actual: digest(plan.host.files[1]!.content) },
      { kind: 'file', target: `/r/${MODPROBE_FILE}`, ok: true, expected: '(absent)', actual: '(absent)' },
    ]);
    expect(items.filter((i) => i.kind === 'sysfs').map((i) => [i.target, i.expected])).toEqual([
      [`/r/${AUTHORIZED}`, '0'], ['/r/sys/bus/usb/devices/usb2/authorized_default', '1'],
    ]);
  });

  it('reports another profile applied, or none', () => {
    const plan = planOf();
    expect(find(compare(plan, null, liveOf(plan), '/'), 'applied profile hash')).toMatchObject({ ok: false, actual: '(none recorded)' });
    const other = { ...appliedOf(plan), hash: 'f'.repeat(64) };
    const items = compare(plan, other, liveOf(plan), '/');
    expect(find(items, 'applied profile hash')).toMatchObject({ ok: false, expected: plan.hash, actual: 'f'.repeat(64) });
    expect(find(items, 'iptables agent chains')).toEqual({
      kind: 'firewall', target: 'iptables agent chains', ok: false, expected: 'profile lab as applied', actual: 'no record of this profile being applied',
    });
  });

  it('names the rules missing from a chain and the ones nobody asked for', () => {
    const plan = planOf();
    const live = { ...liveOf(plan), firewall: { 4: SAVED.replace('-A IOT-AGENT-OUT -p tcp --dport 443 -j ACCEPT', '-A IOT-AGENT-OUT -p tcp --dport 22 -j ACCEPT'), 6: null } };
    expect(find(compare(plan, appliedOf(plan), live, '/'), 'iptables IOT-AGENT-OUT')).toMatchObject({
      ok: false, expected: '2 rules',
      actual: '2 rules; missing: -A IOT-AGENT-OUT -p tcp --dport 443 -j ACCEPT; unexpected: -A IOT-AGENT-OUT -p tcp --dport 22 -j ACCEPT',
    });
    const fewer = { ...liveOf(plan), firewall: { 4: SAVED.replace('-A IOT-AGENT-OUT -p tcp --dport 443 -j ACCEPT\n', ''), 6: null } };
    expect(find(compare(plan, appliedOf(plan), fewer, '/'), 'iptables IOT-AGENT-OUT')).toMatchObject({ ok: false, expected: '2 rules', actual: '1 rules; missing: -A IOT-AGENT-OUT -p tcp --dport 443 -j ACCEPT' });
  });

  it('lists several missing or unexpected rules apart', () => {
    const plan = planOf();
    const live = { ...liveOf(plan), firewall: { 4: SAVED.replace(`${RULES[1]}\n${RULES[2]}\n`, '-A IOT-AGENT-OUT -p udp -j ACCEPT\n-A IOT-AGENT-OUT -j DROP\n'), 6: null } };
    expect(find(compare(plan, appliedOf(plan), live, '/'), 'iptables IOT-AGENT-OUT')).toMatchObject({
      actual: `2 rules; missing: ${RULES[1]} | ${RULES[2]}; unexpected: -A IOT-AGENT-OUT -p udp -j ACCEPT | -A IOT-AGENT-OUT -j DROP`,
    });
  });

  it('notices rules in another order', () => {
    const plan = planOf();
    const live = { ...liveOf(plan), firewall: { 4: SAVED.replace(`${RULES[1]}\n${RULES[2]}`, `${RULES[2]}\n${RULES[1]}`), 6: null } };
    expect(find(compare(plan, appliedOf(plan), live, '/'), 'iptables IOT-AGENT-OUT')).toMatchObject({ ok: false, expected: '2 rules', actual: '2 rules; reordered' });
  });

  it('notices a missing jump', () => {
    const plan = planOf();
    const live = { ...liveOf(plan), firewall: { 4: SAVED.replace('-A INPUT -j IOT-AGENT-IN\n', ''), 6: null } };
    expect(find(compare(plan, appliedOf(plan), live, '/'), 'iptables INPUT jump')).toMatchObject({ ok: false, expected: '-A INPUT -j IOT-AGENT-IN', actual: '(missing)' });
  });

  it('counts agent chains left in a family the profile does not manage', () => {
    const plan = planOf();
    const live = { ...liveOf(plan), firewall: { 4: SAVED, 6: SAVED } };
    expect(find(compare(plan, appliedOf(plan), live, '/'), 'ip6tables agent chains')).toMatchObject({ ok: false, expected: '(none)', actual: '7 lines' });
  });

  it('reports a family it manages but cannot read, and skips one it does not manage', () => {
    const plan = planOf();
    const unreadable = compare(plan, appliedOf(plan), { ...liveOf(plan), firewall: { 4: null, 6: null } }, '/');
    expect(find(unreadable, 'iptables')).toEqual({ kind: 'firewall', target: 'iptables', ok: false, expected: 'readable', actual: 'iptables-save failed' });
    expect(unreadable.filter((i) => i.target.startsWith('ip6tables'))).toEqual([]);
    const v6 = buildPlan(profileFromYaml('ipv6: harden\n'), 't', { controllers: [], networkDevices: [] }, null);
    expect(find(compare(v6, null, { ...liveOf(v6), firewall: { 4: SAVED, 6: null } }, '/'), 'ip6tables'))
      .toMatchObject({ ok: false, actual: 'ip6tables-save failed' });
  });

  it('takes an IPv6 sysctl the kernel lacks as set, but not an IPv4 one', () => {
    const plan = planOf();
    const live = liveOf(plan);
    live.sysctls['net.ipv6.conf.all.disable_ipv6'] = null;
    live.sysctls['net.ipv4.tcp_syncookies'] = null;
    delete live.sysctls['net.ipv4.ip_forward'];
    const items = compare(plan, appliedOf(plan), live, '/');
    expect(find(items, 'net.ipv6.conf.all.disable_ipv6')).toMatchObject({ ok: true, expected: '1', actual: '1' });
    expect(find(items, 'net.ipv4.tcp_syncookies')).toMatchObject({ ok: false, expected: '1', actual: '(absent)' });
    expect(find(items, 'net.ipv4.ip_forward')).toMatchObject({ ok: false, expected: '1', actual: '(absent)' });
  });

  it('still reports an IPv6 sysctl the kernel has with another value', () => {
    const plan = planOf();
    const live = liveOf(plan);
    live.sysctls['net.ipv6.conf.all.disable_ipv6'] = '0';
    expect(find(compare(plan, appliedOf(plan), live, '/'), 'net.ipv6.conf.all.disable_ipv6')).toMatchObject({ ok: false, expected: '1', actual: '0' });
  });

  it('notices a changed sysctl, a changed, missing or leftover file, and a changed or missing sysfs value', () => {
    const plan = planOf();
    const live = liveOf(plan);
    live.sysctls['net.ipv4.tcp_syncookies'] = '0';
    live.files[SYSCTL_FILE] = 'edited\n';
    live.files[UDEV_FILE] = null;
    live.files[MODPROBE_FILE] = 'install usb-storage /bin/true\n';
    live.sysfs[AUTHORIZED] = '1';
    delete live.sysfs['sys/bus/usb/devices/usb2/authorized_default'];
    const bad = compare(plan, appliedOf(plan), live, '/r').filter((i) => !i.ok).map((i) => [i.target, i.actual]);
    expect(bad).toEqual([
      ['net.ipv4.tcp_syncookies', '0'],
      [`/r/${SYSCTL_FILE}`, digest('edited\n')],
      [`/r/${UDEV_FILE}`, '(absent)'],
      [`/r/${MODPROBE_FILE}`, 'present'],
      [`/r/${AUTHORIZED}`, '1'],
      ['/r/sys/bus/usb/devices/usb2/authorized_default', '(absent)'],
    ]);
  });
});

describe('the agent\'s part of a filter table', () => {
  it('is each declared agent chain with its rules, then the jumps into them', () => {
    const t = parseFilterTable('*filter\n:INPUT ACCEPT [0:0]\n:IOT-AGENT-OUT - [0:0]\n-A INPUT -s 192.0.2.1/32 -j ACCEPT\n-A IOT-AGENT-OUT -j REJECT\n'
      + '-A IOT-AGENT-IN -j DROP\n-A OUTPUT -j IOT-AGENT-OUT\nCOMMIT\n');
    expect(agentLines(t)).toEqual([':IOT-AGENT-OUT', '-A IOT-AGENT-OUT -j REJECT', '-A OUTPUT -j IOT-AGENT-OUT']);
    expect(agentLines(parseFilterTable(''))).toEqual([]);
  });
});
