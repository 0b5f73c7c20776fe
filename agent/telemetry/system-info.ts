import os from 'node:os';
import si from 'systeminformation';

/** Each probe of the system gets this long; a hung `df` must not hold a command or a sample. */
const PROBE_TIMEOUT_MS = 5_000;

/** Everything `getSystemInfo` answers, through systeminformation. Missing facts are null. */
export async function readSystemInfo(): Promise<Record<string, unknown>> {
  const [osInfo, cpu, load, mem, disks, nets, temperature] = await Promise.all([
    probe(() => si.osInfo()), probe(() => si.cpu()), probe(() => si.currentLoad()), probe(() => si.mem()),
    probe(() => si.fsSize()), probe(() => si.networkInterfaces()), probe(() => si.cpuTemperature()),
  ]);
  return {
    os: osInfo && { platform: osInfo.platform, distro: osInfo.distro, release: osInfo.release, codename: osInfo.codename, kernel: osInfo.kernel, arch: osInfo.arch, hostname: osInfo.hostname },
    cpu: cpu && { manufacturer: cpu.manufacturer, brand: cpu.brand, cores: cpu.cores, physicalCores: cpu.physicalCores, speedGHz: cpu.speed },
    load: { loadAverage: os.loadavg(), currentPercent: load ? round(load.currentLoad) : null },
    memory: mem && { totalBytes: mem.total, availableBytes: mem.available, usedBytes: mem.active, swapTotalBytes: mem.swaptotal, swapUsedBytes: mem.swapused },
    disks: (disks ?? []).slice(0, 32).map((d) => ({ mount: d.mount, fs: d.fs, type: d.type, sizeBytes: d.size, usedBytes: d.used, usePercent: d.use })),
    network: (Array.isArray(nets) ? nets : []).slice(0, 32).map((n) => ({ iface: n.iface, ip4: n.ip4, ip6: n.ip6, mac: n.mac, operstate: n.operstate, internal: n.internal })),
    uptimeSeconds: Math.round(os.uptime()),
    temperatureC: celsius(temperature?.main),
    agent: { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), rssBytes: process.memoryUsage.rss(), heapUsedBytes: process.memoryUsage().heapUsed },
  };
}

/** A small, stable summary for the twin's reported properties. */
export async function readSystemSummary(): Promise<Record<string, unknown>> {
  const [osInfo, cpu] = await Promise.all([probe(() => si.osInfo()), probe(() => si.cpu())]);
  return {
    os: osInfo ? `${osInfo.distro} ${osInfo.release}`.trim() : os.type(),
    kernel: osInfo?.kernel ?? os.release(),
    arch: os.arch(),
    hostname: os.hostname(),
    cpu: cpu ? `${cpu.manufacturer} ${cpu.brand}`.trim() : null,
    cores: cpu?.cores ?? os.cpus().length,
    memoryBytes: os.totalmem(),
  };
}

/** One health sample: CPU, memory, disk, temperature, uptime. */
export async function readHealth(): Promise<Record<string, unknown>> {
  const [load, mem, disks, temperature] = await Promise.all([
    probe(() => si.currentLoad()), probe(() => si.mem()), probe(() => si.fsSize()), probe(() => si.cpuTemperature()),
  ]);
  const rootDisk = disks?.find((d) => d.mount === '/') ?? disks?.[0];
  return {
    cpu: { percent: load ? round(load.currentLoad) : null, loadAverage: os.loadavg().map(round) },
    memory: mem ? { totalBytes: mem.total, availableBytes: mem.available, usedPercent: round(100 * (1 - mem.available / mem.total)) } : null,
    disk: rootDisk ? { mount: rootDisk.mount, sizeBytes: rootDisk.size, usedBytes: rootDisk.used, usedPercent: round(rootDisk.use) } : null,
    temperatureC: celsius(temperature?.main),
    uptimeSeconds: Math.round(os.uptime()),
  };
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
  return typeof value === 'number' && Number.isFinite(value) && value > -100 ? round(value) : null;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
