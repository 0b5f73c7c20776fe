import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cpuPercent, cpuTimes, diskUsage, HealthSampler, pickTemperature } from '../../agent/telemetry/health.js';
import { parseOsRelease, readSystemSummary } from '../../agent/telemetry/system-summary.js';
import { ofType, stringMatching } from '../support/matchers.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-health-'));
  dirs.push(dir);
  return dir;
};

describe('health samples from the kernel\'s own figures', () => {
  it('take the CPU\'s busy share between two readings, and none when no time passed', () => {
    expect(cpuPercent({ idle: 100, total: 200 }, { idle: 175, total: 300 })).toBe(25);
    expect(cpuPercent({ idle: 100, total: 200 }, { idle: 100, total: 200 })).toBeNull();
    const times = { user: 10, nice: 0, sys: 5, idle: 80, irq: 5 };
    expect(cpuTimes([{ model: 'x', speed: 1, times }, { model: 'x', speed: 1, times }])).toEqual({ idle: 160, total: 200 });
  });

  it('count a disk as df does: used over used plus what users may still write', () => {
    // df -k /: 264212084 blocks of 1K, 25421584 used, 80969328 available, Use% 24
    expect(diskUsage({ bsize: 4096, blocks: 66053021, bfree: 59697625, bavail: 20242332 }))
      .toEqual({ sizeBytes: 66053021 * 4096, usedBytes: (66053021 - 59697625) * 4096, usedPercent: 23.9 });
    expect(diskUsage({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0 })).toEqual({ sizeBytes: 0, usedBytes: 0, usedPercent: 0 });
  });

  it('take the temperature of the CPU or SoC zone when there is one, else the first, ignoring nonsense', () => {
    expect(pickTemperature([{ type: 'acpitz', milliCelsius: 27800 }, { type: 'cpu-thermal', milliCelsius: 51234 }])).toBe(51.2);
    expect(pickTemperature([{ type: 'acpitz', milliCelsius: 27800 }, { type: 'iwlwifi_1', milliCelsius: 40000 }])).toBe(27.8);
    expect(pickTemperature([{ type: 'cpu-thermal', milliCelsius: Number.NaN }, { type: 'gpu', milliCelsius: 9_999_999 }])).toBeNull();
    expect(pickTemperature([])).toBeNull();
  });

  it('read the thermal zones a board has, and null on a machine without any', async () => {
    const dir = tempDir();
    for (const [zone, type, temp] of [['thermal_zone0', 'acpitz', '30000'], ['thermal_zone1', 'soc-thermal', '48500\n'], ['thermal_zone2', 'broken', 'x']]) {
      mkdirSync(path.join(dir, zone!));
      writeFileSync(path.join(dir, zone!, 'type'), `${type}\n`);
      writeFileSync(path.join(dir, zone!, 'temp'), temp!);
    }
    const sample = await new HealthSampler(dir).sample();
    expect(sample.temperatureC).toBe(48.5);
    expect(sample).toMatchObject({
      memory: { totalBytes: ofType(Number), availableBytes: ofType(Number), usedPercent: ofType(Number) },
      disk: { mount: '/', sizeBytes: ofType(Number), usedBytes: ofType(Number), usedPercent: ofType(Number) },
      uptimeSeconds: ofType(Number),
    });
    expect((sample.cpu as { loadAverage: number[] }).loadAverage).toHaveLength(3);
    expect((await new HealthSampler(path.join(dir, 'none')).sample()).temperatureC).toBeNull();
  });
});

describe('the system summary', () => {
  it('reads os-release as the spec describes it: quotes, escapes, comments', () => {
    expect(parseOsRelease([
      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'NAME="Debian GNU/Linux"', 'VERSION_ID="12"', '# a comment', '',
      "ID=debian", "HOME_URL='https://www.debian.org/'", 'VARIANT="say \\"hi\\""',
    ].join('\n'))).toEqual({
      PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)', NAME: 'Debian GNU/Linux', VERSION_ID: '12', ID: 'debian',
      HOME_URL: 'https://www.debian.org/', VARIANT: 'say "hi"',
    });
  });

  it('skips malformed os-release lines and never throws', () => {
    expect(parseOsRelease('NAME="unterminated\nlower=case\nVERSION_ID=12 13\nID=ok\n=x\n\u0000\nBUILD_ID="')).toEqual({ ID: 'ok' });
    expect(parseOsRelease('')).toEqual({});
  });

  it('names the OS from os-release, and falls back to the kernel\'s name without one', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'os-release'), 'NAME="Debian GNU/Linux"\nVERSION_ID="13"\n');
    expect(await readSystemSummary(path.join(dir, 'os-release'))).toMatchObject({
      os: 'Debian GNU/Linux 13', kernel: stringMatching(/^\d+\.\d+/), arch: process.arch, cores: ofType(Number), memoryBytes: ofType(Number),
    });
    expect((await readSystemSummary(path.join(dir, 'missing'))).os).toBe('Linux');
  });
});

describe('health samples: the edges', () => {
  it('counts nice time as busy CPU time', () => {
    const cpu = (user: number, nice: number, idle: number) => ({ model: 'x', speed: 1, times: { user, nice, sys: 0, idle, irq: 0 } });
    expect(cpuTimes([cpu(10, 30, 60), cpu(0, 0, 100)])).toEqual({ idle: 160, total: 200 });
  });

  it('takes no zone reading 200 degrees or more, or -100 or less, even the CPU\'s', () => {
    expect(pickTemperature([{ type: 'cpu-thermal', milliCelsius: 200_000 }, { type: 'acpitz', milliCelsius: 45_000 }])).toBe(45);
    expect(pickTemperature([{ type: 'cpu-thermal', milliCelsius: -100_000 }, { type: 'acpitz', milliCelsius: 45_000 }])).toBe(45);
    expect(pickTemperature([{ type: 'cpu-thermal', milliCelsius: 199_999 }])).toBe(200);
  });

  it('reads only thermal_zone<N> entries, in numeric order, and takes an empty temp file as no reading', async () => {
    const dir = tempDir();
    for (const [entry, type, temp] of [
      ['cooling_device0', 'cpu-fan', '1000'], ['xthermal_zone1', 'cpu', '2000'], ['thermal_zone1x', 'cpu', '3000'],
      ['thermal_zone0', 'cpu-thermal', '\n'], ['thermal_zone10', 'acpitz', '10000'], ['thermal_zone2', 'acpitz', '22000'],
    ]) {
      mkdirSync(path.join(dir, entry!));
      writeFileSync(path.join(dir, entry!, 'type'), `${type}\n`);
      writeFileSync(path.join(dir, entry!, 'temp'), temp!);
    }
    expect((await new HealthSampler(dir).sample()).temperatureC).toBe(22);
  });
});

describe('os-release: the edges', () => {
  it('takes empty quoted values, and refuses half-quoted ones, leaving no key for them', () => {
    const fields = parseOsRelease(['EMPTY=""', "BLANK=''", "ONE='", "OPEN='abc", "CLOSE=abc'", 'TAIL=abc"', '  INDENTED=yes', '#NAME=commented'].join('\n'));
    expect(fields).toStrictEqual({ EMPTY: '', BLANK: '', INDENTED: 'yes' });
  });

  it('names the OS without a version when os-release gives none', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'os-release'), 'NAME=Alpine\n');
    expect((await readSystemSummary(path.join(dir, 'os-release'))).os).toBe('Alpine');
  });
});
