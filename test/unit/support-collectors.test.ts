import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { list } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { writeArchive } from '../../agent/support/archive.js';
import { execBounded } from '../../agent/lib/exec.js';
import { daemonLogCollector, journalCollector, MAX_JOURNAL_BYTES } from '../../agent/support/collect-logs.js';
import { NotAvailable, runCollector, type Collector } from '../../agent/support/collector.js';
import { keysFromDefaults } from '../../agent/support/config-keys.js';
import { MAX_SINCE_SECONDS, parseSince } from '../../agent/support/since.js';
import type { BundleSources } from '../../agent/support/sources.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';
import { ofType } from '../support/matchers.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-support-'));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  restorePath();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('--since durations', () => {
  it('adds up several parts, up to 7 digits each', () => {
    expect(parseSince('1d1h1m1s')).toBe(86_400 + 3_600 + 60 + 1);
    expect(parseSince('1234567s')).toBe(1_234_567);
    expect(parseSince('1s')).toBe(1);
    expect(MAX_SINCE_SECONDS).toBe(31 * 86_400);
  });

  it('tells a malformed duration from one out of range', () => {
    expect(() => parseSince('12345678s')).toThrow('invalid duration "12345678s"');
    expect(() => parseSince('x1h')).toThrow('invalid duration "x1h"');
    expect(() => parseSince('1h ')).toThrow('invalid duration "1h "');
    expect(() => parseSince('2678401s')).toThrow('duration "2678401s" is out of range');
    expect(() => parseSince('0m0s')).toThrow('duration "0m0s" is out of range');
    expect(parseSince('2678400s')).toBe(MAX_SINCE_SECONDS);
  });

  it('hints at the form and the limit', () => {
    expect(() => parseSince('soon')).toThrow(expect.objectContaining({ hint: 'a duration such as 24h, 90m, 2d or 1h30m (s, m, h, d), at most 31d' }));
    expect(() => parseSince('99d')).toThrow(expect.objectContaining({ hint: 'a duration such as 24h, 90m, 2d or 1h30m (s, m, h, d), at most 31d', exitCode: 2 }));
  });
});

describe('config keys left to the defaults', () => {
  it('are every key of the config when there is no file, in the config\'s order', () => {
    expect(keysFromDefaults(undefined)).toEqual([
      'provisioning.idScope', 'provisioning.globalEndpoint', 'provisioning.registrationId', 'provisioning.reprovision', 'provisioning.minReprovisionSeconds',
      'provisioning.hubUnreachableSeconds', 'provisioning.slowRetryHours', 'tpm.transport', 'tls.extraCaFile', 'network.proxy', 'network.noProxy',
      'network.hubProtocol', 'stateDir', 'runtimeDir', 'log.level',
      'hardening.bootGraceSeconds', 'attestation.pcr', 'telemetry.intervalSeconds', 'telemetry.queueLimit', 'telemetry.maxMessagesPerSecond',
    ]);
  });

  it('include a key the file sets to nothing, and every key of a section that is not a mapping', () => {
    const keys = keysFromDefaults('stateDir:\nruntimeDir: /run/x\nlog: debug\ntelemetry:\n  intervalSeconds: 30\n  queueLimit: ~\n');
    expect(keys).toContain('stateDir');
    expect(keys).not.toContain('runtimeDir');
    expect(keys).toContain('log.level');
    expect(keys).not.toContain('telemetry.intervalSeconds');
    expect(keys).toContain('telemetry.queueLimit');
    expect(keys).toContain('telemetry.maxMessagesPerSecond');
  });

  it('leave out a key set to false or zero', () => {
    expect(keysFromDefaults('hardening:\n  bootGraceSeconds: 0\n')).not.toContain('hardening.bootGraceSeconds');
  });
});

describe('programs run for a bundle', () => {
  it('runs them in the C locale, without a pager', async () => {
    let outcome: Awaited<ReturnType<typeof execBounded>> | undefined;
    await runCollector({ name: 'env', reads: 'env', timeoutMs: 5_000, collect: async (context) => {
      outcome = await context.exec(['sh', '-c', 'echo "$LC_ALL|$SYSTEMD_PAGER|$PAGER"'], { maxBytes: 1000 });
      return [];
    } });
    expect(outcome).toMatchObject({ argv: ['sh', '-c', 'echo "$LC_ALL|$SYSTEMD_PAGER|$PAGER"'], stdout: 'C||cat\n', exitCode: 0, notInstalled: false, truncated: false, stderr: '' });
    expect(outcome).not.toHaveProperty('error');
    expect(outcome!.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('keeps output of exactly the limit whole, and the first 4 KiB of stderr', async () => {
    const exact = await execBounded(['printf', 'abcdefghij'], { timeoutMs: 5_000, maxBytes: 11 });
    expect(exact).toMatchObject({ stdout: 'abcdefghij', truncated: false, exitCode: 0 });
    const noisy = await execBounded(['sh', '-c', 'head -c 10000 /dev/zero | tr "\\0" e >&2'], { timeoutMs: 5_000, maxBytes: 10 });
    expect(noisy.stderr).toBe('e'.repeat(4096));
  });

  it('stops a program when asked, and says so', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    const outcome = await execBounded(['sleep', '30'], { timeoutMs: 10_000, maxBytes: 10, signal: abort.signal, abortedWhy: 'stopped: the collector ran out of time' });
    expect(outcome).toMatchObject({ exitCode: null, error: 'stopped: the collector ran out of time', truncated: false });
  });

  it('names the signal that ended a program it did not stop itself', async () => {
    const outcome = await execBounded(['sh', '-c', 'kill -TERM $$'], { timeoutMs: 5_000, maxBytes: 10 });
    expect(outcome).toMatchObject({ exitCode: null, error: 'ended by SIGTERM' });
  });
});

describe('collectors', () => {
  const collector = (collect: Collector['collect'], timeoutMs = 2_000): Collector => ({ name: 'probe', reads: 'probe things', timeoutMs, collect });

  it('records every program a collector ran, with its exit code and why it failed', async () => {
    const { entry } = await runCollector(collector(async (context) => {
      await context.exec(['sh', '-c', 'exit 3']);
      await context.exec(['iot-agent-no-such-tool']);
      return [{ name: 'x.txt', text: 'x' }];
    }));
    expect(entry).toMatchObject({ name: 'probe', reads: 'probe things', status: 'ok', timeoutMs: 2_000, files: ['x.txt'] });
    expect(entry.commands).toEqual([
      { argv: ['sh', '-c', 'exit 3'], exitCode: 3, durationMs: ofType(Number), truncated: false },
      { argv: ['iot-agent-no-such-tool'], exitCode: null, durationMs: ofType(Number), truncated: false, error: 'iot-agent-no-such-tool is not installed' },
    ]);
    expect(entry).not.toHaveProperty('error');
  });

  it('gives a program at most the collector\'s own time, and 1 MiB of output unless told otherwise', async () => {
    const started = performance.now();
    let outcome: Awaited<ReturnType<typeof execBounded>> | undefined;
    await runCollector(collector(async (context) => {
      outcome = await context.exec(['sleep', '5'], { timeoutMs: 60_000 });
      return [];
    }, 300));
    await expect.poll(() => outcome, { timeout: 3_000 }).toBeDefined();
    expect(performance.now() - started).toBeLessThan(3_000);
    const { files } = await runCollector(collector(async (context) => {
      const big = await context.exec(['head', '-c', String(2 * 1024 * 1024), '/dev/zero']);
      return [{ name: 'size', json: { bytes: big.stdout.length, truncated: big.truncated } }];
    }, 10_000));
    expect(files).toEqual([{ name: 'size', json: { bytes: 1024 * 1024, truncated: true } }]);
  });

  it('describes a failure with its causes', async () => {
    const { entry } = await runCollector(collector(() => Promise.reject(new Error('status failed', { cause: new Error('ECONNREFUSED') }))));
    expect(entry).toMatchObject({ status: 'failed', error: 'status failed: ECONNREFUSED', files: [] });
  });

  it('gives the daemon\'s recent lines, oldest first, with their count and level', async () => {
    const sources = { daemon: { recentLog: ['first', 'second'], logLevel: 'debug' } } as unknown as BundleSources;
    expect(await runCollector(daemonLogCollector(sources))).toMatchObject({
      entry: { name: 'daemon-log', status: 'ok' },
      files: [{ name: 'daemon-log.txt', text: '-- 2 recent lines at level debug, oldest first --\nfirst\nsecond\n' }],
    });
  });

  it('records the daemon\'s lines as unavailable when no daemon runs', async () => {
    const { entry } = await runCollector(daemonLogCollector({ daemon: undefined } as unknown as BundleSources));
    expect(entry).toMatchObject({ status: 'unavailable', error: 'the daemon does not run: its recent lines are in the journal only' });
  });
});

describe('the journal collector', () => {
  const since = { since: new Date('2026-03-15T00:00:00Z') } as BundleSources;

  it('records a system without journalctl as unavailable', async () => {
    const saved = process.env.PATH;
    process.env.PATH = tempDir();
    try {
      const { entry } = await runCollector(journalCollector(since));
      expect(entry).toMatchObject({ status: 'unavailable', error: 'journalctl is not installed: no journal on this system' });
    } finally {
      process.env.PATH = saved;
    }
  });

  it('says what it reads', () => {
    expect(journalCollector(since)).toMatchObject({
      name: 'journal', timeoutMs: 15_000,
      reads: 'the journal of iot-agent, iot-agent-hardening, iot-agent-hardening-guard, iot-agent-harden-apply@* since 2026-03-15T00:00:00.000Z',
    });
  });

  it('reports a journalctl that failed without saying why by its exit code', async () => {
    standInPrograms({ journalctl: 'exit 4' });
    const { entry } = await runCollector(journalCollector(since));
    expect(entry).toMatchObject({ status: 'failed', error: 'journalctl failed: exit code 4' });
  });

  it('keeps an empty journal as an empty file, and keeps at most three of journalctl\'s notes', async () => {
    standInPrograms({ journalctl: "echo '-- No entries --'; printf 'one\\n\\ntwo\\nthree\\nfour\\n' >&2" });
    const { entry, files } = await runCollector(journalCollector(since));
    expect(entry.status).toBe('ok');
    expect(files).toEqual([{ name: 'journal.txt', text: '-- journalctl: one --\n-- journalctl: two --\n-- journalctl: three --\n' }]);
  });

  it('keeps lines that journalctl wrote before being cut although it then failed', async () => {
    standInPrograms({ journalctl: `head -c ${MAX_JOURNAL_BYTES + 100} /dev/zero | tr '\\0' 'x' | fold -w 99; exit 1` });
    const { entry, files } = await runCollector(journalCollector(since));
    expect(entry.status).toBe('ok');
    expect((files[0] as { text: string }).text.startsWith(`-- cut to the newest ${MAX_JOURNAL_BYTES} bytes`)).toBe(true);
  });

  it('does not take journalctl\'s stderr for a missing journal when it printed lines', async () => {
    standInPrograms({ journalctl: "echo 'entry'; echo 'No journal files were found.' >&2" });
    const { entry, files } = await runCollector(journalCollector(since));
    expect(entry.status).toBe('ok');
    expect(files).toEqual([{ name: 'journal.txt', text: '-- journalctl: No journal files were found. --\nentry\n' }]);
  });
});

describe('the bundle archive', () => {
  it('packs the folder into a gzip\'ed tar only its owner reads, without the machine\'s user names', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'bundle', 'network'), { recursive: true });
    writeFileSync(path.join(dir, 'bundle', 'manifest.json'), '{}');
    writeFileSync(path.join(dir, 'bundle', 'network', 'resolv.conf'), 'nameserver 10.0.0.1\n');
    const file = path.join(dir, 'out.tar.gz');
    await writeArchive(dir, 'bundle', file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const entries: { path: string; machine: unknown[] }[] = [];
    await list({ file, onReadEntry: (e) => entries.push({ path: e.path, machine: [e.uname, e.gname, e.uid, e.gid, e.atime, e.ctime] }) });
    expect(entries.map((e) => e.path).sort()).toEqual(['bundle/', 'bundle/manifest.json', 'bundle/network/', 'bundle/network/resolv.conf']);
    // Neither user nor group names and ids, nor access and change times.
    expect(entries.every((e) => e.machine.every((value) => !value))).toBe(true);
  });

  // A worker thread cannot set the umask (Stryker runs the tests in one); the unit suite runs in processes.
  it.skipIf(!isMainThread)('makes the archive owner read-write whatever the umask', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'bundle'));
    const file = path.join(dir, 'out.tar.gz');
    const umask = process.umask(0o277);
    try {
      await writeArchive(dir, 'bundle', file);
    } finally {
      process.umask(umask);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('never writes over an existing file, and hints at waiting a second', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'bundle'));
    writeFileSync(path.join(dir, 'out.tar.gz'), 'earlier bundle');
    const err = await writeArchive(dir, 'bundle', path.join(dir, 'out.tar.gz')).catch((e: unknown) => e as AgentError);
    expect(err).toMatchObject({ message: `cannot create ${path.join(dir, 'out.tar.gz')} (EEXIST)`, hint: 'a bundle of that name exists: wait a second and run it again' });
    expect(readFileSync(path.join(dir, 'out.tar.gz'), 'utf8')).toBe('earlier bundle');
  });

  it('hints at --output when the directory refuses the file', async () => {
    // sysfs refuses to create a file, to root as to anyone: nothing is written.
    const file = '/sys/iot-agent-support-test.tar.gz';
    const err = await writeArchive(tempDir(), 'bundle', file).catch((e: unknown) => e as AgentError);
    expect(err).toMatchObject({ message: `cannot create ${file} (EACCES)`, hint: 'choose a directory you can write to with --output' });
  });

  it('names the reason it cannot create the file, without a hint it has none for', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'missing', 'out.tar.gz');
    const err = await writeArchive(dir, 'bundle', file).catch((e: unknown) => e as AgentError);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ message: `cannot create ${file} (ENOENT)`, hint: undefined });
  });

  it('says it cannot write the archive when the folder cannot be packed', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'out.tar.gz');
    const err = (await writeArchive(dir, 'no-such-folder', file).catch((e: unknown) => e)) as AgentError;
    expect(err).toBeInstanceOf(AgentError);
    expect(err.message).toBe(`cannot write ${file}`);
    expect(err.cause).toMatchObject({ code: 'ENOENT', path: path.join(dir, 'no-such-folder') });
    // No cut-off archive is left under the bundle's name, and the next try can use it.
    expect(readdirSync(dir)).toEqual([]);
    mkdirSync(path.join(dir, 'bundle'));
    await writeArchive(dir, 'bundle', file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});

it('treats NotAvailable as its own kind of error', () => {
  expect(new NotAvailable('x')).toBeInstanceOf(Error);
});
