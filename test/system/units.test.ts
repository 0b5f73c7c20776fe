import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANAGED_FILES } from '../../hardening/render-host.js';
import { requireHardeningTools } from '../support/netns.js';
import { REPO } from './artifacts.js';

const run = promisify(execFile);
const UNITS = ['iot-agent.service', 'iot-agent-harden-apply@.service'];
/** The units that run as root: none may read anything the agent user can write as environment, options or code. */
const ROOT_UNITS = ['iot-agent-hardening.service', 'iot-agent-hardening-guard.service', 'iot-agent-harden-apply@.service'];
const unitText = (name: string) => readFileSync(path.join(REPO, 'systemd', name), 'utf8');
const directive = (text: string, key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());

/**
 * The agent's units on this host's systemd (Debian 12's 252; the boot test runs trixie's
 * too), against a throw-away root: a stand-in /usr/bin/iot-agent and the host's own
 * targets, so nothing on this host changes.
 */
describe('the agent units, sysusers.d and tmpfiles.d files', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-units-'));
    requireHardeningTools(['systemd-analyze', 'systemd-sysusers', 'systemd-tmpfiles']);
    for (const dir of ['usr/bin', 'bin', 'etc/systemd/system', 'usr/lib/systemd']) mkdirSync(path.join(root, dir), { recursive: true });
    for (const tool of ['usr/bin/iot-agent', 'bin/kill']) {
      writeFileSync(path.join(root, tool), '#!/bin/sh\nexit 0\n');
      chmodSync(path.join(root, tool), 0o755);
    }
    // The targets and units the agent's units are ordered against come from the host.
    execFileSync('cp', ['-a', '/lib/systemd/system', path.join(root, 'usr/lib/systemd/')]);
    for (const unit of [...UNITS, 'iot-agent-hardening.service', 'iot-agent-hardening-guard.service']) {
      copyFileSync(path.join(REPO, 'systemd', unit), path.join(root, 'etc/systemd/system', unit));
    }
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('pass systemd-analyze verify with nothing on stderr', async () => {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', `--root=${root}`, 'iot-agent.service', 'iot-agent-harden-apply@strict.service',
      'iot-agent-hardening.service', 'iot-agent-hardening-guard.service'])
      .catch((err: { stdout: string; stderr: string }) => err);
    expect(stderr).toBe('');
    expect(stdout).toBe('');
  });

  it('score no worse than before in systemd-analyze security --offline=true: agent 1.5, apply 2.6, boot 2.0, guard 2.2', async () => {
    const score = async (unit: string) => {
      const { stdout } = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', path.join(REPO, 'systemd', unit)])
        .catch((err: { stdout: string }) => err);
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(stdout);
      if (!m) throw new Error(`no score for ${unit}:\n${stdout}`);
      return Number(m[1]);
    };
    const scores = Object.fromEntries(await Promise.all(['iot-agent.service', ...ROOT_UNITS].map(async (u) => [u, await score(u)] as const)));
    process.stdout.write(`systemd-analyze security --offline=true: ${JSON.stringify(scores)}\n`);
    expect(scores['iot-agent.service']).toBeLessThanOrEqual(1.5);
    expect(scores['iot-agent-harden-apply@.service']).toBeLessThanOrEqual(2.6);
    expect(scores['iot-agent-hardening.service']).toBeLessThanOrEqual(2.0);
    expect(scores['iot-agent-hardening-guard.service']).toBeLessThanOrEqual(2.2);
  });

  it.each(ROOT_UNITS)('%s reads nothing the agent writes as environment, clears what node reads, and writes only what a profile writes', (name) => {
    const text = unitText(name);
    expect(text).not.toMatch(/^(EnvironmentFile|PassEnvironment|ImportCredential|LoadCredential|SetCredential)=/m);
    expect(directive(text, 'Environment')).toEqual(['NODE_OPTIONS= NODE_PATH= PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
    const unset = directive(text, 'UnsetEnvironment').join(' ').split(/\s+/);
    for (const variable of ['NODE_EXTRA_CA_CERTS', 'NODE_REDIRECT_WARNINGS', 'NODE_V8_COVERAGE', 'NODE_ICU_DATA', 'OPENSSL_CONF', 'OPENSSL_MODULES', 'LD_PRELOAD', 'LD_LIBRARY_PATH']) {
      expect(unset, variable).toContain(variable);
    }
    expect(directive(text, 'ProtectSystem')).toEqual(['strict']);
    // Exactly the directories of the files a profile writes (the records: StateDirectory=).
    const writes = [...new Set(MANAGED_FILES.map((f) => `-/${path.dirname(f)}`))].sort();
    expect(directive(text, 'ReadWritePaths').join(' ').split(/\s+/).sort()).toEqual(writes);
    // Root without CAP_DAC_OVERRIDE reads the agent's files through its group; the boot unit
    // reads none and must start even if that group is gone.
    expect(directive(text, 'SupplementaryGroups')).toEqual(name === 'iot-agent-hardening.service' ? [] : ['iot-agent']);
    expect(directive(text, 'CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW']);
    expect(directive(text, 'ExecStart')).toHaveLength(1);
    expect(directive(text, 'ExecStart')[0]).not.toMatch(/\$\{?[A-Z_]/);
  });

  it('have the apply unit take its parameters from the instance and a request file at a fixed path, never environment', () => {
    expect(directive(unitText('iot-agent-harden-apply@.service'), 'ExecStart'))
      .toEqual(['/usr/bin/iot-agent harden apply --profile=%I --request=/run/iot-agent/harden-request.json']);
  });

  it('never hold up the end of boot: a unit multi-user.target wants is not a oneshot (the target waits for those to finish)', () => {
    for (const name of ['iot-agent-hardening-guard.service']) {
      const text = unitText(name);
      expect(directive(text, 'WantedBy')).toEqual(['multi-user.target']);
      expect(directive(text, 'Type')).toEqual(['exec']);
      expect(directive(text, 'RemainAfterExit')).toEqual([]);
      expect(text).not.toMatch(/^Before=.*multi-user\.target/m);
    }
  });

  it('run the agent as its own user in the tss group, with no capabilities, a watchdog and restarts', () => {
    const unit = readFileSync(path.join(REPO, 'systemd/iot-agent.service'), 'utf8');
    for (const line of ['Type=notify', 'NotifyAccess=all', 'User=iot-agent', 'SupplementaryGroups=tss', 'CapabilityBoundingSet=',
      'NoNewPrivileges=yes', 'Restart=on-failure', 'StateDirectory=iot-agent', 'RuntimeDirectory=iot-agent', 'ConfigurationDirectory=iot-agent']) {
      expect(unit).toMatch(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    }
    expect(unit).toMatch(/^WatchdogSec=\d+s$/m);
    expect(unit).toMatch(/^After=iot-agent-hardening\.service network-online\.target time-sync\.target$/m);
  });

  it('order the agent after time synchronisation, and bound the wait for it', () => {
    const dropIn = readFileSync(path.join(REPO, 'packaging/systemd/systemd-time-wait-sync.service.d/50-iot-agent-bounded.conf'), 'utf8');
    expect(dropIn).toMatch(/^\[Service\]\nTimeoutStartSec=90s$/m);
    expect(readFileSync(path.join(REPO, 'scripts/build-deb.sh'), 'utf8')).toContain('systemd-time-wait-sync.service.d/50-iot-agent-bounded.conf');
  });

  it('keep the hardening records in their own root directory: only the root units declare it, the agent unit never', () => {
    const unit = (name: string) => readFileSync(path.join(REPO, 'systemd', name), 'utf8');
    for (const name of ['iot-agent-hardening.service', 'iot-agent-hardening-guard.service', 'iot-agent-harden-apply@.service']) {
      expect(unit(name), name).toMatch(/^StateDirectory=iot-agent-hardening$/m);
      expect(unit(name), name).toMatch(/^StateDirectoryMode=0755$/m);
      expect(unit(name), name).not.toMatch(/^(User|DynamicUser)=/m);
      expect(unit(name), name).not.toMatch(/^StateDirectory=.*\biot-agent(\s|$)/m);
    }
    expect(unit('iot-agent.service')).not.toMatch(/^StateDirectory=.*iot-agent-hardening/m);
  });

  it('create the user, its tss membership and the directories with systemd-sysusers and systemd-tmpfiles', async () => {
    const sysusers = path.join(REPO, 'systemd/sysusers.d/iot-agent.conf');
    await run('systemd-sysusers', [`--root=${root}`, sysusers]);
    expect(readFileSync(path.join(root, 'etc/passwd'), 'utf8')).toMatch(/^iot-agent:x:\d+:\d+:iot-agent device agent:\/var\/lib\/iot-agent:\/usr\/sbin\/nologin$/m);
    expect(readFileSync(path.join(root, 'etc/group'), 'utf8')).toMatch(/^tss:x:\d+:iot-agent$/m);
    const { stderr } = await run('systemd-tmpfiles', [`--root=${root}`, '--create', path.join(REPO, 'systemd/tmpfiles.d/iot-agent.conf')]);
    expect(stderr).toBe('');
    const uid = Number(/^iot-agent:x:(\d+):/m.exec(readFileSync(path.join(root, 'etc/passwd'), 'utf8'))![1]);
    const state = statSync(path.join(root, 'var/lib/iot-agent'));
    expect({ uid: state.uid, mode: state.mode & 0o777 }).toEqual({ uid, mode: 0o750 });
    const records = statSync(path.join(root, 'var/lib/iot-agent-hardening'));
    expect({ uid: records.uid, gid: records.gid, mode: records.mode & 0o777 }).toEqual({ uid: 0, gid: 0, mode: 0o755 });
    const profiles = statSync(path.join(root, 'etc/iot-agent/profiles'));
    expect({ uid: profiles.uid, mode: profiles.mode & 0o777 }).toEqual({ uid: 0, mode: 0o755 });
    // What the root units write under their read-only /etc, and legacy iptables' lock under their read-only /run.
    for (const dir of ['etc/sysctl.d', 'etc/modprobe.d', 'etc/udev/rules.d']) expect(statSync(path.join(root, dir)).isDirectory(), dir).toBe(true);
    expect(statSync(path.join(root, 'run/xtables.lock')).mode & 0o777).toBe(0o600);
  });
});
