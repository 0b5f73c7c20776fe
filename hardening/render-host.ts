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

export interface HostChanges {
  sysctls: Record<string, string>;
  files: { path: string; content: string }[];
  removeFiles: string[];
  sysfs: { path: string; value: string }[];
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

/** The host changes of a profile; `controllers` are the USB host controllers found (`usb1`, `usb2` …). */
export function renderHost(profile: Profile, controllers: readonly string[]): HostChanges {
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
    files.push({ path: UDEV_FILE, content: header + udevRules(profile.usb.allow) });
    for (const controller of [...controllers].sort()) {
      sysfs.push({ path: `${USB_DEVICES_DIR}/${controller}/authorized_default`, value: '0' });
    }
  }
  const wanted = new Set(files.map((f) => f.path));
  return { sysctls, files, removeFiles: MANAGED_FILES.filter((f) => !wanted.has(f)), sysfs };
}

function udevRules(allow: readonly string[]): string {
  const lines = [
    '# USB devices are not authorized unless listed here (authorized_default=0 on every host controller).',
    'ACTION=="add", SUBSYSTEM=="usb", KERNEL=="usb[0-9]*", ATTR{authorized_default}="0"',
  ];
  for (const id of allow) {
    const [vendor, product] = id.split(':');
    lines.push(`ACTION=="add", SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="${vendor}", ATTR{idProduct}=="${product}", ATTR{authorized}="1"`);
  }
  return `${lines.join('\n')}\n`;
}

/** USB host controllers are the `usbN` entries (root hubs) under /sys/bus/usb/devices. */
export function isHostController(entry: string): boolean {
  return /^usb\d+$/.test(entry);
}
