import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { filterTable, NetnsPair, requireHardeningTools } from '../support/netns.js';

const run = promisify(execFile);

// USB and file parts on a prepared root (a directory tree with /etc and a fake sysfs);
// the firewall part still goes into a namespace of the test's own, never the host.
describe('USB policy and persisted files on a prepared root', () => {
  let pair: NetnsPair;
  let root: string;
  const controllers = ['usb1', 'usb2', 'usb3'];

  beforeAll(async () => {
    requireHardeningTools(['modprobe', 'iptables-nft-save', 'iptables-nft-restore', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-usb-'));
    for (const c of controllers) {
      mkdirSync(path.join(root, 'sys/bus/usb/devices', c), { recursive: true });
      writeFileSync(path.join(root, 'sys/bus/usb/devices', c, 'authorized_default'), '1\n');
    }
    // A device (not a host controller) must be left alone.
    mkdirSync(path.join(root, 'sys/bus/usb/devices/1-1'), { recursive: true });
    mkdirSync(path.join(root, 'etc/iot-agent/profiles'), { recursive: true });
    writeFileSync(path.join(root, 'etc/iot-agent/profiles/kiosk.yaml'),
      'extends: strict\nusb:\n  allow: ["046d:c52b", "1d6b:0002"]\n');
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const engine = () => new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });

  it('block-storage: modprobe -C on the written directory prints the install line', async () => {
    await engine().apply(await loadProfile('baseline', root));
    const dir = path.join(root, 'etc/modprobe.d');
    for (const module of ['usb-storage', 'uas']) {
      const { stdout } = await run('modprobe', ['-C', dir, '-n', '-v', module]);
      expect(stdout.trim()).toBe('install /bin/false');
    }
    const conf = readFileSync(path.join(dir, 'iot-agent-usb-storage.conf'), 'utf8');
    expect(conf).toMatch(/^blacklist usb-storage$/m);
    expect(conf).toMatch(/^blacklist uas$/m);
    const sysctl = readFileSync(path.join(root, 'etc/sysctl.d/90-iot-agent-hardening.conf'), 'utf8');
    expect(sysctl).toMatch(/^net\.ipv4\.tcp_syncookies = 1$/m);
  });

  it('authorized-only: authorized_default=0 on each host controller and a udev rule with the allow list', async () => {
    const e = engine();
    await e.apply(await loadProfile('kiosk', root));
    for (const c of controllers) {
      expect(readFileSync(path.join(root, 'sys/bus/usb/devices', c, 'authorized_default'), 'utf8').trim()).toBe('0');
    }
    expect(existsSync(path.join(root, 'sys/bus/usb/devices/1-1/authorized_default'))).toBe(false);
    const rules = readFileSync(path.join(root, 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules'), 'utf8');
    expect(rules).toContain('ATTR{idVendor}=="046d", ATTR{idProduct}=="c52b", ATTR{authorized}="1"');
    expect(rules).toContain('ATTR{idVendor}=="1d6b", ATTR{idProduct}=="0002", ATTR{authorized}="1"');
    // The storage block belonged to the previous profile: its file is gone.
    expect(existsSync(path.join(root, 'etc/modprobe.d/iot-agent-usb-storage.conf'))).toBe(false);
    expect((await e.verify()).drift).toBe(0);
  });

  it('verify reports a sysfs value and a file changed behind its back', async () => {
    const e = engine();
    writeFileSync(path.join(root, 'sys/bus/usb/devices/usb2/authorized_default'), '1\n');
    writeFileSync(path.join(root, 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules'), '# emptied\n');
    const drifted = (await e.verify()).items.filter((i) => !i.ok);
    expect(drifted.map((i) => [i.kind, path.relative(root, i.target)])).toEqual([
      ['file', 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules'],
      ['sysfs', 'sys/bus/usb/devices/usb2/authorized_default'],
    ]);
  });

  it('rollback restores sysfs values and files exactly', async () => {
    const e = engine();
    await e.rollback();
    // Back to baseline: storage blocked, controllers as baseline left them, no udev rule.
    expect(existsSync(path.join(root, 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules'))).toBe(false);
    expect(existsSync(path.join(root, 'etc/modprobe.d/iot-agent-usb-storage.conf'))).toBe(true);
    for (const c of controllers) {
      expect(readFileSync(path.join(root, 'sys/bus/usb/devices', c, 'authorized_default'), 'utf8').trim()).toBe('1');
    }
    await e.rollback();
    expect(existsSync(path.join(root, 'etc/modprobe.d/iot-agent-usb-storage.conf'))).toBe(false);
    expect(existsSync(path.join(root, 'etc/sysctl.d/90-iot-agent-hardening.conf'))).toBe(false);
  });
});

describe('one change at a time', () => {
  let pair: NetnsPair;
  let root: string;

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-lock-'));
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('refuses to run while a live process holds the lock, and clears a lock left by a previous boot', async () => {
    const engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
    const lock = path.join(engine.records.dir, 'lock');
    mkdirSync(engine.records.dir, { recursive: true });
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    writeFileSync(lock, `${process.ppid} ${boot}\n`);
    await expect(engine.apply(await loadProfile('strict', root))).rejects.toThrow(`another hardening change is in progress (pid ${process.ppid})`);
    writeFileSync(lock, `${process.ppid} 00000000-0000-0000-0000-000000000000\n`);
    expect((await engine.apply(await loadProfile('strict', root))).changed).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });
});

describe('malformed profiles', () => {
  let pair: NetnsPair;
  let root: string;

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-bad-'));
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const cases: [string, string, RegExp][] = [
    ['wrong type', 'ipv6: 1\n', /ipv6: must be one of disable, harden, leave, got number 1/],
    ['unknown key', 'firewall:\n  inbund: []\n', /firewall\.inbund: unknown key/],
    ['bad port', 'firewall:\n  inbound:\n    - { port: 70000 }\n', /firewall\.inbound\[0\]\.port: must be a port from 1 to 65535/],
    ['bad CIDR', 'firewall:\n  outbound:\n    allow:\n      - { port: 443, to: 10.0.0.0/33 }\n', /firewall\.outbound\.allow\[0\]\.to: "10\.0\.0\.0\/33" is not an IPv4 or IPv6/],
    ['not YAML', 'firewall: [\n', /not valid YAML/],
  ];

  for (const [name, text, message] of cases) {
    it(`${name}: a clear error naming the field, and nothing applied`, async () => {
      const file = path.join(root, `${name.replace(/\s/g, '-')}.yaml`);
      writeFileSync(file, text);
      const before = await filterTable(pair, 'iptables-nft-save');
      const engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
      const attempt = loadProfile(file, root).then((p) => engine.apply(p));
      await expect(attempt).rejects.toThrow(message);
      await expect(attempt).rejects.toMatchObject({ exitCode: 2 });
      expect(await filterTable(pair, 'iptables-nft-save')).toBe(before);
      expect(existsSync(path.join(root, 'etc'))).toBe(false);
      expect(existsSync(path.join(root, 'var'))).toBe(false);
    });
  }
});
