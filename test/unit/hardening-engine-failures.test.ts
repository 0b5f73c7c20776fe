import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Operation } from '../../agent/attestation/hardening-event.js';
import { AgentError } from '../../agent/lib/errors.js';
import type { CommandRunner, ExecResult } from '../../agent/lib/exec.js';
import { agentLines } from '../../hardening/drift.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import type { MeasureHook } from '../../hardening/measure.js';
import { parseFilterTable } from '../../hardening/restore-text.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { CommandSysctl } from '../../hardening/sysctl-io.js';
import { PrivateNetns } from '../support/private-netns.js';
import { scratchBoard } from '../support/scratch-board.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';

/**
 * The engine and its transaction when a step fails: the real iptables (nft), sysctl and ip
 * in a private network namespace, behind a runner that lets a test fail (or answer) any
 * command on cue. The happy paths are in hardening-engine-netns.test.ts.
 */
const thisBoot = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const NOTHING_RECORDED = 'no profile recorded yet: the configured one';
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  restorePath();
});

/**
 * What a cue decides for one command (named as `commandName` gives it): undefined runs it
 * for real, an Error fails it, an ExecResult answers it without running it.
 */
type Cue = (command: string, input: string) => Error | ExecResult | undefined;

/** The namespace's real runner, with a log of every command and a cue in front of it. */
class CueRunner implements CommandRunner {
  readonly log: { command: string; input: string }[] = [];
  cue: Cue = () => undefined;
  /** Rewrites a real command's output (undefined: as it is). */
  rewrite: (command: string, stdout: string) => string | undefined = () => undefined;

  constructor(private readonly inner: CommandRunner) {}

  async run(argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const command = commandName(argv);
    const input = options.input ?? '';
    this.log.push({ command, input });
    const answer = this.cue(command, input);
    if (answer instanceof Error) throw answer;
    if (answer) return answer;
    const result = await this.inner.run(argv, options);
    return { ...result, stdout: this.rewrite(command, result.stdout) ?? result.stdout };
  }

  commands(): string[] {
    return this.log.map((c) => c.command);
  }
}

/** A command as the log names it: the argv, except the TLS probe, named `probe host:port timeoutMs`. */
function commandName(argv: readonly string[]): string {
  if (argv[0] === process.execPath && argv[1] === '-e') return `probe ${argv[3]}:${argv[4]} ${argv[5]}`;
  return argv.join(' ');
}

/** Fails the commands `match` picks, as the runner does when one exits non-zero (the first `times` of them only, when given). */
function failing(match: (command: string) => boolean, times = Infinity): Cue {
  let left = times;
  return (command) => {
    if (!match(command) || left <= 0) return undefined;
    left--;
    return new AgentError(`${command} failed: refused on cue`);
  };
}

const RESTORE4 = 'iptables-nft-restore --noflush --wait';
const RESTORE6 = 'ip6tables-nft-restore --noflush --wait';
const SAVE4 = 'iptables-nft-save -t filter';
const SAVE6 = 'ip6tables-nft-save -t filter';
const TEST = ' --test';

interface Board {
  ns: PrivateNetns;
  root: string;
  runner: CueRunner;
  engine: HardeningEngine;
  calls: { operation: Operation; changed: boolean }[];
  save: () => Promise<string>;
  sysctl: (key: string) => Promise<string>;
}

/** A board with one USB host controller and its state directory, in a fresh namespace, its commands behind a cue. */
async function board(): Promise<Board> {
  const { root, ns } = await scratchBoard(cleanups);
  const runner = new CueRunner(hardeningRunner(ns.prefix));
  const calls: Board['calls'] = [];
  const measure: MeasureHook = { afterChange: (_engine, change) => { calls.push(change); return Promise.resolve(undefined); } };
  return {
    ns, root, runner, calls,
    // sysctl named explicitly: a mutant of the engine's default must not reach this process's own /proc/sys.
    engine: new HardeningEngine({ root, runner, backend: 'nft', measure, sysctl: new CommandSysctl(runner) }),
    save: () => ns.run(['iptables-nft-save', '-t', 'filter']),
    sysctl: async (key) => (await ns.run(['sysctl', '-n', key])).trim(),
  };
}

const builtin = (name: 'baseline' | 'strict') => loadProfile(name);
const agentPart = (save: string) => agentLines(parseFilterTable(save));
const withoutCounters = (save: string) => save.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');
const noEndpoints = () => Promise.resolve([]);

async function failure(promise: Promise<unknown>): Promise<Error & { hint?: string }> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  return err as Error & { hint?: string };
}

describe('the boot path over damaged records', () => {
  it('applies the configured profile when every record is corrupt, saying which ones it ignored', async () => {
    const b = await board();
    for (const record of [b.engine.records.applied, b.engine.records.knownGood]) writeFileSync(record.file, '{');
    const report = await b.engine.applyAtBoot(() => builtin('strict'), noEndpoints);
    expect(report).toMatchObject({ profile: 'strict', changed: true, chosen: NOTHING_RECORDED });
    // Read by the choice and again by the apply, each is named once.
    expect([...report.notes].sort()).toEqual([
      `hardening record ${b.engine.records.applied.file} is corrupt: not valid JSON (truncated or garbage): ignored`,
      `hardening record ${b.engine.records.knownGood.file} is corrupt: not valid JSON (truncated or garbage): ignored`,
    ]);
    expect(await b.engine.lastBoot()).toEqual({ bootId: thisBoot(), at: expect.any(String) as unknown, outcome: 'applied', profile: 'strict' });
    expect((await b.engine.applied())!.profile.name).toBe('strict');
  });

  it('goes back to the known good profile when the applied record is unreadable', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    await b.engine.markKnownGood();
    writeFileSync(b.engine.records.applied.file, '{"profile": 1}');
    const report = await b.engine.applyAtBoot(() => Promise.reject(new Error('configured profile must not be read')), noEndpoints);
    expect(report).toMatchObject({ profile: 'baseline', chosen: 'last known good (no usable record of the applied profile)' });
    expect('failClosed' in report).toBe(false);
    expect(report.notes).toEqual([`hardening record ${b.engine.records.applied.file} is corrupt: no profile: ignored`]);
  });

  it('applies the recorded profile again, not the configured one, and clears a stale pending marker', async () => {
    const b = await board();
    await b.engine.apply(await builtin('strict'));
    // A pending marker without a known good profile to fall back on: the applied one stays.
    await b.engine.records.pending.write({ hash: 'interrupted', startedAt: 'then', timeoutSeconds: 30 });
    const report = await b.engine.applyAtBoot(() => Promise.reject(new Error('configured profile must not be read')), noEndpoints);
    expect(report).toMatchObject({ profile: 'strict', changed: false, chosen: 'applied profile (not yet confirmed)', notes: [] });
    expect(await b.engine.records.pending.read()).toBeNull();
    expect(await b.engine.lastBoot()).toMatchObject({ outcome: 'applied', profile: 'strict' });
  });

  it('gives an old snapshot the mode it has now (root\'s eyes only)', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    chmodSync(b.engine.records.snapshot.file, 0o644);
    await b.engine.applyAtBoot(() => builtin('baseline'), noEndpoints);
    expect(statSync(b.engine.records.snapshot.file).mode & 0o777).toBe(0o600);
  });

  it('loads the fail-closed rules when a record cannot even be read, noting the modes it could not tighten', async () => {
    const b = await board();
    symlinkSync('snapshot.json', b.engine.records.snapshot.file);
    const report = await b.engine.applyAtBoot(() => builtin('baseline'), noEndpoints);
    expect(report).toMatchObject({ failClosed: true, chosen: NOTHING_RECORDED, error: `cannot read hardening record ${b.engine.records.snapshot.file}: ELOOP: too many symbolic links encountered, open '${b.engine.records.snapshot.file}'` });
    expect(report.notes).toEqual([expect.stringMatching(/^could not tighten record modes: ELOOP/) as unknown]);
    expect(await b.save()).toMatch(/-A IOT-AGENT-IN -j DROP\n/);
    expect(await b.engine.lastBoot()).toMatchObject({ outcome: 'fail-closed', profile: 'baseline' });
  });
});

describe('the boot path when the profile cannot be applied', () => {
  it('loads the fail-closed rules, and records which profile failed and why', async () => {
    const b = await board();
    b.runner.cue = failing((c) => c === RESTORE4, 1);
    const report = await b.engine.applyAtBoot(() => builtin('strict'), () => Promise.resolve([{ host: '192.0.2.80', port: 3128 }]));
    const error = `applying profile strict failed, previous state restored: iptables rules were not loaded: ${RESTORE4} failed: refused on cue`;
    expect(report).toEqual({ chosen: NOTHING_RECORDED, failClosed: true, error, notes: [] });
    expect(await b.save()).toContain('-A IOT-AGENT-OUT -d 192.0.2.80/32 -p tcp -m tcp --dport 3128 -j ACCEPT');
    expect(await b.engine.lastBoot()).toEqual({ bootId: thisBoot(), at: expect.any(String) as unknown, outcome: 'fail-closed', profile: 'strict', error });
    expect(await b.engine.applied()).toBeNull();
  });

  it('lets no extra endpoint through when the endpoints cannot be read', async () => {
    const b = await board();
    const report = await b.engine.applyAtBoot(() => Promise.reject(new Error('no profile')), () => Promise.reject(new Error('no config')));
    expect(report).toMatchObject({ failClosed: true, error: 'no profile', notes: [] });
    const outbound = agentPart(await b.save()).filter((l) => l.startsWith('-A IOT-AGENT-OUT '));
    expect(outbound.at(-1)).toBe('-A IOT-AGENT-OUT -j REJECT --reject-with icmp-port-unreachable');
    expect(outbound.filter((l) => l.includes(' -d '))).toEqual([]);
  });

  it('turns IPv6 off when the IPv6 fail-closed rules cannot be loaded', async () => {
    const b = await board();
    b.runner.cue = failing((c) => c === RESTORE6);
    const report = await b.engine.applyAtBoot(() => Promise.reject(new Error('no profile')), noEndpoints);
    expect(report).toMatchObject({ failClosed: true, notes: [`ip6tables fail-closed rules not loaded (ip6tables rules were not loaded: ${RESTORE6} failed: refused on cue): IPv6 disabled instead`] });
    expect(await b.sysctl('net.ipv6.conf.all.disable_ipv6')).toBe('1');
    expect(await b.sysctl('net.ipv6.conf.default.disable_ipv6')).toBe('1');
    expect(await b.save()).toContain('-A INPUT -j IOT-AGENT-IN');
  });

  it('fails, saying both why the profile and the fail-closed rules failed, when no rules can be loaded at all', async () => {
    const b = await board();
    b.runner.cue = failing((c) => c.startsWith(RESTORE4));
    const err = await failure(b.engine.applyAtBoot(() => builtin('baseline'), noEndpoints));
    expect(err.message).toBe(`the boot profile could not be applied (iptables rules were rejected by --test: ${RESTORE4} --test failed: refused on cue), nor the fail-closed rules`);
    expect(err.hint).toBe('check iptables and the kernel\'s netfilter modules; `iot-agent harden apply` to retry');
    expect((err.cause as Error).message).toBe('iptables rules were not loaded');
    expect(await b.engine.lastBoot()).toBeNull();
  });

  it('still comes up fail-closed when the outcome cannot be recorded, and says so', async () => {
    const b = await board();
    mkdirSync(path.join(b.engine.records.boot.file, 'in-the-way'), { recursive: true });
    const report = await b.engine.applyAtBoot(() => Promise.reject(new Error('no profile')), noEndpoints);
    expect(report).toMatchObject({ failClosed: true, error: 'no profile' });
    expect(report.notes).toEqual([expect.stringMatching(/^could not record the boot outcome: /) as unknown]);
    expect(await b.save()).toMatch(/-A IOT-AGENT-IN -j DROP\n/);
  });
});

describe('a transaction that fails on the way', () => {
  it('changes nothing, and takes no snapshot, when the kernel rejects the rules in --test', async () => {
    const b = await board();
    const before = withoutCounters(await b.save());
    b.runner.cue = failing((c) => c === RESTORE4 + TEST);
    const err = await failure(b.engine.apply(await builtin('baseline')));
    expect(err.message).toBe('iptables rules were rejected by --test');
    expect(err.hint).toBe('run `iot-agent harden plan` to see the rule text; is the kernel missing an xtables match (conntrack, hashlimit, comment)?');
    expect(withoutCounters(await b.save())).toBe(before);
    expect(b.runner.commands()).not.toContain(RESTORE4);
    expect(await b.engine.records.snapshot.read()).toBeNull();
    expect(await b.engine.applied()).toBeNull();
    expect(existsSync(path.join(b.root, 'etc/sysctl.d/90-iot-agent-hardening.conf'))).toBe(false);
    expect(b.calls).toEqual([]);
  });

  it('tests each family\'s rules once, with every jump, while it reads the live state', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const tests = b.runner.log.filter((c) => c.command.endsWith(TEST));
    expect(tests.map((c) => c.command)).toEqual([RESTORE4 + TEST, RESTORE6 + TEST]);
    expect(tests[0]!.input).toContain('-I INPUT 1 -j IOT-AGENT-IN\n-I OUTPUT 1 -j IOT-AGENT-OUT\nCOMMIT\n');
    // Started before the table was read: the --test does not wait for the save.
    expect(b.runner.commands().indexOf(RESTORE4 + TEST)).toBeLessThan(b.runner.commands().indexOf(SAVE4));
  });

  it('refuses IPv6 rules the kernel rejects in --test, having loaded nothing', async () => {
    const b = await board();
    b.runner.cue = failing((c) => c === RESTORE6 + TEST);
    const err = await failure(b.engine.apply(await builtin('baseline')));
    expect(err.message).toBe('ip6tables rules were rejected by --test');
    expect(b.runner.commands().filter((c) => c === RESTORE6 + TEST)).toHaveLength(2);
    expect(b.runner.commands()).not.toContain(RESTORE4);
    expect(b.runner.commands()).not.toContain(RESTORE6);
  });

  it('never doubles a jump that is already in place when it repairs drift', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    await b.ns.run(['iptables-nft', '-D', 'IOT-AGENT-IN', '1']);
    await b.engine.apply(baseline);
    for (const saved of [await b.save(), await b.ns.run(['ip6tables-nft-save', '-t', 'filter'])]) {
      expect(saved.split('\n').filter((l) => l === '-A INPUT -j IOT-AGENT-IN')).toHaveLength(1);
      expect(saved.split('\n').filter((l) => l === '-A OUTPUT -j IOT-AGENT-OUT')).toHaveLength(1);
    }
    expect((await b.engine.verify()).drift).toBe(0);
  });

  it('tests the exact text again when the early --test failed, and applies it when that passes', async () => {
    const b = await board();
    b.runner.cue = failing((c) => c === RESTORE4 + TEST, 1);
    const report = await b.engine.apply(await builtin('baseline'));
    expect(report).toMatchObject({ changed: true });
    expect(b.runner.commands().filter((c) => c === RESTORE4 + TEST)).toHaveLength(2);
  });

  it('tests the exact text, not an early guess, when the profile was applied in this boot already', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    await b.ns.run(['iptables-nft', '-D', 'IOT-AGENT-IN', '1']);
    b.runner.log.length = 0;
    await b.engine.apply(baseline);
    const tests = b.runner.log.filter((c) => c.command === RESTORE4 + TEST);
    expect(tests).toHaveLength(1);
    // The jumps are in place: the text loaded (and tested) leaves them alone.
    expect(tests[0]!.input).not.toContain('-I INPUT 1');
    expect(b.runner.log.indexOf(tests[0]!)).toBeGreaterThan(b.runner.commands().indexOf(SAVE4));
  });

  it('tests early again when the profile was applied in an earlier boot (the kernel started with empty tables)', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    await b.engine.records.applied.write({ ...(await b.engine.applied())!, bootId: 'an-earlier-boot' });
    await b.ns.run(['iptables-nft', '-D', 'IOT-AGENT-IN', '1']);
    b.runner.log.length = 0;
    await b.engine.apply(baseline);
    const tests = b.runner.log.filter((c) => c.command === RESTORE4 + TEST);
    expect(tests).toHaveLength(1);
    expect(tests[0]!.input).toContain('-I INPUT 1 -j IOT-AGENT-IN');
    expect((await b.engine.applied())!.bootId).toBe(thisBoot());
  });

  it('restores the state before when the rules cannot be loaded, and keeps no record of the attempt', async () => {
    const b = await board();
    const before = withoutCounters(await b.save());
    const rp = await b.sysctl('net.ipv4.conf.all.rp_filter');
    b.runner.cue = failing((c) => c === RESTORE4);
    const err = await failure(b.engine.apply(await builtin('strict')));
    expect(err.message).toBe('applying profile strict failed, previous state restored');
    expect((err.cause as Error).message).toBe('iptables rules were not loaded');
    expect(withoutCounters(await b.save())).toBe(before);
    expect(await b.sysctl('net.ipv4.conf.all.rp_filter')).toBe(rp);
    expect(readFileSync(path.join(b.root, 'sys/bus/usb/devices/usb1/authorized_default'), 'utf8')).toBe('1\n');
    expect(existsSync(path.join(b.root, 'etc/sysctl.d/90-iot-agent-hardening.conf'))).toBe(false);
    expect(await b.engine.applied()).toBeNull();
    expect(await b.engine.records.snapshot.read()).toBeNull();
  });

  it('goes back to the profile before, with its snapshot, when the next one fails to load', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const applied = await b.engine.applied();
    const snapshot = await b.engine.records.snapshot.read();
    const withBaseline = withoutCounters(await b.save());
    b.runner.cue = failing((c) => c === RESTORE6, 1);
    await failure(b.engine.apply(await builtin('strict')));
    expect(await b.engine.applied()).toEqual(applied);
    expect(await b.engine.records.snapshot.read()).toEqual(snapshot);
    expect(withoutCounters(await b.save())).toBe(withBaseline);
  });

  it('keeps the snapshot from before the profile when a repair of that profile fails', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    const snapshot = await b.engine.records.snapshot.read();
    await b.ns.run(['iptables-nft', '-D', 'IOT-AGENT-IN', '1']);
    b.runner.cue = failing((c) => c === RESTORE6, 1);
    await failure(b.engine.apply(baseline));
    expect(await b.engine.records.snapshot.read()).toEqual(snapshot);
    expect((await b.engine.applied())!.profile.name).toBe('baseline');
  });

  it('takes a fresh snapshot when it repairs a profile whose snapshot is gone', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    await b.engine.records.snapshot.remove();
    await b.ns.run(['iptables-nft', '-D', 'IOT-AGENT-IN', '1']);
    const report = await b.engine.apply(baseline);
    expect(report).toMatchObject({ changed: true, notes: [] });
    const snapshot = (await b.engine.records.snapshot.read())!;
    expect(snapshot.applied!.hash).toBe(report.hash);
    expect(snapshot.older).toBeNull();
  });

  it('says how it restored the state when the rules from before could not be loaded', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    // The load of strict's rules fails, and so does the restore of baseline's: the agent's chains go.
    b.runner.cue = failing((c) => c === RESTORE4, 2);
    const err = await failure(b.engine.apply(await builtin('strict')));
    expect(err.message).toBe('applying profile strict failed, previous state restored ('
      + `iptables: the state before the change could not be restored (iptables rules were not loaded: ${RESTORE4} failed: refused on cue); `
      + 'iptables: removed the agent\'s chains and jumps (the firewall as before the agent))');
    expect(agentPart(await b.save())).toEqual([]);
  });

  it('restores the state before when the rules cannot be read back after loading them', async () => {
    const b = await board();
    const before = withoutCounters(await b.save());
    let loaded = false;
    b.runner.cue = (command) => {
      if (command === RESTORE4) loaded = true;
      else if (command === SAVE4 && loaded) {
        loaded = false;
        return new AgentError(`${command} failed: refused on cue`);
      }
      return undefined;
    };
    const err = await failure(b.engine.apply(await builtin('baseline')));
    expect(err.message).toBe('applying profile baseline failed, previous state restored');
    expect((err.cause as Error).message).toBe('iptables-save failed after loading the rules');
    expect(withoutCounters(await b.save())).toBe(before);
    expect(await b.engine.applied()).toBeNull();
  });

  it('refuses a profile whose IPv4 sysctl this kernel lacks, and restores the state before', async () => {
    const b = await board();
    b.runner.rewrite = (command, stdout) => (command.startsWith('sysctl -e ') ? stdout.replace(/^net\.ipv4\.tcp_syncookies = .*\n/m, '') : undefined);
    const err = await failure(b.engine.apply(await builtin('baseline')));
    expect(err.message).toBe('applying profile baseline failed, previous state restored');
    expect((err.cause as Error).message).toBe('sysctl net.ipv4.tcp_syncookies does not exist on this kernel');
    expect(b.runner.commands()).not.toContain(RESTORE4);
    expect(await b.engine.applied()).toBeNull();
  });

  it('skips the IPv6 sysctls a kernel without IPv6 lacks, with a note', async () => {
    const b = await board();
    b.runner.rewrite = (command, stdout) => (command.startsWith('sysctl -e ') ? stdout.replace(/^net\.ipv6\.conf\.all\.disable_ipv6 = .*\n/m, '') : undefined);
    const report = await b.engine.apply(await builtin('strict'));
    expect(report.notes).toEqual(['sysctl net.ipv6.conf.all.disable_ipv6 absent (IPv6 not in this kernel): skipped']);
    const writes = b.runner.commands().filter((c) => c.startsWith('sysctl -q -w '));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toContain('net.ipv6.conf.default.disable_ipv6=1');
    expect(writes[0]).not.toContain('net.ipv6.conf.all.disable_ipv6');
  });

  it('sets only the sysctls that differ from their live value', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    await b.ns.run(['sysctl', '-q', '-w', 'net.ipv4.tcp_syncookies=0']);
    const originals = statSync(b.engine.records.originals.file).ino;
    b.runner.log.length = 0;
    await b.engine.apply(baseline);
    expect(b.runner.commands().filter((c) => c.startsWith('sysctl -q -w '))).toEqual(['sysctl -q -w net.ipv4.tcp_syncookies=1']);
    expect(await b.sysctl('net.ipv4.tcp_syncookies')).toBe('1');
    // Nothing new to remember: the originals record is left as it was, not rewritten.
    expect(b.runner.log.length).toBeGreaterThan(0);
    expect(statSync(b.engine.records.originals.file).ino).toBe(originals);
  });

  it('leaves IPv6 alone when ip6tables cannot read its table and the profile has no IPv6 rules', async () => {
    const b = await board();
    b.runner.cue = failing((c) => c === SAVE6);
    const report = await b.engine.apply(await builtin('strict'));
    expect(report.notes).toEqual(['ip6tables unavailable: IPv6 rules left alone']);
    expect(b.runner.commands().filter((c) => c.startsWith(RESTORE6))).toEqual([]);
    expect((await b.engine.applied())!.firewall[6]).toBeNull();
    expect((await b.engine.records.snapshot.read())!.firewall[6]).toBeNull();
  });

  it('records that the agent has no IPv6 rules when the profile leaves IPv6 to the kernel', async () => {
    const b = await board();
    await b.engine.apply(await builtin('strict'));
    expect((await b.engine.applied())!.firewall[6]).toEqual([]);
    expect(b.runner.commands().filter((c) => c.startsWith(RESTORE6))).toEqual([]);
  });

  it('refuses a profile with IPv6 rules when ip6tables cannot read its table', async () => {
    const b = await board();
    b.runner.cue = failing((c) => c === SAVE6);
    const err = await failure(b.engine.apply(await builtin('baseline')));
    expect(err.message).toBe(`${SAVE6} failed: refused on cue`);
    expect(b.runner.commands()).not.toContain(RESTORE4);
  });

  it('records no IPv6 lines when they cannot be read back after loading', async () => {
    const b = await board();
    let loaded = false;
    b.runner.cue = (command) => {
      if (command === RESTORE6) loaded = true;
      return command === SAVE6 && loaded ? new AgentError(`${command} failed: refused on cue`) : undefined;
    };
    const report = await b.engine.apply(await builtin('baseline'));
    expect(report).toMatchObject({ changed: true, notes: [] });
    const applied = (await b.engine.applied())!;
    expect(applied.firewall[6]).toBeNull();
    expect(applied.firewall[4]).toEqual(agentPart(await b.save()));
  });
});

describe('the values from before the agent', () => {
  it('keeps a recorded original over what the oldest snapshot says', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const recorded = (await b.engine.records.originals.read())!;
    await b.engine.records.originals.write({ ...recorded, sysctls: { ...recorded.sysctls, 'net.ipv4.conf.all.rp_filter': '2' } });
    await b.engine.apply(await builtin('strict'));
    expect((await b.engine.records.originals.read())!.sysctls['net.ipv4.conf.all.rp_filter']).toBe('2');
  });

  it('finds them in the oldest snapshot, however far back, when none were recorded', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const oldest = (await b.engine.records.snapshot.read())!;
    await b.engine.records.snapshot.write({ ...oldest, sysctls: { ...oldest.sysctls, 'net.ipv4.conf.all.rp_filter': '0' } });
    await b.engine.apply(await builtin('strict'));
    await b.engine.apply(await builtin('baseline'));
    await b.engine.records.originals.remove();
    await b.engine.apply(await builtin('strict'));
    expect((await b.engine.records.originals.read())!.sysctls['net.ipv4.conf.all.rp_filter']).toBe('0');
  });

  it('takes them from the live state when the oldest snapshot was taken under a profile already', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const applied = await b.engine.applied();
    const snapshot = (await b.engine.records.snapshot.read())!;
    // The chain was cut (eight profiles back): its last snapshot is not from before the agent.
    await b.engine.records.snapshot.write({ ...snapshot, applied, sysctls: { ...snapshot.sysctls, 'net.ipv4.conf.all.rp_filter': '0' } });
    await b.engine.records.originals.remove();
    const live = await b.sysctl('net.ipv4.conf.all.rp_filter');
    await b.engine.apply(await builtin('strict'));
    expect((await b.engine.records.originals.read())!.sysctls['net.ipv4.conf.all.rp_filter']).toBe(live);
  });
});

describe('reusing the recorded rules', () => {
  it('reads the rules back after loading them the first time', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const commands = b.runner.commands();
    expect(commands.slice(commands.indexOf(RESTORE4))).toContain(SAVE4);
    expect(commands.slice(commands.indexOf(RESTORE6))).toContain(SAVE6);
  });

  it('reuses the lines recorded by the last load of the same rules with the same tool, without reading them back', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    const first = (await b.engine.applied())!;
    // Rules flushed, as at the next boot: the same profile is loaded again.
    await b.ns.run(['iptables-nft', '-F', 'IOT-AGENT-IN']);
    await b.ns.run(['ip6tables-nft', '-F', 'IOT-AGENT-IN']);
    b.runner.log.length = 0;
    await b.engine.apply(baseline);
    const commands = b.runner.commands();
    expect(commands.slice(commands.indexOf(RESTORE4))).not.toContain(SAVE4);
    expect(commands.slice(commands.indexOf(RESTORE6))).not.toContain(SAVE6);
    const again = (await b.engine.applied())!;
    expect(again.firewall).toEqual(first.firewall);
    expect(again.readback).toEqual(first.readback);
    expect(first.firewall[4]).toEqual(agentPart(await b.save()));
  });

  it('reads the rules back when the recorded lines came from other rules or another tool', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    const first = (await b.engine.applied())!;
    await b.engine.records.applied.write({ ...first, firewall: { 4: ['stale'], 6: ['stale'] }, readback: { 4: 'another tool', 6: null } });
    await b.ns.run(['iptables-nft', '-F', 'IOT-AGENT-IN']);
    b.runner.log.length = 0;
    await b.engine.apply(baseline);
    const commands = b.runner.commands();
    expect(commands.slice(commands.indexOf(RESTORE4))).toContain(SAVE4);
    const again = (await b.engine.applied())!;
    expect(again.firewall).toEqual(first.firewall);
    expect(again.readback).toEqual(first.readback);
  });

  it('reads the rules back over a record from a version that kept no readback', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    const older = { ...(await b.engine.applied())! };
    delete older.readback;
    await b.engine.records.applied.write(older);
    await b.ns.run(['iptables-nft', '-F', 'IOT-AGENT-IN']);
    b.runner.log.length = 0;
    await b.engine.apply(baseline);
    const commands = b.runner.commands();
    expect(commands.slice(commands.indexOf(RESTORE4))).toContain(SAVE4);
    expect((await b.engine.applied())!.readback![4]).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads the rules back when the save tool is another binary (an alternatives switch)', async () => {
    const b = await board();
    const baseline = await builtin('baseline');
    await b.engine.apply(baseline);
    const first = (await b.engine.applied())!;
    const real = (await b.ns.run(['sh', '-c', 'command -v iptables-nft-save'])).trim();
    standInPrograms({ 'iptables-nft-save': `exec ${real} "$@"` });
    await b.ns.run(['iptables-nft', '-F', 'IOT-AGENT-IN']);
    b.runner.log.length = 0;
    await b.engine.apply(baseline);
    const commands = b.runner.commands();
    expect(commands.slice(commands.indexOf(RESTORE4))).toContain(SAVE4);
    const again = (await b.engine.applied())!;
    expect(again.readback![4]).not.toBe(first.readback![4]);
    expect(again.readback![6]).toBe(first.readback![6]);
    expect(again.firewall).toEqual(first.firewall);
  });

  it('keys the readback on the rules: another profile\'s lines are read back', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const baselineKey = (await b.engine.applied())!.readback![4];
    await b.engine.apply(await builtin('strict'));
    const strict = (await b.engine.applied())!;
    expect(strict.readback![4]).toMatch(/^[0-9a-f]{64}$/);
    expect(strict.readback![4]).not.toBe(baselineKey);
    expect(strict.readback![6]).toBeNull();
    expect(strict.firewall[4]).toEqual(agentPart(await b.save()));
  });
});

describe('a confirmed change when the endpoints stop answering', () => {
  const endpoint = { host: '127.0.0.1', port: 8883 };
  const PROBE = 'probe 127.0.0.1:8883';
  const answer = (ok: boolean): ExecResult => ({ stdout: JSON.stringify({ ok, detail: ok ? 'TLS handshake completed (TLSv1.3)' : 'ECONNREFUSED' }), stderr: '' });

  /** Probes answer before the rules are loaded, not while they are, and after the restore as `after` says. */
  function cutOffByTheRules(b: Board, after: boolean): { pendingDuringProbe: unknown[] } {
    let state: 'before' | 'loaded' | 'restored' = 'before';
    const pendingDuringProbe: unknown[] = [];
    b.runner.cue = (command) => {
      if (command === RESTORE4) state = state === 'before' ? 'loaded' : 'restored';
      if (!command.startsWith(PROBE)) return undefined;
      if (state === 'loaded') pendingDuringProbe.push(JSON.parse(readFileSync(b.engine.records.pending.file, 'utf8')));
      return answer(state === 'before' || (state === 'restored' && after));
    };
    return { pendingDuringProbe };
  }

  it('rolls back after the timeout, says why, and that the endpoints answer again', async () => {
    const b = await board();
    const before = withoutCounters(await b.save());
    const { pendingDuringProbe } = cutOffByTheRules(b, true);
    const report = await b.engine.apply(await builtin('baseline'), { targets: [endpoint], timeoutSeconds: 1 });
    expect(report).toMatchObject({
      profile: 'baseline', changed: true, confirmed: false, rolledBack: true, reconnected: true,
      probes: [{ target: '127.0.0.1:8883', ok: false, detail: 'ECONNREFUSED' }],
      reason: 'not reachable within 1 s after applying baseline (127.0.0.1:8883: ECONNREFUSED); previous state restored',
    });
    // It gave the endpoints the whole confirm time, probing all along.
    expect(report.durationMs).toBeGreaterThanOrEqual(1000);
    expect(pendingDuringProbe[0]).toEqual({ hash: report.hash, startedAt: expect.any(String) as unknown, timeoutSeconds: 1 });
    expect(pendingDuringProbe.length).toBeGreaterThanOrEqual(2);
    expect(withoutCounters(await b.save())).toBe(before);
    expect(await b.engine.applied()).toBeNull();
    expect(await b.engine.records.snapshot.read()).toBeNull();
    expect(await b.engine.records.pending.read()).toBeNull();
    expect(await b.engine.knownGood()).toBeNull();
    expect(b.calls).toEqual([{ operation: 'apply', changed: false }]);
    // Before, during and after: each probe with at most 3 s.
    const probes = b.runner.commands().filter((c) => c.startsWith(PROBE));
    expect(probes[0]).toBe(`${PROBE} 3000`);
    expect(probes.at(-1)).toBe(`${PROBE} 3000`);
  });

  it('says so when the endpoints do not answer after the rollback either', async () => {
    const b = await board();
    cutOffByTheRules(b, false);
    const report = await b.engine.apply(await builtin('baseline'), { targets: [endpoint], timeoutSeconds: 1 });
    expect(report).toMatchObject({ rolledBack: true, reconnected: false });
  });

  it('is not reconnected while any one endpoint still does not answer after the rollback', async () => {
    const b = await board();
    let loads = 0;
    b.runner.cue = (command) => {
      if (command === RESTORE4) loads++;
      if (!command.startsWith('probe ')) return undefined;
      return answer(loads === 0 || (loads > 1 && command.startsWith(PROBE)));
    };
    const report = await b.engine.apply(await builtin('baseline'), { targets: [endpoint, { host: '127.0.0.2', port: 443 }], timeoutSeconds: 1 });
    expect(report).toMatchObject({ rolledBack: true, reconnected: false });
  });

  it('returns to the profile before, which stays the known good one', async () => {
    const b = await board();
    await b.engine.apply(await builtin('strict'));
    await b.engine.markKnownGood();
    const good = await b.engine.knownGood();
    const applied = await b.engine.applied();
    const snapshot = await b.engine.records.snapshot.read();
    const withStrict = withoutCounters(await b.save());
    let loads = 0;
    b.runner.cue = (command) => {
      if (command === RESTORE4) loads++;
      return command.startsWith(PROBE) ? answer(loads !== 1) : undefined;
    };
    const report = await b.engine.apply(await builtin('baseline'), { targets: [endpoint], timeoutSeconds: 1 });
    expect(report).toMatchObject({ rolledBack: true, reconnected: true });
    expect(await b.engine.knownGood()).toEqual(good);
    expect(await b.engine.applied()).toEqual(applied);
    expect(await b.engine.records.snapshot.read()).toEqual(snapshot);
    expect(withoutCounters(await b.save())).toBe(withStrict);
  });

  it('names every endpoint that does not answer before the change', async () => {
    const b = await board();
    b.runner.cue = (command) => (command.startsWith('probe ') ? answer(false) : undefined);
    const err = await failure(b.engine.apply(await builtin('baseline'), { targets: [endpoint, { host: '127.0.0.2', port: 443 }], timeoutSeconds: 5 }));
    expect(err.message).toBe('cannot confirm: 127.0.0.1:8883 (ECONNREFUSED), 127.0.0.2:443 (ECONNREFUSED) unreachable before applying; nothing applied');
    expect(b.runner.commands()).not.toContain(RESTORE4);
    expect(await b.engine.records.snapshot.read()).toBeNull();
  });

  it('commits as soon as the endpoints answer: the profile becomes known good and nothing is pending', async () => {
    const b = await board();
    const NOW = Date.parse('2024-06-01T12:00:00Z');
    const runner = new CueRunner(hardeningRunner(b.ns.prefix));
    runner.cue = (command) => (command.startsWith(PROBE) ? answer(true) : undefined);
    const engine = new HardeningEngine({ root: b.root, runner, backend: 'nft', now: () => NOW, sysctl: new CommandSysctl(runner) });
    const report = await engine.apply(await builtin('baseline'), { targets: [endpoint], timeoutSeconds: 30 });
    expect(report).toMatchObject({ changed: true, confirmed: true, rolledBack: false, durationMs: 0, probes: [{ target: '127.0.0.1:8883', ok: true }] });
    expect(report.reason).toBeUndefined();
    expect(await engine.knownGood()).toEqual({ profile: (await builtin('baseline')).profile, hash: report.hash, origin: 'builtin:baseline', confirmedAt: '2024-06-01T12:00:00.000Z' });
    expect((await engine.applied())!).toMatchObject({ confirmed: true, appliedAt: '2024-06-01T12:00:00.000Z' });
    expect(await engine.records.pending.read()).toBeNull();
    expect(runner.commands().filter((c) => c.startsWith(PROBE))).toHaveLength(2);
    // An engine without a measurement hook rolls back as well.
    expect(await engine.rollback()).toMatchObject({ exact: true, notes: [] });
    expect(await engine.applied()).toBeNull();
  });
});

describe('going back', () => {
  it('applies the known good profile again on request', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    await b.engine.markKnownGood();
    await b.engine.apply(await builtin('strict'));
    const report = await b.engine.revertToKnownGood();
    expect(report).toMatchObject({ profile: 'baseline', changed: true, confirmed: true });
    expect((await b.engine.applied())!).toMatchObject({ origin: 'builtin:baseline', confirmed: true });
  });

  it('says the rollback was not exact when the firewall differs from the snapshot', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const snapshot = (await b.engine.records.snapshot.read())!;
    await b.engine.records.snapshot.write({ ...snapshot, firewall: { 4: snapshot.firewall[4]!.replace('COMMIT', ':EXTRA - [0:0]\nCOMMIT'), 6: null } });
    const report = await b.engine.rollback();
    expect(report).toEqual({ restoredTo: snapshot.takenAt, exact: false, notes: [] });
    expect(b.calls.at(-1)).toEqual({ operation: 'rollback', changed: true });
  });

  it('verifies a named profile on a board where none was applied', async () => {
    const b = await board();
    const report = await b.engine.verify(await builtin('strict'));
    expect(report).toMatchObject({ profile: 'strict', appliedHash: null });
    expect(report.drift).toBe(report.items.filter((i) => !i.ok).length);
    expect(report.drift).toBeGreaterThan(0);
  });

  it('records a verify of the applied profile, with who ran it', async () => {
    const b = await board();
    await b.engine.apply(await builtin('baseline'));
    const record = await b.engine.recordVerify('apply');
    expect(record).toMatchObject({ profile: 'baseline', drift: 0, by: 'apply' });
    expect(await b.engine.lastVerified()).toEqual(record);
  });
});
