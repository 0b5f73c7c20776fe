import type { StatsFs } from 'node:fs';
import { readdir, readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Where Linux lists its thermal zones (each with `type` and `temp` in millidegrees Celsius). */
const THERMAL_DIR = '/sys/class/thermal';

export interface CpuTimes {
  idle: number;
  total: number;
}

/**
 * Health samples (CPU, memory, root disk, temperature, uptime) from Node's os and fs
 * modules and the kernel's own files: cheap enough to take every few seconds in the
 * daemon, starting no process and loading no library. (getSystemInfo's fuller answer
 * comes from systeminformation, in a helper process.)
 */
export class HealthSampler {
  private cpu: CpuTimes = cpuTimes();

  constructor(private readonly thermalDir = THERMAL_DIR) {}

  async sample(): Promise<Record<string, unknown>> {
    const now = cpuTimes();
    const percent = cpuPercent(this.cpu, now);
    this.cpu = now;
    const [disk, temperatureC] = await Promise.all([
      statfs('/').then(diskUsage, () => null),
      readTemperature(this.thermalDir),
    ]);
    const totalBytes = os.totalmem();
    const availableBytes = os.freemem(); // MemAvailable on Linux
    return {
      cpu: { percent, loadAverage: os.loadavg().map(round) },
      memory: { totalBytes, availableBytes, usedPercent: round(100 * (1 - availableBytes / totalBytes)) },
      disk: disk && { mount: '/', ...disk },
      temperatureC,
      uptimeSeconds: Math.round(os.uptime()),
    };
  }
}

export function cpuTimes(cpus: os.CpuInfo[] = os.cpus()): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const { times } of cpus) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}

/** Busy share of the CPU time between two readings, in percent; null when no time passed. */
export function cpuPercent(before: CpuTimes, after: CpuTimes): number | null {
  const total = after.total - before.total;
  if (total <= 0) return null;
  return round(100 * (1 - (after.idle - before.idle) / total));
}

/** Size and use of a filesystem as df reports them (use: used / (used + available to users)). */
export function diskUsage(stats: Pick<StatsFs, 'bsize' | 'blocks' | 'bfree' | 'bavail'>): { sizeBytes: number; usedBytes: number; usedPercent: number } {
  const sizeBytes = stats.blocks * stats.bsize;
  const usedBytes = (stats.blocks - stats.bfree) * stats.bsize;
  const usable = usedBytes + stats.bavail * stats.bsize;
  return { sizeBytes, usedBytes, usedPercent: usable > 0 ? round((100 * usedBytes) / usable) : 0 };
}

/**
 * The board's temperature: the thermal zone of the CPU or SoC when one is named so
 * (cpu-thermal on a Raspberry Pi, soc-thermal, x86_pkg_temp), else the first zone.
 */
export function pickTemperature(zones: { type: string; milliCelsius: number }[]): number | null {
  const valid = zones.filter((z) => Number.isFinite(z.milliCelsius) && z.milliCelsius > -100_000 && z.milliCelsius < 200_000);
  const zone = valid.find((z) => /cpu|soc|pkg/i.test(z.type)) ?? valid[0];
  return zone ? round(zone.milliCelsius / 1000) : null;
}

async function readTemperature(dir: string): Promise<number | null> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const zones = await Promise.all(names.filter((n) => /^thermal_zone\d+$/.test(n)).sort(byNumber).map(async (name) => {
    const [type, temp] = await Promise.all(['type', 'temp'].map((f) => readFile(path.join(dir, name, f), 'utf8').catch(() => '')));
    return { type: type!.trim(), milliCelsius: temp!.trim() === '' ? Number.NaN : Number(temp) };
  }));
  return pickTemperature(zones);
}

function byNumber(a: string, b: string): number {
  return Number(a.replace(/\D/g, '')) - Number(b.replace(/\D/g, ''));
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
