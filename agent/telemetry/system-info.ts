import os from 'node:os';
import si from 'systeminformation';
import { cpuPercent, cpuTimes } from './health.js';

/** Each probe of the system gets this long; a hung `df` must not hold the answer. */
const PROBE_TIMEOUT_MS = 5_000;
/** The CPU's current load is measured over this long. */
const LOAD_WINDOW_MS = 250;

/**
 * Everything `getSystemInfo` answers about the device, through systeminformation. Run in
 * a helper process (system-info-main.ts): the library is large and starts commands, and
 * the daemon needs it only when someone asks. Missing facts are null.
 */
export async function readSystemInfo(): Promise<Record<string, unknown>> {
  const [osInfo, cpu, load, mem, disks, nets, temperature] = await Promise.all([
    probe(() => si.osInfo()), probe(() => si.cpu()), currentLoad(), probe(() => si.mem()),
    probe(() => si.fsSize()), probe(() => si.networkInterfaces()), probe(() => si.cpuTemperature()),
  ]);
  return {
    os: osInfo && { platform: osInfo.platform, distro: osInfo.distro, release: osInfo.release, codename: osInfo.codename, kernel: osInfo.kernel, arch: osInfo.arch, hostname: osInfo.hostname },
    cpu: cpu && { manufacturer: cpu.manufacturer, brand: cpu.brand, cores: cpu.cores, physicalCores: cpu.physicalCores, speedGHz: cpu.speed },
    load: { loadAverage: os.loadavg(), currentPercent: load },
    memory: mem && { totalBytes: mem.total, availableBytes: mem.available, usedBytes: mem.active, swapTotalBytes: mem.swaptotal, swapUsedBytes: mem.swapused },
    disks: (disks ?? []).slice(0, 32).map((d) => ({ mount: d.mount, fs: d.fs, type: d.type, sizeBytes: d.size, usedBytes: d.used, usePercent: d.use })),
    network: (Array.isArray(nets) ? nets : []).slice(0, 32).map((n) => ({ iface: n.iface, ip4: n.ip4, ip6: n.ip6, mac: n.mac, operstate: n.operstate, internal: n.internal })),
    uptimeSeconds: Math.round(os.uptime()),
    temperatureC: celsius(temperature?.main),
  };
}

/** The CPU's busy share right now (a fresh process has no earlier reading to compare with). */
async function currentLoad(): Promise<number | null> {
  const before = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, LOAD_WINDOW_MS));
  return cpuPercent(before, cpuTimes());
}

async function probe<T>(read: () => Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([read(), new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), PROBE_TIMEOUT_MS); })]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function celsius(value: number | null | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value > -100 ? Math.round(value * 10) / 10 : null;
}
