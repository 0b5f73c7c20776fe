import { describe, expect, it } from 'vitest';
import { execBounded } from '../../agent/support/bounded-exec.js';
import { bundleName } from '../../agent/support/bundle.js';
import { journalArgv } from '../../agent/support/collect-logs.js';
import { NotAvailable, runCollector, type Collector } from '../../agent/support/collector.js';
import { keysFromDefaults } from '../../agent/support/config-keys.js';
import { parseSince } from '../../agent/support/since.js';

const collector = (collect: Collector['collect'], timeoutMs = 200): Collector => ({ name: 'probe', reads: 'something', timeoutMs, collect });

describe('support bundle parts', () => {
  it.each([['24h', 86_400], ['90m', 5_400], ['2d', 172_800], ['1h30m', 5_400], ['45s', 45], ['31d', 2_678_400]])('reads --since %s', (text, seconds) => {
    expect(parseSince(text)).toBe(seconds);
  });

  it.each(['', '24', 'h', '1.5h', '-1h', '24 h', '1w', '32d', '0s', 'yesterday', '1h1h1h1h1h', '99999999h'])('refuses --since %j with a hint', (text) => {
    expect(() => parseSince(text)).toThrow(expect.objectContaining({ exitCode: 2, hint: expect.stringContaining('24h, 90m, 2d') }));
  });

  it('names the archive for the host and the UTC time, with only safe characters', () => {
    expect(bundleName('board-17', new Date('2026-03-15T10:15:00.123Z'))).toBe('iot-agent-support-board-17-20260315T101500Z');
    expect(bundleName('a b/../c', new Date('2026-03-15T10:15:00Z'))).toBe('iot-agent-support-a_b_.._c-20260315T101500Z');
    expect(bundleName('', new Date('2026-03-15T10:15:00Z'))).toBe('iot-agent-support-unknown-20260315T101500Z');
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
    const ok = await runCollector(collector(async () => [{ name: 'a.json', json: { x: 1 } }]));
    expect(ok.entry).toMatchObject({ name: 'probe', status: 'ok', files: ['a.json'], commands: [] });
    const failed = await runCollector(collector(async () => { throw new Error('broken'); }));
    expect(failed.entry).toMatchObject({ status: 'failed', error: 'broken', files: [] });
    const absent = await runCollector(collector(async () => { throw new NotAvailable('no journal'); }));
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
});
