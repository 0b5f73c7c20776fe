import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireHardeningTools } from '../support/netns.js';

const run = promisify(execFile);
const UNIT = 'iot-agent-hardening.service';
const GUARD = 'iot-agent-hardening-guard.service';
/** The stock units the guard's default dependencies and ordering name (read from this host's systemd package, never changed). */
const STOCK_UNITS = ['sysinit.target', 'basic.target', 'shutdown.target', 'local-fs.target', 'network-pre.target', 'network-online.target', 'multi-user.target'];
const STOCK_DIR = '/usr/lib/systemd/system';

async function exposure(unit: string): Promise<number> {
  const { stdout } = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', path.join('systemd', unit)]);
  const m = new RegExp(`Overall exposure level for ${unit.replace(/\./g, '\\.')}: (\\d+\\.\\d)`).exec(stdout);
  if (!m) throw new Error(`no exposure level in: ${stdout.slice(-300)}`);
  return Number(m[1]);
}

// The units run /usr/bin/iot-agent, which exists only on a device: verify them against a
// throw-away root that has a stand-in executable at that path and copies of the stock
// targets they are ordered against, so nothing on this host changes.
describe('boot-time hardening units', () => {
  let root: string;
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-unit-'));
    requireHardeningTools(['systemd-analyze']);
    const missing = STOCK_UNITS.filter((u) => !existsSync(path.join(STOCK_DIR, u)));
    if (missing.length) throw new Error(`missing ${missing.join(', ')} in ${STOCK_DIR}: install the Debian package systemd (scripts/setup.sh)`);
    mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
    mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
    mkdirSync(path.join(root, STOCK_DIR), { recursive: true });
    writeFileSync(path.join(root, 'usr/bin/iot-agent'), '#!/bin/sh\nexit 0\n');
    chmodSync(path.join(root, 'usr/bin/iot-agent'), 0o755);
    for (const unit of [UNIT, GUARD]) copyFileSync(path.join('systemd', unit), path.join(root, 'etc/systemd/system', unit));
    for (const unit of STOCK_UNITS) copyFileSync(path.join(STOCK_DIR, unit), path.join(root, STOCK_DIR, unit));
  });

  it.each([UNIT, GUARD])('%s passes systemd-analyze verify with nothing on stderr', async (unit) => {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', `--root=${root}`, unit]);
    expect(stderr).toBe('');
    expect(stdout).toBe('');
  });

  it.each([UNIT, GUARD])('%s scores an exposure of 4.0 or below in systemd-analyze security', async (unit) => {
    expect(await exposure(unit)).toBeLessThanOrEqual(4.0);
  });

  it('applies at boot before network-pre.target, which it pulls in', () => {
    const text = readFileSync(path.join('systemd', UNIT), 'utf8');
    expect(text).toMatch(/^Before=network-pre\.target/m);
    expect(text).toMatch(/^Wants=network-pre\.target$/m);
    expect(text).toMatch(/^DefaultDependencies=no$/m);
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/iot-agent harden apply --boot$/m);
  });

  it('guards once the network is online, after the boot apply, beside the boot, with only the network capabilities', () => {
    const text = readFileSync(path.join('systemd', GUARD), 'utf8');
    // Not a oneshot: multi-user.target waits for the oneshots it wants to finish.
    expect(text).toMatch(/^Type=exec$/m);
    expect(text).toMatch(/^RuntimeMaxSec=\d+min$/m);
    expect(text).toMatch(/^Wants=network-online\.target$/m);
    expect(text).toMatch(/^After=network-online\.target iot-agent-hardening\.service$/m);
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/iot-agent harden guard$/m);
    for (const unit of [UNIT, GUARD]) {
      expect(readFileSync(path.join('systemd', unit), 'utf8')).toMatch(/^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW$/m);
    }
  });
});
