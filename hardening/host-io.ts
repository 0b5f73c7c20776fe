import { mkdir, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../agent/lib/errors.js';
import { writeFileAtomic } from '../agent/lib/atomic-file.js';
import { planSysctls, planSysfs, type Plan } from './plan.js';
import { isHostController, MANAGED_FILES, NET_CLASS_DIR, USB_DEVICES_DIR, type UsbFacts } from './render-host.js';
import type { Snapshot } from './records.js';
import type { SysctlIo } from './sysctl-io.js';

/**
 * Everything hardening touches besides the firewall, under a root directory (`/` on a
 * board, a prepared tree in tests): live sysctls, the files that persist the profile, and
 * sysfs values (USB authorisation).
 */
export class HostIo {
  constructor(readonly root: string, private readonly sysctl: SysctlIo) {}

  at(relative: string): string {
    return path.join(this.root, relative);
  }

  /** The live values a plan is about: its sysctls, every file the agent may own, its sysfs values. */
  async read(plan: Plan): Promise<{ sysctls: Record<string, string | null>; files: Record<string, string | null>; sysfs: Record<string, string | null> }> {
    const [sysctls, files, sysfs] = await Promise.all([
      this.sysctl.read(Object.keys(planSysctls(plan))),
      Promise.all(MANAGED_FILES.map(async (f) => [f, await readOrNull(this.at(f), false)] as const)),
      Promise.all(planSysfs(plan).map(async (e) => [e.path, await readOrNull(this.at(e.path), true)] as const)),
    ]);
    return { sysctls, files: Object.fromEntries(files), sysfs: Object.fromEntries(sysfs) };
  }

  /**
   * Every host change of a plan, started at once (none depends on another); `sysctls` are
   * the ones that differ from the live value. The caller waits for all and restores the
   * snapshot if any failed.
   */
  write(plan: Plan, sysctls: Record<string, string>): Promise<unknown>[] {
    return [
      this.setSysctls(sysctls),
      ...plan.host.files.map((file) => this.writeFile(file.path, file.content)),
      ...plan.host.removeFiles.map((file) => rm(this.at(file), { force: true })),
      ...planSysfs(plan).map((entry) => writeFile(this.at(entry.path), `${entry.value}\n`)),
    ];
  }

  setSysctls(values: Record<string, string>): Promise<void> {
    return this.sysctl.write(values);
  }

  /** Puts sysctls, files and sysfs values back as the snapshot has them; notes what it could not. */
  async restore(snapshot: Snapshot, notes: string[]): Promise<void> {
    const sysctls = Object.fromEntries(Object.entries(snapshot.sysctls).filter((e): e is [string, string] => e[1] !== null));
    await this.sysctl.write(sysctls);
    for (const [file, content] of Object.entries(snapshot.files)) {
      if (content === null) await rm(this.at(file), { force: true });
      else await this.writeFile(file, content);
    }
    for (const [file, value] of Object.entries(snapshot.sysfs)) {
      if (value === null) notes.push(`${this.at(file)} did not exist before: left as is`);
      else await writeFile(this.at(file), `${value}\n`);
    }
  }

  /** The USB host controllers, and the USB devices behind the network interfaces (the uplink). Needs no privileges. */
  async usbFacts(): Promise<UsbFacts> {
    const controllers = (await readdir(this.at(USB_DEVICES_DIR)).catch(() => [])).filter(isHostController);
    const interfaces = await readdir(this.at(NET_CLASS_DIR)).catch(() => []);
    const ids = await Promise.all(interfaces.map((name) => this.usbDeviceOf(path.join(this.at(NET_CLASS_DIR), name, 'device'))));
    return { controllers, networkDevices: [...new Set(ids.filter((id): id is string => id !== null))].sort() };
  }

  /** vendor:product of the USB device an interface's device link leads into, or null (not USB). */
  private async usbDeviceOf(link: string): Promise<string | null> {
    let dir = await realpath(link).catch(() => null);
    // Virtual and PCI interfaces never lead through a USB host controller (usbN).
    if (dir === null || !/\/usb\d+\//.test(dir)) return null;
    const top = this.at('sys/devices');
    // Up from the interface's function to the USB device that carries idVendor and idProduct.
    for (let depth = 0; dir !== null && dir.startsWith(`${top}/`) && depth < 8; depth++, dir = path.dirname(dir)) {
      const [vendor, product] = await Promise.all(['idVendor', 'idProduct'].map((f) => readOrNull(path.join(dir!, f), true)));
      if (vendor !== null && product !== null) {
        const id = `${vendor}:${product}`.toLowerCase();
        return /^[0-9a-f]{4}:[0-9a-f]{4}$/.test(id) ? id : null;
      }
    }
    return null;
  }

  private async writeFile(relative: string, content: string): Promise<void> {
    const file = this.at(relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, content, 0o644);
  }
}

async function readOrNull(file: string, trim: boolean): Promise<string | null> {
  try {
    const text = await readFile(file, 'utf8');
    return trim ? text.trim() : text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AgentError(`cannot read ${file}`, { cause: err });
  }
}
