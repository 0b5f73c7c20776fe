import { describe, expect, it } from 'vitest';
import { buildPlan, formatPlan, planJson, planSysctls, planSysfs } from '../../hardening/plan.js';
import { profileHash, validateProfile } from '../../hardening/profile.js';
import { renderFirewall } from '../../hardening/render-firewall.js';
import { renderHost } from '../../hardening/render-host.js';
import { applyText, parseFilterTable } from '../../hardening/restore-text.js';
import { builtinProfile } from '../support/hardening-profiles.js';

const usb1 = { controllers: ['usb1'], networkDevices: [] };
const AUTHORIZED_DEFAULT = (n: number) => `sys/bus/usb/devices/usb${n}/authorized_default`;
/** IPv6 off, authorized-only USB on usb1, and originals recorded by earlier profiles. */
const lab = () => {
  const profile = validateProfile({ name: 'lab', ipv6: 'disable', usb: { mode: 'authorized-only', allow_network_devices: false } }, 'lab.yaml', 'lab');
  const originals = {
    sysctls: { 'net.ipv6.conf.all.accept_ra': '1', 'net.ipv4.tcp_syncookies': '0', 'net.ipv4.conf.all.forwarding': null },
    sysfs: { [AUTHORIZED_DEFAULT(2)]: '1', [AUTHORIZED_DEFAULT(1)]: '1', [AUTHORIZED_DEFAULT(3)]: null },
  };
  return { profile, plan: buildPlan(profile, '/etc/iot-agent/profiles/lab.yaml', usb1, originals) };
};

describe('a plan', () => {
  it('holds the profile\'s name, hash and origin, its rules per family and its host changes', () => {
    const profile = builtinProfile('baseline');
    const plan = buildPlan(profile, 'builtin:baseline', usb1, null);
    expect(plan).toEqual({
      profile: 'baseline', hash: profileHash(profile), origin: 'builtin:baseline',
      firewall: { 4: renderFirewall(profile, 4), 6: renderFirewall(profile, 6) }, host: renderHost(profile, usb1),
    });
  });

  it('hands back the recorded original of each key it no longer sets, and leaves keys without a recorded value alone', () => {
    const { plan } = lab();
    expect(plan.host.restoreSysctls).toEqual({ 'net.ipv6.conf.all.accept_ra': '1' });
    expect(plan.host.restoreSysfs).toEqual([{ path: AUTHORIZED_DEFAULT(2), value: '1' }]);
  });

  it('writes the profile\'s values and the handed-back ones', () => {
    const { plan } = lab();
    expect(planSysctls(plan)).toEqual({ ...plan.host.sysctls, 'net.ipv6.conf.all.accept_ra': '1' });
    expect(planSysfs(plan)).toEqual([{ path: AUTHORIZED_DEFAULT(1), value: '0' }, { path: AUTHORIZED_DEFAULT(2), value: '1' }]);
  });
});

describe('keys a profile no longer manages', () => {
  const originals = () => ({
    sysctls: { 'net.ipv6.conf.all.disable_ipv6': '0', 'net.ipv6.conf.default.disable_ipv6': '0', 'net.ipv4.tcp_syncookies': '0', 'net.ipv6.conf.all.accept_ra': null },
    sysfs: { [AUTHORIZED_DEFAULT(1)]: '1' },
  });

  it('go back to their value before the agent first set them (baseline after strict), and plan says so', () => {
    const plan = buildPlan(builtinProfile('baseline'), 'builtin:baseline', usb1, originals());
    expect(plan.host.restoreSysctls).toEqual({ 'net.ipv6.conf.all.disable_ipv6': '0', 'net.ipv6.conf.default.disable_ipv6': '0' });
    expect(plan.host.restoreSysfs).toEqual([{ path: AUTHORIZED_DEFAULT(1), value: '1' }]);
    expect(formatPlan(plan, '/')).toContain('== no longer managed: back to the value before the agent first set it\nnet.ipv6.conf.all.disable_ipv6 = 0');
  });

  it('are not touched while the profile manages them, or when they never were', () => {
    const plan = buildPlan(builtinProfile('strict'), 'builtin:strict', usb1, originals());
    expect(plan.host.restoreSysctls).toEqual({});
    expect(plan.host.restoreSysfs).toEqual([]);
    expect(buildPlan(builtinProfile('baseline'), 'builtin:baseline', usb1, null).host.restoreSysctls).toEqual({});
  });
});

describe('the plan as JSON', () => {
  it('gives the restore texts, every path under the root, and the values handed back', () => {
    const { profile, plan } = lab();
    const json = planJson(plan, '/tmp/r');
    expect(json).toEqual({
      profile: 'lab', hash: plan.hash, origin: '/etc/iot-agent/profiles/lab.yaml',
      iptablesRestore: applyText(renderFirewall(profile, 4)!, undefined),
      ip6tablesRestore: null,
      ip6tablesRemoveAgentChains: true,
      sysctls: plan.host.sysctls,
      files: plan.host.files.map((f) => ({ path: `/tmp/r/${f.path}`, content: f.content })),
      removeFiles: ['/tmp/r/etc/modprobe.d/iot-agent-usb-storage.conf'],
      sysfs: [{ path: `/tmp/r/${AUTHORIZED_DEFAULT(1)}`, value: '0' }],
      restore: { sysctls: { 'net.ipv6.conf.all.accept_ra': '1' }, sysfs: [{ path: `/tmp/r/${AUTHORIZED_DEFAULT(2)}`, value: '1' }] },
    });
  });

  it('shows IPv6 rules for ipv6: harden, and inserts only the jumps the live tables lack', () => {
    const plan = buildPlan(builtinProfile('baseline'), 'builtin:baseline', usb1, null);
    const live = parseFilterTable('*filter\n:IOT-AGENT-IN - [0:0]\n-A INPUT -j IOT-AGENT-IN\nCOMMIT\n');
    const json = planJson(plan, '/', { 4: live, 6: live });
    expect(json.ip6tablesRemoveAgentChains).toBe(false);
    expect(json.iptablesRestore).toBe(applyText(plan.firewall[4]!, live));
    expect(json.ip6tablesRestore).toBe(applyText(plan.firewall[6]!, live));
    expect(json.ip6tablesRestore).not.toContain('-I INPUT');
  });
});

describe('the plan for a person', () => {
  it('shows each section with exactly what will be loaded or written', () => {
    const { plan } = lab();
    const root = '/tmp/r';
    const sysctls = Object.entries(plan.host.sysctls).map(([k, v]) => `${k} = ${v}`);
    expect(formatPlan(plan, root)).toBe([
      `Profile lab (/etc/iot-agent/profiles/lab.yaml), sha256 ${plan.hash}`, '',
      '== iptables-restore --noflush (filter table; only the IOT-AGENT-* chains and their jumps)',
      applyText(plan.firewall[4]!, undefined).trimEnd(), '',
      '== ip6tables-restore --noflush', '(no IPv6 rules: the agent\'s IPv6 chains are removed if present)', '',
      '== sysctl (live, in this network namespace)', ...sysctls, '',
      `== write ${root}/etc/sysctl.d/90-iot-agent-hardening.conf`, plan.host.files[0]!.content.trimEnd(), '',
      `== write ${root}/etc/udev/rules.d/70-iot-agent-usb-authorized.rules`, plan.host.files[1]!.content.trimEnd(), '',
      '== remove if present', `${root}/etc/modprobe.d/iot-agent-usb-storage.conf`, '',
      '== sysfs', `${root}/${AUTHORIZED_DEFAULT(1)} = 0`, '',
      '== no longer managed: back to the value before the agent first set it',
      'net.ipv6.conf.all.accept_ra = 1', `${root}/${AUTHORIZED_DEFAULT(2)} = 1`, '',
      'Jump rules are inserted at the top of INPUT/OUTPUT only where missing; no other chain or rule is touched.', '',
    ].join('\n'));
  });

  it('shows the IPv6 rules when there are some, says when sysfs is untouched, and has no hand-back section without one', () => {
    const plan = buildPlan(builtinProfile('baseline'), 'builtin:baseline', usb1, null);
    const text = formatPlan(plan, '/');
    expect(text).toContain(`== ip6tables-restore --noflush\n${applyText(plan.firewall[6]!, undefined).trimEnd()}\n\n== sysctl`);
    expect(text).toContain('== sysfs\n(nothing)\n\nJump rules');
    expect(text).not.toContain('no longer managed');
  });
});
