import { execFile } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { CLI_PATH } from '../support/cli.js';
import { NetnsPair, PYTHON, requireHardeningTools } from '../support/netns.js';

const run = promisify(execFile);
/** nobody:nogroup, standing in for the iot-agent user and group. */
const AGENT_STAND_IN = 65534;

/** Applies a seccomp deny list (errno for each listed call) and execs the command: systemd's SystemCallFilter=~… without systemd. */
const SECCOMP_EXEC = `
import errno, json, os, sys, seccomp
denied, errname, argv = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
for name in denied:
    try:
        f.add_rule(seccomp.ERRNO(getattr(errno, errname)), name)
    except (RuntimeError, ValueError, OSError):
        pass  # not a system call of this architecture
f.load()
os.execvp(argv[0], argv)
`;

interface Sandbox {
  capabilities: string[];
  /** SupplementaryGroups= (the agent's group: the test stands in with nogroup). */
  groups: string[];
  deniedCalls: string[];
  errno: string;
}

/** The unit's CapabilityBoundingSet and SystemCallFilter deny list, groups expanded by systemd-analyze itself. */
async function sandboxOf(unit: string): Promise<Sandbox> {
  const text = readFileSync(path.join('systemd', unit), 'utf8');
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  const filter = value('SystemCallFilter');
  if (!filter.startsWith('~')) throw new Error(`${unit}: expected a SystemCallFilter deny list, found ${JSON.stringify(filter)}`);
  const denied = new Set<string>();
  const expand = async (group: string, depth: number): Promise<void> => {
    const { stdout } = await run('systemd-analyze', ['syscall-filter', '--no-pager', group]);
    for (const line of stdout.split('\n').slice(1).map((l) => l.trim())) {
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('@')) { if (depth < 4) await expand(line, depth + 1); } else denied.add(line);
    }
  };
  for (const group of filter.slice(1).trim().split(/\s+/)) await expand(group, 0);
  return {
    capabilities: value('CapabilityBoundingSet').split(/\s+/).map((c) => c.replace(/^CAP_/, '').toLowerCase()),
    groups: value('SupplementaryGroups').split(/\s+/).filter(Boolean),
    deniedCalls: [...denied],
    errno: value('SystemCallErrorNumber') || 'EPERM',
  };
}

// What the units' sandboxes take away is what could break them: with only the bounding
// set's capabilities, no new privileges and the syscall deny list, the real CLI must still
// apply, verify and (for the guard) probe and revert. Run inside a namespace of the test's
// own; the rest of the units' sandbox (mount options) is not simulated here.
describe('the hardening units\' capabilities and syscall filter are enough for the work', () => {
  let pair: NetnsPair;
  let root: string;

  beforeAll(async () => {
    requireHardeningTools(['systemd-analyze', 'setpriv', 'iptables-nft-restore', 'iptables-legacy-restore']);
    try {
      await run(PYTHON, ['-c', 'import seccomp']);
    } catch (err) {
      throw new Error('python3-seccomp is missing: run scripts/setup.sh as root to install the test tools', { cause: err });
    }
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-unit-sandbox-'));
    // An empty agent config: every default, and nothing read from this host's /etc.
    writeFileSync(path.join(root, 'config.yaml'), '');
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** A command in the device namespace, under the unit's sandbox. */
  async function inSandbox(unit: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const box = await sandboxOf(unit);
    const bounding = ['-all', ...box.capabilities.map((c) => `+${c}`)].join(',');
    // The agent's files are owned by its user and group; here nobody:nogroup stand in for them.
    const groups = box.groups.map((g) => (g === 'iot-agent' ? String(AGENT_STAND_IN) : g));
    return pair.exec(pair.device, ['setpriv', `--bounding-set=${bounding}`, '--inh-caps=-all', '--no-new-privs',
      ...(groups.length ? [`--groups=${groups.join(',')}`] : ['--clear-groups']),
      PYTHON, '-c', SECCOMP_EXEC, JSON.stringify(box.deniedCalls), box.errno, ...argv], 60_000);
  }

  /** The CLI under the unit's sandbox; the engine sees its own namespace, as on a device. */
  function sandboxed(unit: string, args: string[]) {
    return inSandbox(unit, [process.execPath, CLI_PATH, '--config', path.join(root, 'config.yaml'), 'harden', ...args]);
  }

  it('takes capabilities and system calls away for real', async () => {
    const probe = [
      'import os',
      'caps = int([l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1], 16)',
      'try:\n    os.setuid(0); denied = False\nexcept PermissionError: denied = True',
      'print(hex(caps), denied)',
    ].join('\n');
    const result = await inSandbox('iot-agent-hardening.service', [PYTHON, '-c', probe]);
    expect(result.code, result.stderr).toBe(0);
    // CAP_NET_ADMIN (12) and CAP_NET_RAW (13) only; setuid (in @privileged) fails with EPERM.
    expect(result.stdout.trim()).toBe(`${'0x' + (0x3000).toString(16)} True`);
  });

  it.each(['nft', 'legacy'])('iot-agent-hardening.service\'s sandbox applies and verifies strict on the %s backend', async (backend) => {
    const options = ['--root', path.join(root, backend), '--backend', backend, '--json'];
    const applied = await sandboxed('iot-agent-hardening.service', ['apply', '--boot', '--profile', 'strict', ...options]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(JSON.parse(applied.stdout)).toMatchObject({ profile: 'strict', changed: true });
    const verified = await sandboxed('iot-agent-hardening.service', ['verify', ...options]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    // The boot run recorded what it verified, for the unprivileged agent to report.
    expect(await new HardeningEngine({ root: path.join(root, backend) }).lastVerified()).toMatchObject({ profile: 'strict', drift: 0, by: 'boot' });
  });

  it('iot-agent-hardening-guard.service\'s sandbox probes and reverts to the last known good profile', async () => {
    const options = ['--root', path.join(root, 'guard'), '--backend', 'nft', '--json'];
    const first = await sandboxed('iot-agent-hardening-guard.service', ['apply', '--profile', 'strict', ...options]);
    expect(first.code, first.stderr).toBe(0);
    await new HardeningEngine({ root: path.join(root, 'guard') }).markKnownGood();
    const second = await sandboxed('iot-agent-hardening-guard.service', ['apply', '--profile', 'baseline', ...options]);
    expect(second.code, second.stderr).toBe(0);
    const guard = await sandboxed('iot-agent-hardening-guard.service', ['guard', '--grace', '1', '--confirm-host', `${pair.peerAddress}:8884`, ...options]);
    expect(guard.code, guard.stderr).toBe(0);
    expect(JSON.parse(guard.stdout)).toMatchObject({ status: 'reverted', report: { profile: 'strict' } });
    expect(await new HardeningEngine({ root: path.join(root, 'guard') }).lastVerified()).toMatchObject({ profile: 'strict', drift: 0, by: 'guard' });
  });

  it('iot-agent-harden-apply@.service\'s sandbox applies the profile the agent asked for, confirmed against the endpoints of its request', async () => {
    await pair.serveTls(path.join(root, 'tls'), 8883);
    await pair.serveTls(path.join(root, 'tls'), 443);
    // As on a board: the agent's runtime directory (0750) and its request (0640), both its own;
    // root without CAP_DAC_OVERRIDE gets in through the group only.
    const run = path.join(root, 'run-iot-agent');
    mkdirSync(run, { mode: 0o750 });
    const request = path.join(run, 'harden-request.json');
    writeFileSync(request, JSON.stringify({ version: 1, requestId: 'req-1', profile: 'strict', confirmTimeoutSeconds: 5,
      confirmTargets: [`${pair.peerAddress}:8883`, `${pair.peerAddress}:443`] }), { mode: 0o640 });
    chownSync(run, AGENT_STAND_IN, AGENT_STAND_IN);
    chownSync(request, AGENT_STAND_IN, AGENT_STAND_IN);
    const options = ['--root', path.join(root, 'apply'), '--backend', 'nft', '--json'];
    // Without the group (the boot unit's sandbox), the request cannot even be reached.
    const outside = await sandboxed('iot-agent-hardening.service', ['apply', '--profile=strict', `--request=${request}`, ...options]);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/its directory cannot be read \(EACCES\)|cannot be opened \(EACCES\)/);
    const applied = await sandboxed('iot-agent-harden-apply@.service', ['apply', '--profile=strict', `--request=${request}`, ...options]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(JSON.parse(applied.stdout)).toMatchObject({ profile: 'strict', changed: true, confirmed: true });
    expect(await new HardeningEngine({ root: path.join(root, 'apply') }).lastApplyOutcome()).toMatchObject({ requestId: 'req-1', profile: 'strict' });
  });
});
