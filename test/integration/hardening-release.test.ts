import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { NetnsPair, requireHardeningTools } from '../support/netns.js';

// Every key a profile once set goes back to its value from before the agent when the next
// profile no longer manages it, and verify holds the board to that: sysctls in a network
// namespace of the test's own, USB authorisation on a prepared root with a fake sysfs.
describe('switching from strict to baseline, in a namespace and on a prepared root', () => {
  let pair: NetnsPair;
  let root: string;
  let engine: HardeningEngine;
  const sysctl = async (key: string) => (await pair.exec(pair.device, ['sysctl', '-n', key])).stdout.trim();
  const authorizedDefault = (c: string) => readFileSync(path.join(root, 'sys/bus/usb/devices', c, 'authorized_default'), 'utf8').trim();

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-release-'));
    for (const c of ['usb1', 'usb2']) {
      mkdirSync(path.join(root, 'sys/bus/usb/devices', c), { recursive: true });
      writeFileSync(path.join(root, 'sys/bus/usb/devices', c, 'authorized_default'), '1\n');
    }
    // The board's uplink: an LTE modem (2c7c:0125) on usb1 port 1, its network interface wwan0.
    const modem = path.join(root, 'sys/devices/platform/ehci/usb1/1-1');
    mkdirSync(path.join(modem, '1-1:1.4/net/wwan0'), { recursive: true });
    writeFileSync(path.join(modem, 'idVendor'), '2c7c\n');
    writeFileSync(path.join(modem, 'idProduct'), '0125\n');
    mkdirSync(path.join(root, 'sys/class/net/wwan0'), { recursive: true });
    symlinkSync(path.join(modem, '1-1:1.4'), path.join(root, 'sys/class/net/wwan0/device'));
    engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
  });
  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('strict: IPv6 off, USB authorized-only, with the board\'s modem and network-class devices still authorized', async () => {
    expect(await sysctl('net.ipv6.conf.all.disable_ipv6')).toBe('0');
    await engine.apply(await loadProfile('strict', root));
    expect(await sysctl('net.ipv6.conf.all.disable_ipv6')).toBe('1');
    expect(await sysctl('net.ipv6.conf.default.disable_ipv6')).toBe('1');
    expect(authorizedDefault('usb1')).toBe('0');
    const rules = readFileSync(path.join(root, 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules'), 'utf8');
    expect(rules).toContain('ATTR{idVendor}=="2c7c", ATTR{idProduct}=="0125", ATTR{authorized}="1"');
    expect(rules).toContain('ATTR{bDeviceClass}=="02", ATTR{authorized}="1"');
  });

  it('baseline afterwards leaves no stale sysctl or USB setting, and verifies clean', async () => {
    await engine.apply(await loadProfile('baseline', root));
    expect(await sysctl('net.ipv6.conf.all.disable_ipv6')).toBe('0');
    expect(await sysctl('net.ipv6.conf.default.disable_ipv6')).toBe('0');
    expect(authorizedDefault('usb1')).toBe('1');
    expect(authorizedDefault('usb2')).toBe('1');
    const report = await engine.verify();
    expect(report.items.filter((i) => !i.ok)).toEqual([]);
    expect(report.items.map((i) => i.target)).toEqual(expect.arrayContaining([
      'net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.default.disable_ipv6', path.join(root, 'sys/bus/usb/devices/usb1/authorized_default'),
    ]));
  });

  it('verify sees a hand-made change to each key baseline handed back', async () => {
    // (`all` would carry `default` along with it in the kernel.)
    await pair.exec(pair.device, ['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
    writeFileSync(path.join(root, 'sys/bus/usb/devices/usb2/authorized_default'), '0\n');
    const drifted = (await engine.verify()).items.filter((i) => !i.ok);
    expect(drifted.map((i) => [i.kind, i.target.replace(root, ''), i.expected, i.actual])).toEqual([
      ['sysctl', 'net.ipv6.conf.default.disable_ipv6', '0', '1'],
      ['sysfs', '/sys/bus/usb/devices/usb2/authorized_default', '1', '0'],
    ]);
    // And an apply repairs them.
    expect((await engine.apply(await loadProfile('baseline', root))).changed).toBe(true);
    expect((await engine.verify()).drift).toBe(0);
  });

  it('strict again, with usb.allow_network_devices: false, authorizes nothing but the allow list', async () => {
    writeFileSync(path.join(root, 'no-net-usb.yaml'), 'extends: strict\nusb:\n  allow_network_devices: false\n');
    await engine.apply(await loadProfile(path.join(root, 'no-net-usb.yaml'), root));
    const rules = readFileSync(path.join(root, 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules'), 'utf8');
    expect(rules).not.toMatch(/idVendor|bDeviceClass/);
  });
});
