import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_STATE_DIR, HardeningEngine } from '../../hardening/engine.js';
import { profileHash } from '../../hardening/profile.js';
import type { AppliedRecord } from '../../hardening/records.js';
import type { ExecRunner } from '../../agent/lib/exec.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { builtinProfile } from '../support/hardening-profiles.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';

const NOW = Date.parse('2024-06-01T12:00:00Z');
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  restorePath();
});

/**
 * An engine on a prepared root with one USB host controller and its state directory (the
 * units' StateDirectory=), whose commands would all fail (none may run here).
 */
function engineOnRoot(): { root: string; engine: HardeningEngine } {
  const root = mkdtempSync(path.join(tmpdir(), 'iot-agent-engine-'));
  dirs.push(root);
  mkdirSync(path.join(root, 'sys/bus/usb/devices/usb1'), { recursive: true });
  mkdirSync(path.join(root, DEFAULT_STATE_DIR), { recursive: true });
  const runner = hardeningRunner([path.join(root, 'no-commands-here')]);
  return { root, engine: new HardeningEngine({ root, runner, now: () => NOW }) };
}

function appliedRecord(confirmed: boolean): AppliedRecord {
  const profile = builtinProfile('strict');
  return { profile, hash: profileHash(profile), origin: 'builtin:strict', appliedAt: 'then', backend: 'auto', confirmed, firewall: { 4: [], 6: null } };
}

async function failure(promise: Promise<unknown>): Promise<Error & { hint?: string; exitCode?: number }> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  return err as Error & { hint?: string; exitCode?: number };
}

describe('the hardening engine\'s defaults', () => {
  it('works on the real root with its own state directory and whatever iptables the system selects', () => {
    const engine = new HardeningEngine();
    expect(engine.root).toBe('/');
    expect(engine.backend).toBe('auto');
    expect(DEFAULT_STATE_DIR).toBe('var/lib/iot-agent-hardening');
    expect(engine.records.dir).toBe('/var/lib/iot-agent-hardening');
    expect((engine.runner as ExecRunner).prefix).toEqual([]);
  });

  it('keeps its records under the root it is given, or in the state directory named', () => {
    expect(new HardeningEngine({ root: '/tmp/r' }).records.dir).toBe('/tmp/r/var/lib/iot-agent-hardening');
    expect(new HardeningEngine({ root: '/tmp/r', stateDir: '/tmp/s' }).records.dir).toBe('/tmp/s');
  });

  it('runs its commands behind the prefix it is given', () => {
    const engine = new HardeningEngine({ commandPrefix: ['ip', 'netns', 'exec', 'iotagent-1-d'], backend: 'nft' });
    expect((engine.runner as ExecRunner).prefix).toEqual(['ip', 'netns', 'exec', 'iotagent-1-d']);
    expect(engine.backend).toBe('nft');
  });
});

describe('where the engine reads sysctls', () => {
  /** iptables-save and ip6tables-save print an empty filter table; sysctl leaves a mark in `dir` and answers tcp_syncookies = 7. */
  function standInTools(dir: string): void {
    const empty = 'printf \'*filter\\n:INPUT ACCEPT [0:0]\\n:OUTPUT ACCEPT [0:0]\\nCOMMIT\\n\'';
    standInPrograms({
      'iptables-save': empty, 'ip6tables-save': empty,
      'sysctl': `touch ${dir}/sysctl-ran; echo 'net.ipv4.tcp_syncookies = 7'`,
    });
  }
  const syncookies = (items: { target: string; actual: string }[]) => items.find((i) => i.target === 'net.ipv4.tcp_syncookies')?.actual;

  it('reads /proc/sys itself, starting no process, in its own network namespace', async () => {
    const { root } = engineOnRoot();
    standInTools(root);
    const report = await new HardeningEngine({ root }).verify({ profile: builtinProfile('strict'), origin: 'builtin:strict' });
    expect(syncookies(report.items)).toBe(readFileSync('/proc/sys/net/ipv4/tcp_syncookies', 'utf8').trim());
    expect(existsSync(path.join(root, 'sysctl-ran'))).toBe(false);
  });

  it('runs sysctl behind the command prefix, where /proc/sys is another namespace\'s', async () => {
    const { root } = engineOnRoot();
    standInTools(root);
    const report = await new HardeningEngine({ root, commandPrefix: ['env'] }).verify({ profile: builtinProfile('strict'), origin: 'builtin:strict' });
    expect(syncookies(report.items)).toBe('7');
    expect(existsSync(path.join(root, 'sysctl-ran'))).toBe(true);
  });
});

describe('planning without privileges', () => {
  it('lets out what the agent\'s config asks for, the proxy only when one is configured', async () => {
    const { root } = engineOnRoot();
    const profile = { profile: builtinProfile('strict'), origin: 'builtin:strict' };
    const proxied = await new HardeningEngine({ root, egress: { proxy: { host: '192.0.2.80', port: 3128 }, direct443: false, mqtt: false } }).plan(profile);
    const outbound = (plan: typeof proxied) => plan.firewall[4]!.chains['IOT-AGENT-OUT']!.join('\n');
    expect(outbound(proxied)).toContain('-d 192.0.2.80/32 -p tcp --dport 3128 -m comment --comment iot-agent:proxy -j ACCEPT');
    expect(outbound(proxied)).not.toContain('--dport 8883');
    const direct = await new HardeningEngine({ root }).plan(profile);
    expect(outbound(direct)).toContain('--dport 8883');
    expect(outbound(direct)).not.toContain('3128');
  });

  it('plans for the board\'s USB controllers under its root, handing back the originals it recorded', async () => {
    const { engine } = engineOnRoot();
    await engine.records.originals.write({ sysctls: { 'net.ipv6.conf.all.disable_ipv6': '0' }, sysfs: {} });
    const plan = await engine.plan({ profile: builtinProfile('baseline'), origin: 'builtin:baseline' });
    expect(plan.profile).toBe('baseline');
    expect(plan.host.restoreSysctls).toEqual({ 'net.ipv6.conf.all.disable_ipv6': '0' });
    const strict = await engine.plan({ profile: builtinProfile('strict'), origin: 'builtin:strict' });
    expect(strict.host.sysfs).toEqual([{ path: 'sys/bus/usb/devices/usb1/authorized_default', value: '0' }]);
  });

  it('plans as if nothing was recorded when the originals record is corrupt, or when told none are known', async () => {
    const { engine } = engineOnRoot();
    writeFileSync(engine.records.originals.file, '{');
    expect((await engine.plan({ profile: builtinProfile('baseline'), origin: 'b' })).host.restoreSysctls).toEqual({});
    await engine.records.originals.write({ sysctls: { 'net.ipv6.conf.all.disable_ipv6': '0' }, sysfs: {} });
    expect((await engine.plan({ profile: builtinProfile('baseline'), origin: 'b' }, null)).host.restoreSysctls).toEqual({});
  });
});

describe('the engine\'s records as its callers read them', () => {
  it('reads nothing recorded on a fresh board', async () => {
    const { engine } = engineOnRoot();
    expect(await engine.applied()).toBeNull();
    expect(await engine.knownGood()).toBeNull();
    expect(await engine.lastVerified()).toBeNull();
    expect(await engine.lastApplyOutcome()).toBeNull();
    expect(await engine.lastBoot()).toBeNull();
  });

  it('records the outcome of an apply with the time it finished', async () => {
    const { engine } = engineOnRoot();
    await engine.recordApplyOutcome({ requestId: 'r-1', invocationId: null, profile: 'strict', error: 'refused' });
    expect(await engine.lastApplyOutcome()).toEqual({ requestId: 'r-1', invocationId: null, profile: 'strict', error: 'refused', finishedAt: '2024-06-01T12:00:00.000Z' });
  });

  it('reads each record back', async () => {
    const { engine } = engineOnRoot();
    const record = appliedRecord(true);
    await engine.records.applied.write(record);
    await engine.records.knownGood.write({ profile: record.profile, hash: record.hash, origin: record.origin, confirmedAt: 'c' });
    await engine.records.verified.write({ profile: 'strict', hash: record.hash, appliedHash: record.hash, drift: 0, items: [], checkedAt: 'v', by: 'boot' });
    await engine.records.boot.write({ bootId: 'b', at: 'a', outcome: 'applied', profile: 'strict' });
    expect(await engine.applied()).toEqual(record);
    expect((await engine.knownGood())?.confirmedAt).toBe('c');
    expect((await engine.lastVerified())?.checkedAt).toBe('v');
    expect((await engine.lastBoot())?.outcome).toBe('applied');
  });

  it('forgets the last verify result when no profile is applied any more', async () => {
    const { engine } = engineOnRoot();
    await engine.records.verified.write({ profile: 'strict', hash: 'h', appliedHash: 'h', drift: 0, items: [], checkedAt: 'v', by: 'boot' });
    expect(await engine.recordVerify('guard')).toBeNull();
    expect(existsSync(engine.records.verified.file)).toBe(false);
  });
});

describe('the history the known-good policy decides on', () => {
  it('is empty on a fresh board', async () => {
    expect(await engineOnRoot().engine.history()).toEqual({ applied: null, knownGood: null, pending: false });
  });

  it('names the applied and known good profiles, and a pending change', async () => {
    const { engine } = engineOnRoot();
    const record = appliedRecord(false);
    await engine.records.applied.write(record);
    await engine.records.knownGood.write({ profile: builtinProfile('baseline'), hash: profileHash(builtinProfile('baseline')), origin: 'builtin:baseline', confirmedAt: 'c' });
    await engine.records.pending.write({ hash: record.hash, startedAt: 's', timeoutSeconds: 30 });
    expect(await engine.history()).toEqual({
      applied: { name: 'strict', hash: record.hash, confirmed: false },
      knownGood: { name: 'baseline', hash: profileHash(builtinProfile('baseline')) },
      pending: true,
    });
  });

  it('reads corrupt records as absent, with notes, and a corrupt pending marker as an interrupted change', async () => {
    const { engine } = engineOnRoot();
    for (const record of [engine.records.applied, engine.records.knownGood, engine.records.pending]) writeFileSync(record.file, '{');
    const notes: string[] = [];
    expect(await engine.history(notes)).toEqual({ applied: null, knownGood: null, pending: true });
    expect([...notes].sort()).toEqual([
      `hardening record ${engine.records.applied.file} is corrupt: not valid JSON (truncated or garbage): ignored`,
      `hardening record ${engine.records.knownGood.file} is corrupt: not valid JSON (truncated or garbage): ignored`,
    ]);
  });
});

describe('the known-good bookkeeping', () => {
  it('makes the applied profile known good, confirming it, with the time', async () => {
    const { engine } = engineOnRoot();
    const record = appliedRecord(false);
    await engine.records.applied.write(record);
    const good = await engine.markKnownGood();
    expect(good).toEqual({ profile: record.profile, hash: record.hash, origin: 'builtin:strict', confirmedAt: '2024-06-01T12:00:00.000Z' });
    expect(await engine.knownGood()).toEqual(good);
    expect((await engine.applied())?.confirmed).toBe(true);
    expect(existsSync(path.join(engine.records.dir, 'lock'))).toBe(false);
  });

  it('leaves a confirmed applied record as it is, not even rewriting it', async () => {
    const { engine } = engineOnRoot();
    await engine.records.applied.write(appliedRecord(true));
    const before = readFileSync(engine.records.applied.file, 'utf8');
    const inode = statSync(engine.records.applied.file).ino;
    await engine.markKnownGood();
    expect(readFileSync(engine.records.applied.file, 'utf8')).toBe(before);
    expect(statSync(engine.records.applied.file).ino).toBe(inode);
  });

  it('has nothing to mark, or to revert to, on a fresh board', async () => {
    const { engine } = engineOnRoot();
    expect(await engine.markKnownGood()).toBeNull();
    expect(await engine.knownGood()).toBeNull();
    expect(await engine.revertToKnownGood()).toBeNull();
  });
});

describe('refusals that need no firewall', () => {
  it('has no snapshot to roll back to before anything was applied, and says how one is taken', async () => {
    const err = await failure(engineOnRoot().engine.rollback());
    expect(err.message).toBe('no hardening snapshot to roll back to');
    expect(err.hint).toBe('a snapshot is taken by `iot-agent harden apply`');
  });

  it('has nothing to verify before a profile was applied, unless one is named', async () => {
    const err = await failure(engineOnRoot().engine.verify());
    expect(err.message).toBe('no hardening profile has been applied here');
    expect(err.hint).toBe('apply one with `iot-agent harden apply`, or name one with --profile');
    expect(err.exitCode).toBe(1);
  });
});
