import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { HealthSampler } from '../../agent/telemetry/health.js';
import { readSystemInfo } from '../../agent/telemetry/system-info.js';
import { readSystemSummary } from '../../agent/telemetry/system-summary.js';
import { stringMatching } from '../support/matchers.js';

/** At most one decimal, as every rounded figure the agent reports. */
const oneDecimal = (value: number) => Math.abs(value * 10 - Math.round(value * 10)) < 1e-6;

describe('facts about this machine, read for real', () => {
  it('samples health: CPU, memory, the root disk and uptime, rounded to one decimal', async () => {
    const health = await new HealthSampler().sample() as {
      cpu: { percent: number | null; loadAverage: number[] };
      memory: { totalBytes: number; availableBytes: number; usedPercent: number };
      disk: { mount: string; sizeBytes: number; usedBytes: number; usedPercent: number };
      temperatureC: number | null; uptimeSeconds: number;
    };
    expect(Object.keys(health)).toEqual(['cpu', 'memory', 'disk', 'temperatureC', 'uptimeSeconds']);
    expect(health.cpu.loadAverage).toHaveLength(3);
    expect(health.cpu.loadAverage.every(oneDecimal)).toBe(true);
    expect(health.cpu.percent === null || oneDecimal(health.cpu.percent)).toBe(true);
    expect(health.memory.totalBytes).toBe(os.totalmem());
    expect(health.memory.usedPercent).toBe(Math.round(1000 * (1 - health.memory.availableBytes / health.memory.totalBytes)) / 10);
    expect(health.disk.mount).toBe('/');
    expect(health.disk.usedBytes).toBeLessThanOrEqual(health.disk.sizeBytes);
    expect(oneDecimal(health.disk.usedPercent)).toBe(true);
    expect(health.temperatureC === null || (oneDecimal(health.temperatureC) && health.temperatureC > -100)).toBe(true);
    expect(Number.isInteger(health.uptimeSeconds)).toBe(true);
    expect(Math.abs(health.uptimeSeconds - os.uptime())).toBeLessThan(60);
  });

  it('summarises the system for the twin in a few stable keys', async () => {
    const summary = await readSystemSummary();
    expect(summary).toEqual({
      os: stringMatching(/^\S(.*\S)?$/), kernel: os.release(), arch: os.arch(), hostname: os.hostname(),
      cpu: stringMatching(/^\S(.*\S)?$/), cores: os.cpus().length, memoryBytes: os.totalmem(),
    });
  });

  it('gathers the facts getSystemInfo answers with: the OS, CPU, load, memory, disks, network and uptime', async () => {
    type Section = Record<string, unknown>;
    const info = await readSystemInfo() as { os: Section; cpu: Section; load: Section; memory: Section; disks: Section[]; network: Section[] };
    expect(Object.keys(info)).toEqual(['os', 'cpu', 'load', 'memory', 'disks', 'network', 'uptimeSeconds', 'temperatureC']);
    expect(info.os).toMatchObject({ platform: 'linux', arch: os.arch(), hostname: os.hostname(), kernel: os.release() });
    expect(Object.keys(info.os)).toEqual(['platform', 'distro', 'release', 'codename', 'kernel', 'arch', 'hostname']);
    expect(Object.keys(info.cpu)).toEqual(['manufacturer', 'brand', 'cores', 'physicalCores', 'speedGHz']);
    expect(info.cpu.cores).toBe(os.cpus().length);
    expect((info.load.loadAverage as number[])).toHaveLength(3);
    expect(Object.keys(info.memory)).toEqual(['totalBytes', 'availableBytes', 'usedBytes', 'swapTotalBytes', 'swapUsedBytes']);
    expect(info.memory.totalBytes).toBe(os.totalmem());
    expect(info.disks.some((d) => d.mount === '/')).toBe(true);
    expect(Object.keys(info.disks[0]!)).toEqual(['mount', 'fs', 'type', 'sizeBytes', 'usedBytes', 'usePercent']);
    expect(info.network.find((n) => n.iface === 'lo')).toMatchObject({ ip4: '127.0.0.1', internal: true });
    expect(Object.keys(info.network[0]!)).toEqual(['iface', 'ip4', 'ip6', 'mac', 'operstate', 'internal']);
  });
});
