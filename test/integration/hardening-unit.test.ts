import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { requireHardeningTools } from '../support/netns.js';

const run = promisify(execFile);
const UNIT = 'iot-agent-hardening.service';

// The unit runs /usr/bin/iot-agent, which exists only on a device: verify it against a
// throw-away root that has a stand-in executable at that path, so nothing on this host changes.
describe('boot-time hardening unit', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'iot-agent-unit-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('passes systemd-analyze verify with nothing on stderr', async () => {
    requireHardeningTools(['systemd-analyze']);
    mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
    mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
    writeFileSync(path.join(root, 'usr/bin/iot-agent'), '#!/bin/sh\nexit 0\n');
    chmodSync(path.join(root, 'usr/bin/iot-agent'), 0o755);
    copyFileSync(path.join('systemd', UNIT), path.join(root, 'etc/systemd/system', UNIT));
    const { stdout, stderr } = await run('systemd-analyze', ['verify', `--root=${root}`, UNIT]);
    expect(stderr).toBe('');
    expect(stdout).toBe('');
  });

  it('is ordered before network-pre.target, which it pulls in, and runs the boot path', () => {
    const text = readFileSync(path.join('systemd', UNIT), 'utf8');
    expect(text).toMatch(/^Before=network-pre\.target/m);
    expect(text).toMatch(/^Wants=network-pre\.target$/m);
    expect(text).toMatch(/^DefaultDependencies=no$/m);
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/iot-agent harden apply --boot$/m);
  });
});
