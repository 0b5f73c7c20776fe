import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostIo } from '../../hardening/host-io.js';
import { buildPlan } from '../../hardening/plan.js';
import type { Snapshot } from '../../hardening/records.js';
import { MODPROBE_FILE, SYSCTL_FILE, UDEV_FILE } from '../../hardening/render-host.js';
import { ProcSysctl } from '../../hardening/sysctl-io.js';
import { profileFromYaml } from '../support/hardening-profiles.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A board's root and /proc/sys as directory trees: two sysctls, one USB host controller. */
function board(): { root: string; procSys: string; io: HostIo; put: (relative: string, content: string) => void; read: (relative: string) => string } {
  const top = mkdtempSync(path.join(tmpdir(), 'iot-agent-host-'));
  dirs.push(top);
  const root = path.join(top, 'root');
  const procSys = path.join(top, 'proc-sys');
  const put = (relative: string, content: string) => {
    mkdirSync(path.dirname(path.join(top, relative)), { recursive: true });
    writeFileSync(path.join(top, relative), content);
  };
  put('proc-sys/net/ipv4/tcp_syncookies', '0\n');
  put('proc-sys/net/ipv4/ip_forward', '1\n');
  put('root/sys/bus/usb/devices/usb1/authorized_default', '1\n');
  return { root, procSys, io: new HostIo(root, new ProcSysctl(procSys)), put, read: (relative) => readFileSync(path.join(top, relative), 'utf8') };
}

/** Authorized-only USB on usb1, hands net.ipv4.ip_forward back to 1. */
const planOf = () => buildPlan(profileFromYaml('ipv6: leave\nusb: { mode: authorized-only, allow_network_devices: false }\n', 'lab'), 'lab.yaml',
  { controllers: ['usb1'], networkDevices: [] }, { sysctls: { 'net.ipv4.ip_forward': '1' }, sysfs: {} });

describe('the host values a plan is about', () => {
  it('reads its sysctls, every file the agent may own as it is, and its sysfs values trimmed; null for what is absent', async () => {
    const b = board();
    b.put(`root/${MODPROBE_FILE}`, 'install usb-storage /bin/false\n');
    const live = await b.io.read(planOf());
    expect(live.sysctls['net.ipv4.tcp_syncookies']).toBe('0');
    expect(live.sysctls['net.ipv4.ip_forward']).toBe('1');
    expect(live.sysctls['net.ipv4.conf.all.rp_filter']).toBeNull();
    expect(live.files).toEqual({ [SYSCTL_FILE]: null, [MODPROBE_FILE]: 'install usb-storage /bin/false\n', [UDEV_FILE]: null });
    expect(live.sysfs).toEqual({ 'sys/bus/usb/devices/usb1/authorized_default': '1' });
  });

  it('says which file it cannot read', async () => {
    const b = board();
    mkdirSync(path.join(b.root, SYSCTL_FILE), { recursive: true });
    const err = await b.io.read(planOf()).catch((e: unknown) => e as Error);
    expect(err).toMatchObject({ message: `cannot read ${path.join(b.root, SYSCTL_FILE)}`, cause: { code: 'EISDIR' } });
  });

  it('resolves paths under its root', () => {
    expect(new HostIo('/tmp/r', new ProcSysctl()).at('etc/x')).toBe('/tmp/r/etc/x');
  });
});

describe('writing a plan\'s host changes', () => {
  it('sets the given sysctls, writes the files (0644, directories made), removes the ones not wanted, and sets sysfs', async () => {
    const b = board();
    b.put(`root/${MODPROBE_FILE}`, 'old\n');
    const plan = planOf();
    await Promise.all(b.io.write(plan, { 'net.ipv4.tcp_syncookies': '1' }));
    expect(b.read('proc-sys/net/ipv4/tcp_syncookies')).toBe('1\n');
    expect(b.read('proc-sys/net/ipv4/ip_forward')).toBe('1\n');
    expect(b.read(`root/${SYSCTL_FILE}`)).toBe(plan.host.files[0]!.content);
    expect(b.read(`root/${UDEV_FILE}`)).toBe(plan.host.files[1]!.content);
    expect(statSync(path.join(b.root, UDEV_FILE)).mode & 0o777).toBe(0o644);
    expect(existsSync(path.join(b.root, MODPROBE_FILE))).toBe(false);
    expect(b.read('root/sys/bus/usb/devices/usb1/authorized_default')).toBe('0\n');
  });

  it('puts sysctls, files and sysfs values back as a snapshot has them, noting what did not exist before', async () => {
    const b = board();
    b.put(`root/${UDEV_FILE}`, 'written by the agent\n');
    const snapshot = {
      sysctls: { 'net.ipv4.tcp_syncookies': '1', 'net.ipv4.conf.all.rp_filter': null },
      files: { [UDEV_FILE]: null, [SYSCTL_FILE]: 'before\n' },
      sysfs: { 'sys/bus/usb/devices/usb1/authorized_default': '1', 'sys/bus/usb/devices/usb2/authorized_default': null },
    } as unknown as Snapshot;
    b.put('root/sys/bus/usb/devices/usb1/authorized_default', '0\n');
    const notes: string[] = [];
    await b.io.restore(snapshot, notes);
    expect(b.read('proc-sys/net/ipv4/tcp_syncookies')).toBe('1\n');
    expect(existsSync(path.join(b.procSys, 'net/ipv4/conf/all/rp_filter'))).toBe(false);
    expect(existsSync(path.join(b.root, UDEV_FILE))).toBe(false);
    expect(b.read(`root/${SYSCTL_FILE}`)).toBe('before\n');
    expect(b.read('root/sys/bus/usb/devices/usb1/authorized_default')).toBe('1\n');
    expect(notes).toEqual([`${path.join(b.root, 'sys/bus/usb/devices/usb2/authorized_default')} did not exist before: left as is`]);
  });
});

describe('the board\'s USB facts', () => {
  /** An interface whose device link leads to `devicePath` under sys/devices. */
  const iface = (b: ReturnType<typeof board>, name: string, devicePath: string) => {
    mkdirSync(path.join(b.root, 'sys/devices', devicePath), { recursive: true });
    mkdirSync(path.join(b.root, 'sys/class/net', name), { recursive: true });
    symlinkSync(path.join(b.root, 'sys/devices', devicePath), path.join(b.root, 'sys/class/net', name, 'device'));
  };
  const usbDevice = (b: ReturnType<typeof board>, devicePath: string, vendor: string, product: string) => {
    b.put(`root/sys/devices/${devicePath}/idVendor`, `${vendor}\n`);
    b.put(`root/sys/devices/${devicePath}/idProduct`, `${product}\n`);
  };

  it('lists the host controllers (usbN), not the devices behind them', async () => {
    const b = board();
    for (const entry of ['usb2', '1-1', '1-1:1.0']) mkdirSync(path.join(b.root, 'sys/bus/usb/devices', entry));
    expect([...(await b.io.usbFacts()).controllers].sort()).toEqual(['usb1', 'usb2']);
  });

  it('finds the USB devices behind the network interfaces, once each, in lower case', async () => {
    const b = board();
    usbDevice(b, 'platform/xhci/usb1/1-1', '0BDA', '8153');
    iface(b, 'eth1', 'platform/xhci/usb1/1-1/1-1:1.0');
    iface(b, 'eth2', 'platform/xhci/usb1/1-1/1-1:1.1');
    usbDevice(b, 'platform/xhci/usb1/1-2', '2c7c', '0125');
    iface(b, 'wwan0', 'platform/xhci/usb1/1-2/1-2:1.4/net-function');
    iface(b, 'wlan0', 'pci0000:00/0000:00:14.3');
    mkdirSync(path.join(b.root, 'sys/class/net/lo'), { recursive: true });
    expect((await b.io.usbFacts()).networkDevices).toEqual(['0bda:8153', '2c7c:0125']);
  });

  it('ignores an interface that is not behind a USB host controller, even with ids on its device', async () => {
    const b = board();
    usbDevice(b, 'pci0000:00/0000:00:14.3', '8086', '1234');
    iface(b, 'wlan0', 'pci0000:00/0000:00:14.3/net-function');
    expect((await b.io.usbFacts()).networkDevices).toEqual([]);
  });

  it('ignores ids that are not four hex digits each', async () => {
    const b = board();
    usbDevice(b, 'platform/xhci/usb1/1-1', 'zzzz', '8153');
    iface(b, 'eth1', 'platform/xhci/usb1/1-1/1-1:1.0');
    expect((await b.io.usbFacts()).networkDevices).toEqual([]);
  });

  it('looks at most eight levels up, and never above sys/devices', async () => {
    const b = board();
    usbDevice(b, 'usb1/1-1', '0bda', '8153');
    iface(b, 'deep', 'usb1/1-1/a/b/c/d/e/f/g/h/i');
    b.put('root/sys/idVendor', '1d6b\n');
    b.put('root/sys/idProduct', '0002\n');
    iface(b, 'top', 'usb1/x');
    iface(b, 'near', 'usb1/1-1/a/b/c/d/e/f/g');
    expect((await b.io.usbFacts()).networkDevices).toEqual(['0bda:8153']);
    rmSync(path.join(b.root, 'sys/class/net/near'), { recursive: true });
    expect((await b.io.usbFacts()).networkDevices).toEqual([]);
  });

  it('stops exactly eight levels up', async () => {
    const b = board();
    usbDevice(b, 'usb1/1-1', '0bda', '8153');
    iface(b, 'eight', 'usb1/1-1/a/b/c/d/e/f/g/h');
    expect((await b.io.usbFacts()).networkDevices).toEqual([]);
  });

  it('finds devices behind a host controller numbered past 9, and lists them sorted whatever the interface names', async () => {
    const b = board();
    usbDevice(b, 'platform/xhci/usb12/12-1', '2c7c', '0125');
    iface(b, 'a0', 'platform/xhci/usb12/12-1/12-1:1.0');
    usbDevice(b, 'platform/xhci/usb1/1-1', '0bda', '8153');
    iface(b, 'b0', 'platform/xhci/usb1/1-1/1-1:1.0');
    expect((await b.io.usbFacts()).networkDevices).toEqual(['0bda:8153', '2c7c:0125']);
  });

  it('goes past a level that has only one of idVendor and idProduct', async () => {
    const b = board();
    usbDevice(b, 'usb1/1-1', '0bda', '8153');
    b.put('root/sys/devices/usb1/1-1/1-1:1.0/idVendor', '1234\n');
    iface(b, 'eth1', 'usb1/1-1/1-1:1.0/net');
    b.put('root/sys/devices/usb1/1-2/1-2:1.0/idProduct', '5678\n');
    usbDevice(b, 'usb1/1-2', '2c7c', '0125');
    iface(b, 'eth2', 'usb1/1-2/1-2:1.0/net');
    expect((await b.io.usbFacts()).networkDevices).toEqual(['0bda:8153', '2c7c:0125']);
  });

  it('ignores ids with more than four hex digits on either side', async () => {
    const b = board();
    usbDevice(b, 'usb1/1-1', '10bda', '8153');
    iface(b, 'eth1', 'usb1/1-1/1-1:1.0');
    usbDevice(b, 'usb1/1-2', '2c7c', '01250');
    iface(b, 'eth2', 'usb1/1-2/1-2:1.0');
    expect((await b.io.usbFacts()).networkDevices).toEqual([]);
  });

  it('is empty on a board without USB or network classes, or with a dangling link', async () => {
    const b = board();
    rmSync(path.join(b.root, 'sys'), { recursive: true });
    expect(await b.io.usbFacts()).toEqual({ controllers: [], networkDevices: [] });
    mkdirSync(path.join(b.root, 'sys/class/net/eth9'), { recursive: true });
    symlinkSync(path.join(b.root, 'sys/devices/usb1/gone'), path.join(b.root, 'sys/class/net/eth9/device'));
    expect(await b.io.usbFacts()).toEqual({ controllers: [], networkDevices: [] });
  });
});
