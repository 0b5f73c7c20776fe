import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Operation } from '../../agent/attestation/hardening-event.js';
import { agentLines } from '../../hardening/drift.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import type { MeasureHook } from '../../hardening/measure.js';
import { parseFilterTable } from '../../hardening/restore-text.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { CommandSysctl } from '../../hardening/sysctl-io.js';
import { ensureServerCredentials } from '../cloud/tls.js';
import { PrivateNetns } from '../support/private-netns.js';
import { scratchBoard } from '../support/scratch-board.js';
import { ofType } from '../support/matchers.js';

/**
 * The engine against the real iptables (nft), sysctl and ip, in a network namespace of each
 * test's own (a user namespace makes it root there when the test is not), on a prepared root
 * directory: what a board gets, without touching the host.
 */
/** This boot's id as the kernel gives it. */
const thisBoot = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

interface Board {
  ns: PrivateNetns;
  root: string;
  engine: HardeningEngine;
  calls: { operation: Operation; changed: boolean }[];
  save: () => Promise<string>;
  sysctl: (key: string) => Promise<string>;
}

/** A board with one USB host controller (authorized_default=1) and its state directory, in a fresh namespace. */
async function board(): Promise<Board> {
  const { root, ns } = await scratchBoard(cleanups);
  const calls: Board['calls'] = [];
  const measure: MeasureHook = { afterChange: (_engine, change) => { calls.push(change); return Promise.resolve(undefined); } };
  return {
    ns, root, calls,
    // sysctl named explicitly (what the prefix implies): a mutant of the engine's default must not reach this process's own /proc/sys.
    engine: new HardeningEngine({ root, commandPrefix: ns.prefix, backend: 'nft', measure, sysctl: new CommandSysctl(hardeningRunner(ns.prefix)) }),
    save: () => ns.run(['iptables-nft-save', '-t', 'filter']),
    sysctl: async (key) => (await ns.run(['sysctl', '-n', key])).trim(),
  };
}

const builtin = (name: 'baseline' | 'strict') => loadProfile(name);
const agentPart = (save: string) => agentLines(parseFilterTable(save));
const withoutCounters = (save: string) => save.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');

async function failure(promise: Promise<unknown>): Promise<Error & { hint?: string }> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  return err as Error & { hint?: string };
}

describe('applying a profile', () => {
  it('loads its rules into the agent\'s chains, jumped to first, leaving other software\'s rules, and records what it did', async () => {
    const b = await board();
    await b.ns.run(['iptables-nft', '-A', 'INPUT', '-s', '192.0.2.1', '-j', 'ACCEPT']);
    const rpBefore = await b.sysctl('net.ipv4.conf.all.rp_filter');
    const baseline = await builtin('baseline');
    const report = await b.engine.apply(baseline);
    expect(report).toMatchObject({ profile: 'baseline', changed: true, confirmed: false, rolledBack: false, notes: [] });

    const saved = await b.save();
    expect(saved).toMatch(/-A INPUT -j IOT-AGENT-IN\n-A INPUT -s 192\.0\.2\.1\/32 -j ACCEPT\n/);
    expect(saved).toContain('-A OUTPUT -j IOT-AGENT-OUT');
    const applied = (await b.engine.applied())!;
    expect(applied).toMatchObject({ hash: report.hash, origin: 'builtin:baseline', backend: 'nft', confirmed: false, bootId: thisBoot() });
    expect(applied.firewall[4]).toEqual(agentPart(saved));
    expect(applied.firewall[6]).toEqual(agentPart(await b.ns.run(['ip6tables-nft-save', '-t', 'filter'])));
    expect(applied.readback![4]).toMatch(/^[0-9a-f]{64}$/);

    const snapshot = (await b.engine.records.snapshot.read())!;
    expect(snapshot).toMatchObject({ applied: null, backend: 'nft' });
    expect(agentPart(snapshot.firewall[4]!)).toEqual([]);
    expect(snapshot.sysctls['net.ipv4.conf.all.rp_filter']).toBe(rpBefore);
    expect(statSync(b.engine.records.snapshot.file).mode & 0o777).toBe(0o600);
    expect((await b.engine.records.originals.read())!.sysctls['net.ipv4.conf.all.rp_filter']).toBe(rpBefore);

    expect(await b.sysctl('net.ipv4.conf.all.rp_filter')).toBe('1');
    expect(readFileSync(path.join(b.root, 'etc/sysctl.d/90-iot-agent-hardening.conf'), 'utf8')).toContain('net.ipv4.conf.all.rp_filter = 1\n');
    expect(existsSync(path.join(b.root, 'etc/modprobe.d/iot-agent-usb-storage.conf'))).toBe(true);
    expect((await b.engine.verify()).drift).toBe(0);
    expect(await b.engine.verify(await builtin('strict'))).toMatchObject({ profile: 'strict', appliedHash: report.hash, drift: ofType(Number) });
    expect((await b.engine.verify(await builtin('strict'))).drift).toBeGreaterThan(0);
    expect(b.calls).toEqual([{ operation: 'apply', changed: true }]);
  });

  it('changes nothing when the profile is in force already', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    const snapshot = readFileSync(b.engine.records.snapshot.file, 'utf8');
    const again = await b.engine.apply(baseline);
    expect(again).toMatchObject({ changed: false, confirmed: false, rolledBack: false, notes: [] });
    expect(again.durationMs).toBeGreaterThanOrEqual(0);
    expect(readFileSync(b.engine.records.snapshot.file, 'utf8')).toBe(snapshot);
    expect(b.calls).toEqual([{ operation: 'apply', changed: true }, { operation: 'apply', changed: false }]);
  });

  it('repairs drift by applying again, and rollback still returns to the state before the profile', async () => {
    const b = await board();
    const before = withoutCounters(await b.save());
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    const takenAt = (await b.engine.records.snapshot.read())!.takenAt;
    await b.ns.run(['iptables-nft', '-D', 'IOT-AGENT-IN', '1']);
    await b.ns.run(['sysctl', '-q', '-w', 'net.ipv4.tcp_syncookies=0']);
    const drift = await b.engine.recordVerify('guard');
    expect(drift).toMatchObject({ by: 'guard', drift: 2 });
    expect(drift!.items.filter((i) => !i.ok).map((i) => i.target)).toEqual(['iptables IOT-AGENT-IN', 'net.ipv4.tcp_syncookies']);
    expect(await b.engine.lastVerified()).toEqual(drift);

    const repair = await b.engine.apply(baseline);
    expect(repair).toMatchObject({ changed: true, notes: [`re-applied over drift; rollback still returns to the state of ${takenAt}`] });
    expect((await b.engine.verify()).drift).toBe(0);
    expect(await b.engine.rollback()).toEqual({ restoredTo: takenAt, exact: true, notes: [] });
    expect(withoutCounters(await b.save())).toBe(before);
    expect(await b.engine.applied()).toBeNull();
  });
});

describe('the state before the agent', () => {
  it('is recorded once per key, and found in the oldest snapshot when a board never recorded it', async () => {
    const b = await board();
    const before = await b.sysctl('net.ipv4.conf.all.rp_filter');
    await b.engine.apply(await builtin('baseline'));
    await b.engine.records.originals.remove();
    await b.engine.apply(await builtin('strict'));
    const originals = (await b.engine.records.originals.read())!;
    expect(originals.sysctls['net.ipv4.conf.all.rp_filter']).toBe(before);
    expect(originals.sysfs).toEqual({ 'sys/bus/usb/devices/usb1/authorized_default': '1' });
    await b.engine.apply(await builtin('baseline'));
    expect((await b.engine.records.originals.read())!.sysctls['net.ipv4.conf.all.rp_filter']).toBe(before);
  });

  it('is kept for eight profiles back at most', async () => {
    const b = await board();
    const [baseline, strict] = [await builtin('baseline'), await builtin('strict')];
    for (let i = 0; i < 9; i++) await b.engine.apply(i % 2 === 0 ? baseline : strict);
    let depth = 0;
    for (let s = await b.engine.records.snapshot.read(); s; s = s.older ?? null) depth++;
    expect(depth).toBe(8);
  });
});

describe('rolling back', () => {
  it('walks back one profile at a time, to the firewall, sysctls and files as they were, then has nothing left', async () => {
    const b = await board();
    await b.ns.run(['iptables-nft', '-N', 'DOCKER']);
    await b.ns.run(['iptables-nft', '-A', 'INPUT', '-j', 'DOCKER']);
    const original = withoutCounters(await b.save());
    const syncookies = await b.sysctl('net.ipv4.tcp_syncookies');
    await b.engine.apply(await builtin('baseline'));
    const withBaseline = withoutCounters(await b.save());
    await b.engine.apply(await builtin('strict'));
    expect(await b.sysctl('net.ipv6.conf.all.disable_ipv6')).toBe('1');
    // strict leaves IPv6 to the kernel: baseline's IPv6 chains are gone, and recorded as gone.
    expect(agentPart(await b.ns.run(['ip6tables-nft-save', '-t', 'filter']))).toEqual([]);
    expect((await b.engine.applied())!.firewall[6]).toEqual([]);

    expect((await b.engine.rollback()).exact).toBe(true);
    expect(withoutCounters(await b.save())).toBe(withBaseline);
    expect((await b.engine.applied())!.profile.name).toBe('baseline');
    expect(readFileSync(path.join(b.root, 'sys/bus/usb/devices/usb1/authorized_default'), 'utf8')).toBe('1\n');

    await b.engine.rollback();
    expect(withoutCounters(await b.save())).toBe(original);
    expect(await b.engine.applied()).toBeNull();
    expect(await b.sysctl('net.ipv4.tcp_syncookies')).toBe(syncookies);
    expect(existsSync(path.join(b.root, 'etc/sysctl.d/90-iot-agent-hardening.conf'))).toBe(false);
    expect((await failure(b.engine.rollback())).message).toBe('no hardening snapshot to roll back to');
    expect(b.calls.map((c) => c.operation)).toEqual(['apply', 'apply', 'rollback', 'rollback']);
  });

  it('removes the agent\'s chains when the rules from before cannot be loaded and there is no known good profile', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const snapshot = (await b.engine.records.snapshot.read())!;
    await b.engine.records.snapshot.write({ ...snapshot, firewall: { 4: '*filter\n:IOT-AGENT-IN - [0:0]\n-A IOT-AGENT-IN -m no-such-match -j DROP\nCOMMIT\n', 6: null } });
    const { notes } = await b.engine.rollback();
    expect(notes).toEqual([
      expect.stringMatching(/^iptables: the state before the change could not be restored \(iptables rules were not loaded: .*\)$/),
      'iptables: removed the agent\'s chains and jumps (the firewall as before the agent)',
    ]);
    expect(agentPart(await b.save())).toEqual([]);
  });

  it('loads the known good profile\'s rules when the rules from before cannot be loaded', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    await b.engine.markKnownGood();
    const good = agentPart(await b.save());
    await b.engine.apply(await builtin('strict'));
    const snapshot = (await b.engine.records.snapshot.read())!;
    await b.engine.records.snapshot.write({ ...snapshot, firewall: { 4: `${snapshot.firewall[4]!.replace('COMMIT', '-A IOT-AGENT-OUT -m no-such-match -j DROP\nCOMMIT')}`, 6: null } });
    const { notes, exact } = await b.engine.rollback();
    expect(notes).toEqual([
      expect.stringMatching(/^iptables: the state before the change could not be restored/),
      'iptables: loaded the last known good profile\'s rules instead',
    ]);
    expect(exact).toBe(false);
    expect(agentPart(await b.save())).toEqual(good);
  });
});

describe('a change that fails half way', () => {
  it('restores the state before and says so, when a host value cannot be written', async () => {
    const b = await board();
    // The host controller went away between reading and writing (a dangling sysfs link).
    rmSync(path.join(b.root, 'sys/bus/usb/devices/usb1'), { recursive: true });
    symlinkSync(path.join(b.root, 'sys/devices/gone/usb1'), path.join(b.root, 'sys/bus/usb/devices/usb1'));
    const before = withoutCounters(await b.save());
    const rp = await b.sysctl('net.ipv4.conf.all.rp_filter');
    const err = await failure(b.engine.apply(await builtin('strict')));
    expect(err.message).toBe(`applying profile strict failed, previous state restored (${path.join(b.root, 'sys/bus/usb/devices/usb1/authorized_default')} did not exist before: left as is)`);
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(withoutCounters(await b.save())).toBe(before);
    expect(await b.sysctl('net.ipv4.conf.all.rp_filter')).toBe(rp);
    expect(await b.engine.applied()).toBeNull();
    expect(await b.engine.records.snapshot.read()).toBeNull();
    expect(b.calls).toEqual([]);
  });
});

describe('the boot path', () => {
  it('applies the configured profile on a fresh board and records the boot', async () => {
    const b = await board();
    const report = await b.engine.applyAtBoot(() => builtin('strict'), () => Promise.resolve([]));
    expect(report).toMatchObject({ profile: 'strict', changed: true, chosen: 'no profile recorded yet: the configured one' });
    expect(await b.engine.lastBoot()).toMatchObject({ bootId: thisBoot(), outcome: 'applied', profile: 'strict' });
  });

  it('goes back to the last known good profile after a confirmed change was interrupted', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    await b.engine.markKnownGood();
    const strict = await builtin('strict');
    await b.engine.apply(strict);
    await b.engine.records.pending.write({ hash: 'interrupted', startedAt: 'then', timeoutSeconds: 30 });
    const report = await b.engine.applyAtBoot(() => Promise.reject(new Error('configured profile must not be read')), () => Promise.resolve([]));
    expect(report).toMatchObject({ profile: 'baseline', changed: true, confirmed: true, chosen: 'last known good (a remote change was interrupted before it was confirmed)' });
    expect(await b.engine.records.pending.read()).toBeNull();
    expect((await b.engine.applied())!.profile.name).toBe('baseline');
  });

  it('loads the fail-closed rules, with the endpoints the agent needs, when the profile cannot be applied', async () => {
    const b = await board();
    const report = await b.engine.applyAtBoot(() => Promise.reject(new Error('profile lab: ipv6: must be one of disable, harden, leave')),
      () => Promise.resolve([{ host: '192.0.2.80', port: 3128 }]));
    expect(report).toEqual({ chosen: 'no profile recorded yet: the configured one', failClosed: true, error: 'profile lab: ipv6: must be one of disable, harden, leave', notes: [] });
    const saved = await b.save();
    expect(saved).toContain('-A IOT-AGENT-OUT -d 192.0.2.80/32 -p tcp -m tcp --dport 3128 -j ACCEPT');
    expect(saved).toMatch(/-A IOT-AGENT-IN -j DROP\n/);
    expect(saved).toContain('-A INPUT -j IOT-AGENT-IN');
    expect(await b.ns.run(['ip6tables-nft-save', '-t', 'filter'])).toContain('-A IOT-AGENT-OUT -j REJECT');
    expect(await b.engine.lastBoot()).toMatchObject({ outcome: 'fail-closed', profile: null, error: 'profile lab: ipv6: must be one of disable, harden, leave' });
  });
});

describe('a confirmed change', () => {
  /** A TLS listener on loopback inside the board's namespace, as an endpoint the profile lets through. */
  async function withEndpoint(b: Board): Promise<{ host: string; port: number }> {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-endpoint-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    await ensureServerCredentials(dir, ['127.0.0.1']);
    const server = b.ns.spawn([process.execPath, '-e',
      'const fs = require("fs"); require("tls").createServer({ key: fs.readFileSync(process.argv[1]), cert: fs.readFileSync(process.argv[2]) }, (s) => s.on("error", () => {}))'
      + '.listen(8883, "127.0.0.1", () => console.log("listening"))', path.join(dir, 'server.key'), path.join(dir, 'server.pem')]);
    cleanups.push(() => server.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`the TLS listener exited (${code})`)));
    });
    return { host: '127.0.0.1', port: 8883 };
  }

  it('makes the profile known good when the endpoints answer under it', async () => {
    const b = await board();
    const endpoint = await withEndpoint(b);
    const report = await b.engine.apply(await builtin('baseline'), { targets: [endpoint], timeoutSeconds: 10 });
    expect(report).toMatchObject({ changed: true, confirmed: true, rolledBack: false, probes: [{ target: '127.0.0.1:8883', ok: true }] });
    expect((await b.engine.applied())!.confirmed).toBe(true);
    expect((await b.engine.knownGood())!.hash).toBe(report.hash);
    expect(await b.engine.records.pending.read()).toBeNull();
    // Known good now: the same profile again is confirmed without probing.
    expect(await b.engine.apply(await builtin('baseline'))).toMatchObject({ changed: false, confirmed: true });
  });

  it('applies nothing when the endpoints do not answer before the change', async () => {
    const b = await board();
    const err = await failure(b.engine.apply(await builtin('baseline'), { targets: [{ host: '127.0.0.1', port: 8883 }], timeoutSeconds: 5 }));
    expect(err.message).toBe('cannot confirm: 127.0.0.1:8883 (ECONNREFUSED) unreachable before applying; nothing applied');
    expect(err.hint).toBe('check the --confirm-host endpoints, or apply without --confirm-timeout');
    expect(agentPart(await b.save())).toEqual([]);
    expect(await b.engine.applied()).toBeNull();
  });
});
