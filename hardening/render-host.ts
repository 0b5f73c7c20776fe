import type { Profile } from './profile.js';

/**
 * Policy as data for everything that is not the firewall: sysctl values, the files that
 * make them and the USB policy survive a reboot, and sysfs values. Pure; paths are
 * relative to the root path (normally `/`).
 */
export const SYSCTL_FILE = 'etc/sysctl.d/90-iot-agent-hardening.conf';
export const MODPROBE_FILE = 'etc/modprobe.d/iot-agent-usb-storage.conf';
export const UDEV_FILE = 'etc/udev/rules.d/70-iot-agent-usb-authorized.rules';
/** Every file the agent may own; the ones a profile does not want are removed. */
export const MANAGED_FILES = [SYSCTL_FILE, MODPROBE_FILE, UDEV_FILE] as const;
export const USB_DEVICES_DIR = 'sys/bus/usb/devices';
export const NET_CLASS_DIR = 'sys/class/net';
/** USB device classes kept authorized by `usb.allow_network_devices`: communications (CDC) and wireless controller (RNDIS). */
export const USB_NETWORK_CLASSES = ['02', 'e0'] as const;

export interface HostChanges {
  /** The profile's sysctls (also persisted in SYSCTL_FILE). */
  sysctls: Record<string, string>;
  files: { path: string; content: string }[];
  removeFiles: string[];
  sysfs: { path: string; value: string }[];
  /** Sysctls an earlier profile set and this one does not: back to their value before the agent set them. */
  restoreSysctls: Record<string, string>;
  /** Likewise for sysfs values (a controller's authorized_default after authorized-only). */
  restoreSysfs: { path: string; value: string }[];
}

/** The USB facts of the board a plan is made for: host controllers, and the devices behind its network interfaces. */
export interface UsbFacts {
  controllers: readonly string[];
  /** vendor:product of each USB device that carries a network interface now (the uplink). */
  networkDevices: readonly string[];
}

const RP_FILTER = { strict: '1', loose: '2', off: '0' } as const;

export function renderSysctls(profile: Profile): Record<string, string> {
  const n = profile.network;
  const flag = (b: boolean) => (b ? '1' : '0');
  const both = (family: 'ipv4' | 'ipv6', key: string, value: string) => ({
    [`net.${family}.conf.all.${key}`]: value,
    [`net.${family}.conf.default.${key}`]: value,
  });
  const sysctls: Record<string, string> = {
    'net.ipv4.icmp_ignore_bogus_error_responses': flag(n.ignoreBogusIcmpErrors),
    'net.ipv4.icmp_echo_ignore_broadcasts': flag(n.ignoreBroadcastEcho),
    'net.ipv4.tcp_syncookies': flag(n.synCookies),
    ...both('ipv4', 'rp_filter', RP_FILTER[n.reversePathFilter]),
    ...both('ipv4', 'accept_redirects', flag(n.acceptRedirects)),
    ...both('ipv4', 'secure_redirects', flag(n.acceptRedirects)),
    ...both('ipv4', 'send_redirects', flag(n.sendRedirects)),
    ...both('ipv4', 'accept_source_route', flag(n.acceptSourceRoute)),
  };
  if (profile.ipv6 === 'disable') Object.assign(sysctls, both('ipv6', 'disable_ipv6', '1'));
  if (profile.ipv6 === 'harden') {
    Object.assign(sysctls,
      both('ipv6', 'accept_ra', '0'),
      both('ipv6', 'accept_redirects', flag(n.acceptRedirects)),
      both('ipv6', 'accept_source_route', flag(n.acceptSourceRoute)));
  }
  return sysctls;
}

/** The host changes of a profile on a board with these USB controllers and network devices (nothing restored yet: see plan). */
export function renderHost(profile: Profile, usb: UsbFacts): HostChanges {
  const sysctls = renderSysctls(profile);
  const header = `# Written by iot-agent hardening, profile ${profile.name}. Changes are overwritten; edit the profile instead.\n`;
  const files = [{ path: SYSCTL_FILE, content: header + Object.entries(sysctls).map(([k, v]) => `${k} = ${v}\n`).join('') }];
  const sysfs: { path: string; value: string }[] = [];
  if (profile.usb.mode === 'block-storage') {
    files.push({
      path: MODPROBE_FILE,
      content: `${header}# No USB mass storage: loading the drivers runs /bin/false instead.\n`
        + 'install usb-storage /bin/false\ninstall uas /bin/false\nblacklist usb-storage\nblacklist uas\n',
    });
  }
  if (profile.usb.mode === 'authorized-only') {
    const keepNetwork = profile.usb.allowNetworkDevices !== false;
    files.push({ path: UDEV_FILE, content: header + udevRules(profile.usb.allow, keepNetwork ? usb.networkDevices : null) });
    for (const controller of [...usb.controllers].sort()) {
      sysfs.push({ path: `${USB_DEVICES_DIR}/${controller}/authorized_default`, value: '0' });
    }
  }
  const wanted = new Set(files.map((f) => f.path));
  return { sysctls, files, removeFiles: MANAGED_FILES.filter((f) => !wanted.has(f)), sysfs, restoreSysctls: {}, restoreSysfs: [] };
}

/** `networkDevices` null: the profile set usb.allow_network_devices: false. */
function udevRules(allow: readonly string[], networkDevices: readonly string[] | null): string {
  const device = 'ACTION=="add", SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device"';
  const byId = (id: string) => {
    const [vendor, product] = id.split(':');
    return `${device}, ATTR{idVendor}=="${vendor}", ATTR{idProduct}=="${product}", ATTR{authorized}="1"`;
  };
  const lines = [
    '# USB devices are not authorized unless listed here (authorized_default=0 on every host controller).',
    'ACTION=="add", SUBSYSTEM=="usb", KERNEL=="usb[0-9]*", ATTR{authorized_default}="0"',
  ];
  if (networkDevices !== null) {
    lines.push('# Network and communications devices (the uplink: USB Ethernet, LTE modems), unless usb.allow_network_devices is false.');
    for (const cls of USB_NETWORK_CLASSES) lines.push(`${device}, ATTR{bDeviceClass}=="${cls}", ATTR{authorized}="1"`);
    const uplink = [...new Set(networkDevices)].sort().filter((id) => !allow.includes(id));
    if (uplink.length) lines.push('# The USB devices behind this board\'s network interfaces when the profile was applied.', ...uplink.map(byId));
  }
  if (allow.length) lines.push('# usb.allow', ...allow.map(byId));
  return `${lines.join('\n')}\n`;
}

/** USB host controllers are the `usbN` entries (root hubs) under /sys/bus/usb/devices. */
export function isHostController(entry: string): boolean {
  return /^usb\d+$/.test(entry);
}
