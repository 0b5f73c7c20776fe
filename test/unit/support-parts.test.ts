import { afterEach, describe, expect, it } from 'vitest';
import { execBounded } from '../../agent/lib/exec.js';
import { bundleName } from '../../agent/support/bundle.js';
import { journalArgv, journalCollector, MAX_JOURNAL_BYTES } from '../../agent/support/collect-logs.js';
import type { BundleSources } from '../../agent/support/sources.js';
import { NotAvailable, runCollector, type Collector } from '../../agent/support/collector.js';
import { keysFromDefaults } from '../../agent/support/config-keys.js';
import { parseSince } from '../../agent/support/since.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';
import { stringContaining } from '../support/matchers.js';

const collector = (collect: Collector['collect'], timeoutMs = 200): Collector => ({ name: 'probe', reads: 'something', timeoutMs, collect });

describe('support bundle parts', () => {
  it.each([['24h', 86_400], ['90m', 5_400], ['2d', 172_800], ['1h30m', 5_400], ['45s', 45], ['31d', 2_678_400]])('reads --since %s', (text, seconds) => {
    expect(parseSince(text)).toBe(seconds);
  });

  it.each(['', '24', 'h', '1.5h', '-1h', '24 h', '1w', '32d', '0s', 'yesterday', '1h1h1h1h1h', '99999999h'])('refuses --since %j with a hint', (text) => {
    expect(() => parseSince(text)).toThrow(expect.objectContaining({ exitCode: 2, hint: stringContaining('24h, 90m, 2d') }));
  });

  it('names the archive for the host and the UTC time, with only safe characters', () => {
    expect(bundleName('board-17', new Date('2026-03-15T10:15:00.123Z'))).toBe('iot-agent-support-board-17-20260315T101500Z');
    expect(bundleName('a b/../c', new Date('2026-03-15T10:15:00Z'))).toBe('iot-agent-support-a_b_.._c-20260315T101500Z');
    expect(bundleName('', new Date('2026-03-15T10:15:00Z'))).toBe('iot-agent-support-unknown-20260315T101500Z');
    expect(bundleName(`${'h'.repeat(64)}-cut`, new Date('2026-03-15T10:15:00Z'))).toBe(`iot-agent-support-${'h'.repeat(64)}-20260315T101500Z`);
    expect(bundleName('_', new Date('2026-03-15T10:15:00Z'))).toBe('iot-agent-support-_-20260315T101500Z');
  });

  it('asks journalctl for the agent\'s units since a time, newest first, in short-iso', () => {
    expect(journalArgv(new Date('2026-03-15T10:15:00.999Z'))).toEqual([
      'journalctl', '--no-pager', '-o', 'short-iso', '--since', '@1773569700',
      '-u', 'iot-agent', '-u', 'iot-agent-hardening', '-u', 'iot-agent-hardening-guard', '-u', 'iot-agent-harden-apply@*', '--reverse',
    ]);
  });

  it.each([
    [undefined, true],
    ['', true],
    ['{{ not yaml', true],
    ['- a list', true],
    ['provisioning:\n  idScope: 0ne00ABCDEF\nlog:\n  level: debug\nstateDir: /x\n', false],
  ])('lists the config keys left to the defaults for %j', (text, all) => {
    const keys = keysFromDefaults(text);
    expect(keys).toContain('tpm.transport');
    expect(keys).toContain('telemetry.queueLimit');
    if (all) expect(keys).toEqual(expect.arrayContaining(['provisioning.idScope', 'log.level', 'stateDir']));
    else expect(keys).not.toEqual(expect.arrayContaining(['provisioning.idScope']));
    if (!all) expect(keys.some((k) => k === 'log.level' || k === 'stateDir')).toBe(false);
  });

  it('records a collector that finishes, fails, finds nothing, or runs out of time', async () => {
    const ok = await runCollector(collector(() => Promise.resolve([{ name: 'a.json', json: { x: 1 } }])));
    expect(ok.entry).toMatchObject({ name: 'probe', status: 'ok', files: ['a.json'], commands: [] });
    const failed = await runCollector(collector(() => Promise.reject(new Error('broken'))));
    expect(failed.entry).toMatchObject({ status: 'failed', error: 'broken', files: [] });
    const absent = await runCollector(collector(() => Promise.reject(new NotAvailable('no journal'))));
    expect(absent.entry).toMatchObject({ status: 'unavailable', error: 'no journal' });
    const t0 = performance.now();
    const hung = await runCollector(collector(() => new Promise(() => undefined), 100));
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(hung).toMatchObject({ entry: { status: 'timed-out', error: 'did not finish within 100 ms' }, files: [] });
  });

  it('stops the programs of a collector that ran out of time, and lists them in its entry', async () => {
    let outcome: Awaited<ReturnType<typeof execBounded>> | undefined;
    const result = await runCollector(collector(async (context) => {
      await new Promise((resolve) => setTimeout(resolve, 150)); // started late: the collector's deadline comes first
      outcome = await context.exec(['sleep', '30'], { timeoutMs: 60_000 });
      return [];
    }, 300));
    expect(result.entry.status).toBe('timed-out');
    await expect.poll(() => outcome, { timeout: 2_000 }).toBeDefined();
    expect(outcome).toMatchObject({ exitCode: null, error: 'stopped: the collector ran out of time' });
  });

  it('bounds a program in bytes and in time, and tells a missing one apart', async () => {
    const big = await execBounded(['head', '-c', '100000', '/dev/zero'], { timeoutMs: 5_000, maxBytes: 1000 });
    expect(big).toMatchObject({ truncated: true, notInstalled: false });
    expect(big.stdout).toHaveLength(1000);
    expect(big.error).toBeUndefined();
    const slow = await execBounded(['sleep', '5'], { timeoutMs: 100, maxBytes: 10 });
    expect(slow).toMatchObject({ exitCode: null, error: 'stopped after 100 ms' });
    const missing = await execBounded(['iot-agent-no-such-tool'], { timeoutMs: 1_000, maxBytes: 10 });
    expect(missing).toMatchObject({ notInstalled: true, error: 'iot-agent-no-such-tool is not installed' });
    const failing = await execBounded(['sh', '-c', 'echo oops >&2; exit 3'], { timeoutMs: 1_000, maxBytes: 10 });
    expect(failing).toMatchObject({ exitCode: 3, stderr: 'oops\n', truncated: false });
  });

  describe('the journal collector, with a stand-in journalctl first on PATH', () => {
    afterEach(restorePath);
    const withJournalctl = async (script: string) => {
      standInPrograms({ journalctl: script });
      return runCollector(journalCollector({ since: new Date('2026-03-15T00:00:00Z') } as BundleSources));
    };

    it('puts the newest-first output back in order', async () => {
      const { entry, files } = await withJournalctl("printf '2026-03-15T10:00:02+0000 b iot-agent[1]: second\\n2026-03-15T10:00:01+0000 b iot-agent[1]: first\\n'");
      expect(entry.status).toBe('ok');
      expect(files).toEqual([{ name: 'journal.txt', text: '2026-03-15T10:00:01+0000 b iot-agent[1]: first\n2026-03-15T10:00:02+0000 b iot-agent[1]: second\n' }]);
    });

    it('keeps the newest lines of a journal over the limit, and says it cut the rest', async () => {
      const { entry, files } = await withJournalctl(`i=0; while [ $i -lt 200000 ]; do echo "line $i of a very long journal, newest first ......"; i=$((i+1)); done`);
      expect(entry).toMatchObject({ status: 'ok', commands: [expect.objectContaining({ truncated: true })] });
      const text = (files[0] as { text: string }).text;
      const lines = text.trimEnd().split('\n');
      expect(lines[0]).toBe(`-- cut to the newest ${MAX_JOURNAL_BYTES} bytes: older lines left out --`);
      expect(lines.at(-1)).toBe('line 0 of a very long journal, newest first ......');
      expect(lines.slice(1).every((l) => /^line \d+ of a very long journal, newest first \.{6}$/.test(l))).toBe(true);
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_JOURNAL_BYTES + 100);
    });

    it('records a system without journal files as unavailable, and a failing journalctl as failed', async () => {
      const none = await withJournalctl("echo '-- No entries --'; echo 'No journal files were found.' >&2");
      expect(none.entry).toMatchObject({ status: 'unavailable', error: 'no journal files on this system (journald does not keep one)' });
      const broken = await withJournalctl("echo 'Failed to parse timestamp: @x' >&2; exit 1");
      expect(broken.entry).toMatchObject({ status: 'failed', error: 'journalctl failed: exit code 1: Failed to parse timestamp: @x' });
    });

    it('keeps journalctl\'s note that an unprivileged user sees part of the journal', async () => {
      const { files } = await withJournalctl("echo 'Hint: You are currently not seeing messages from other users and the system.' >&2; echo '2026-03-15T10:00:01+0000 b iot-agent[1]: x'");
      expect((files[0] as { text: string }).text).toBe('-- journalctl: Hint: You are currently not seeing messages from other users and the system. --\n2026-03-15T10:00:01+0000 b iot-agent[1]: x\n');
    });
  });
});
