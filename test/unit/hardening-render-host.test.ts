import { describe, expect, it } from 'vitest';
import {
  isHostController, MANAGED_FILES, MODPROBE_FILE, renderHost, renderSysctls, SYSCTL_FILE, UDEV_FILE,
} from '../../hardening/render-host.js';
import { builtinProfile, profileFromYaml } from '../support/hardening-profiles.js';

const HEADER = (name: string) => `# Written by iot-agent hardening, profile ${name}. Changes are overwritten; edit the profile instead.\n`;
const DEVICE = 'ACTION=="add", SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device"';
const noUsb = { controllers: [], networkDevices: [] };
const fileOf = (host: ReturnType<typeof renderHost>, path: string) => host.files.find((f) => f.path === path)?.content;

describe('sysctls of a profile', () => {
  it('sets the IPv4 protections on `all` and `default`, and hardens IPv6 for ipv6: harden', () => {
    expect(renderSysctls(builtinProfile('baseline'))).toEqual({
      'net.ipv4.icmp_ignore_bogus_error_responses': '1',
      'net.ipv4.icmp_echo_ignore_broadcasts': '1',
      'net.ipv4.tcp_syncookies': '1',
      'net.ipv4.conf.all.rp_filter': '1',
      'net.ipv4.conf.default.rp_filter': '1',
      'net.ipv4.conf.all.accept_redirects': '0',
      'net.ipv4.conf.default.accept_redirects': '0',
      'net.ipv4.conf.all.secure_redirects': '0',
      'net.ipv4.conf.default.secure_redirects': '0',
      'net.ipv4.conf.all.send_redirects': '0',
      'net.ipv4.conf.default.send_redirects': '0',
      'net.ipv4.conf.all.accept_source_route': '0',
      'net.ipv4.conf.default.accept_source_route': '0',
      'net.ipv6.conf.all.accept_ra': '0',
      'net.ipv6.conf.default.accept_ra': '0',
      'net.ipv6.conf.all.accept_redirects': '0',
      'net.ipv6.conf.default.accept_redirects': '0',
      'net.ipv6.conf.all.accept_source_route': '0',
      'net.ipv6.conf.default.accept_source_route': '0',
    });
  });

  it('turns IPv6 off for ipv6: disable, and leaves it alone for ipv6: leave', () => {
    const disabled = renderSysctls(builtinProfile('strict'));
    expect(Object.entries(disabled).filter(([k]) => k.startsWith('net.ipv6.'))).toEqual([
      ['net.ipv6.conf.all.disable_ipv6', '1'], ['net.ipv6.conf.default.disable_ipv6', '1'],
    ]);
    expect(Object.keys(renderSysctls(profileFromYaml('ipv6: leave\n'))).filter((k) => k.startsWith('net.ipv6.'))).toEqual([]);
  });

  it('follows each network setting of the profile', () => {
    const s = renderSysctls(profileFromYaml([
      'network:', '  ignore_bogus_icmp_errors: false', '  ignore_broadcast_echo: false', '  syn_cookies: false', '  reverse_path_filter: loose',
      '  accept_redirects: true', '  send_redirects: true', '  accept_source_route: true', '',
    ].join('\n')));
    expect(s).toMatchObject({
      'net.ipv4.icmp_ignore_bogus_error_responses': '0', 'net.ipv4.icmp_echo_ignore_broadcasts': '0', 'net.ipv4.tcp_syncookies': '0',
      'net.ipv4.conf.default.rp_filter': '2', 'net.ipv4.conf.all.accept_redirects': '1', 'net.ipv4.conf.all.secure_redirects': '1',
      'net.ipv4.conf.default.send_redirects': '1', 'net.ipv4.conf.all.accept_source_route': '1',
      'net.ipv6.conf.all.accept_redirects': '1', 'net.ipv6.conf.default.accept_source_route': '1', 'net.ipv6.conf.all.accept_ra': '0',
    });
    expect(renderSysctls(profileFromYaml('network: { reverse_path_filter: off }\n'))['net.ipv4.conf.all.rp_filter']).toBe('0');
  });
});

describe('host changes of a profile', () => {
  it('persists the sysctls in a file that names the profile and says not to edit it', () => {
    const host = renderHost(builtinProfile('strict'), noUsb);
    const lines = Object.entries(host.sysctls).map(([k, v]) => `${k} = ${v}\n`).join('');
    expect(host.files[0]).toEqual({ path: SYSCTL_FILE, content: HEADER('strict') + lines });
    expect(fileOf(host, SYSCTL_FILE)).toContain('\nnet.ipv6.conf.all.disable_ipv6 = 1\n');
    expect(host.restoreSysctls).toEqual({});
    expect(host.restoreSysfs).toEqual([]);
  });

  it('blocks USB storage with install-to-false and blacklist lines, and owns no udev rule then', () => {
    const host = renderHost(builtinProfile('baseline'), { controllers: ['usb1'], networkDevices: [] });
    expect(fileOf(host, MODPROBE_FILE)).toBe(`${HEADER('baseline')}# No USB mass storage: loading the drivers runs /bin/false instead.\n`
      + 'install usb-storage /bin/false\ninstall uas /bin/false\nblacklist usb-storage\nblacklist uas\n');
    expect(host.sysfs).toEqual([]);
    expect(host.removeFiles).toEqual([UDEV_FILE]);
  });

  it('owns neither USB file when the profile leaves USB alone', () => {
    const host = renderHost(profileFromYaml('usb: { mode: leave }\n'), { controllers: ['usb1'], networkDevices: ['0bda:8153'] });
    expect(host.files.map((f) => f.path)).toEqual([SYSCTL_FILE]);
    expect(host.removeFiles).toEqual([MODPROBE_FILE, UDEV_FILE]);
    expect(host.sysfs).toEqual([]);
    expect(MANAGED_FILES).toEqual([SYSCTL_FILE, MODPROBE_FILE, UDEV_FILE]);
  });

  it('authorizes only allow-listed USB devices, and sets authorized_default=0 on every host controller in order', () => {
    const host = renderHost(profileFromYaml('usb: { mode: authorized-only, allow: ["0483:5740"], allow_network_devices: false }\n'),
      { controllers: ['usb2', 'usb1'], networkDevices: [] });
    expect(host.sysfs).toEqual([
      { path: 'sys/bus/usb/devices/usb1/authorized_default', value: '0' },
      { path: 'sys/bus/usb/devices/usb2/authorized_default', value: '0' },
    ]);
    expect(fileOf(host, UDEV_FILE)).toBe(`${HEADER('t')}# USB devices are not authorized unless listed here (authorized_default=0 on every host controller).\n`
      + 'ACTION=="add", SUBSYSTEM=="usb", KERNEL=="usb[0-9]*", ATTR{authorized_default}="0"\n'
      + `# usb.allow\n${DEVICE}, ATTR{idVendor}=="0483", ATTR{idProduct}=="5740", ATTR{authorized}="1"\n`);
    expect(host.removeFiles).toEqual([MODPROBE_FILE]);
  });
});

describe('USB authorized-only keeps the board\'s network devices', () => {
  const usb = { controllers: ['usb1'], networkDevices: ['2c7c:0125', '0bda:8153', '2c7c:0125'] };
  const udev = (yaml: string) => fileOf(renderHost(profileFromYaml(yaml), usb), UDEV_FILE)!;

  it('authorizes communications and wireless-controller class devices and the devices behind the network interfaces, by default', () => {
    expect(udev('usb: { mode: authorized-only }\n')).toBe(`${HEADER('t')}# USB devices are not authorized unless listed here (authorized_default=0 on every host controller).\n`
      + 'ACTION=="add", SUBSYSTEM=="usb", KERNEL=="usb[0-9]*", ATTR{authorized_default}="0"\n'
      + '# Network and communications devices (the uplink: USB Ethernet, LTE modems), unless usb.allow_network_devices is false.\n'
      + `${DEVICE}, ATTR{bDeviceClass}=="02", ATTR{authorized}="1"\n${DEVICE}, ATTR{bDeviceClass}=="e0", ATTR{authorized}="1"\n`
      + '# The USB devices behind this board\'s network interfaces when the profile was applied.\n'
      + `${DEVICE}, ATTR{idVendor}=="0bda", ATTR{idProduct}=="8153", ATTR{authorized}="1"\n`
      + `${DEVICE}, ATTR{idVendor}=="2c7c", ATTR{idProduct}=="0125", ATTR{authorized}="1"\n`);
  });

  it('names an uplink device once, under usb.allow, when the profile allows it too', () => {
    const rules = udev('usb: { mode: authorized-only, allow: ["0bda:8153"] }\n');
    expect(rules.match(/idVendor}=="0bda"/g)).toHaveLength(1);
    expect(rules).toMatch(/# usb\.allow\n.*idVendor}=="0bda"/);
  });

  it('has no uplink section when no network device is on USB', () => {
    const rules = fileOf(renderHost(profileFromYaml('usb: { mode: authorized-only }\n'), { controllers: ['usb1'], networkDevices: [] }), UDEV_FILE)!;
    expect(rules).toContain('bDeviceClass}=="02"');
    expect(rules).not.toMatch(/behind this board|idVendor|# usb\.allow\n/);
  });

  it('does not when the profile says usb.allow_network_devices: false', () => {
    expect(udev('usb: { mode: authorized-only, allow_network_devices: false }\n')).not.toMatch(/bDeviceClass|idVendor/);
  });

  it('keeps the hash of a profile that does not name the key, and refuses a value that is not a boolean', () => {
    expect(profileFromYaml('usb: { mode: authorized-only }\n').usb).toEqual({ mode: 'authorized-only', allow: [] });
    expect(profileFromYaml('usb: { mode: authorized-only, allow_network_devices: true }\n').usb.allowNetworkDevices).toBe(true);
    expect(() => profileFromYaml('usb: { allow_network_devices: "no" }\n')).toThrow(/usb\.allow_network_devices: must be true or false/);
  });
});

describe('USB host controllers', () => {
  it('are the usbN root hubs, not the devices behind them', () => {
    expect(['usb1', 'usb12', 'usb', '1-1', '1-1:1.0', 'usb1x', 'xusb1'].filter(isHostController)).toEqual(['usb1', 'usb12']);
  });
});
