import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../hardening/builtin-profiles.js';
import { parseProfileText } from '../../hardening/load-profile.js';
import { validateProfile } from '../../hardening/profile.js';
import { renderFirewall } from '../../hardening/render-firewall.js';
import { applyText, coveredByTest, parseFilterTable } from '../../hardening/restore-text.js';
import { ProcSysctl } from '../../hardening/sysctl-io.js';

const strict = validateProfile(parseProfileText(BUILTIN_PROFILES.strict!, 't', 'strict'), 't', 'strict');
const baseline = validateProfile(parseProfileText(BUILTIN_PROFILES.baseline!, 't', 'baseline'), 't', 'baseline');

describe('the --test run before the live table is read', () => {
  const rules = renderFirewall(strict, 4)!;
  const tested = applyText(rules, undefined);

  it('covers the text loaded later, whichever jumps are already in place', () => {
    const noJumps = parseFilterTable('*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n');
    const bothJumps = parseFilterTable('*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:IOT-AGENT-IN - [0:0]\n:IOT-AGENT-OUT - [0:0]\n'
      + '-A INPUT -j IOT-AGENT-IN\n-A OUTPUT -j IOT-AGENT-OUT\nCOMMIT\n');
    expect(coveredByTest(applyText(rules, noJumps), tested)).toBe(true);
    expect(coveredByTest(applyText(rules, bothJumps), tested)).toBe(true);
    expect(applyText(rules, bothJumps)).not.toMatch(/^-I /m);
  });

  it('does not cover other rules, or a jump it did not test', () => {
    expect(coveredByTest(applyText(renderFirewall(baseline, 4)!, undefined), tested)).toBe(false);
    expect(coveredByTest(tested.replace('COMMIT', '-I FORWARD 1 -j IOT-AGENT-IN\nCOMMIT'), tested)).toBe(false);
    expect(coveredByTest(tested.replace('-j DROP', '-j ACCEPT'), tested)).toBe(false);
  });
});

describe('sysctls through /proc/sys of the engine\'s own namespace', () => {
  const procSys = mkdtempSync(path.join(tmpdir(), 'iot-agent-procsys-'));
  mkdirSync(path.join(procSys, 'net/ipv4/conf/all'), { recursive: true });
  writeFileSync(path.join(procSys, 'net/ipv4/tcp_syncookies'), '0\n');
  writeFileSync(path.join(procSys, 'net/ipv4/conf/all/rp_filter'), '2\n');
  const io = new ProcSysctl(procSys);

  it('reads each key, null for one the kernel lacks (IPv6 without IPv6)', async () => {
    expect(await io.read(['net.ipv4.tcp_syncookies', 'net.ipv4.conf.all.rp_filter', 'net.ipv6.conf.all.disable_ipv6']))
      .toEqual({ 'net.ipv4.tcp_syncookies': '0', 'net.ipv4.conf.all.rp_filter': '2', 'net.ipv6.conf.all.disable_ipv6': null });
  });

  it('writes each key to its file', async () => {
    await io.write({ 'net.ipv4.tcp_syncookies': '1', 'net.ipv4.conf.all.rp_filter': '1' });
    expect(readFileSync(path.join(procSys, 'net/ipv4/tcp_syncookies'), 'utf8')).toBe('1\n');
    expect(readFileSync(path.join(procSys, 'net/ipv4/conf/all/rp_filter'), 'utf8')).toBe('1\n');
  });

  it('refuses a key that is not a plain dotted path', async () => {
    await expect(io.read(['net/../../etc/passwd'])).rejects.toThrow(/invalid sysctl key/);
    await expect(io.write({ 'net.ipv4..x': '1' })).rejects.toThrow(/invalid sysctl key/);
  });
});
