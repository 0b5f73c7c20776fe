import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_REBOOT_ARGV, DEFAULT_REBOOT_DELAY_SECONDS, RebootScheduler } from '../../agent/commands/reboot-scheduler.js';
import { Logger } from '../../agent/log/logger.js';

let log: Logger;
beforeAll(() => { log = new Logger({ write: () => undefined }); });

describe('the reboot scheduler', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

  it('runs the program once, with its fixed argv and no shell, after the delay, and stays pending', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-reboot-'));
    dirs.push(dir);
    const script = path.join(dir, 'reboot.sh');
    writeFileSync(script, `#!/bin/sh\nprintf '%s|' "$@" >> ${dir}/calls\n`, { mode: 0o755 });
    const scheduler = new RebootScheduler(log, [script, '$(touch pwned)', 'a b'], 0);
    const first = scheduler.schedule();
    expect(scheduler.pending()).toBe(true);
    expect(scheduler.schedule().done).toBe(first.done);
    await first.done;
    expect(readFileSync(path.join(dir, 'calls'), 'utf8')).toBe('$(touch pwned)|a b|');
    expect(scheduler.pending()).toBe(true);
  });

  it('can be asked again when the reboot program failed', async () => {
    const scheduler = new RebootScheduler(log, ['/bin/false'], 0);
    await expect(scheduler.schedule().done).rejects.toThrow(/\/bin\/false failed/);
    expect(scheduler.pending()).toBe(false);
  });

  it('waits the delay before it runs the program, so the acknowledgement leaves first', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-reboot-'));
    dirs.push(dir);
    const script = path.join(dir, 'reboot.sh');
    writeFileSync(script, `#!/bin/sh\ntouch ${dir}/ran\n`, { mode: 0o755 });
    const scheduler = new RebootScheduler(log, [script], 0.3);
    const started = performance.now();
    const { delaySeconds, done } = scheduler.schedule();
    expect(delaySeconds).toBe(0.3);
    await done;
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(readFileSync(path.join(dir, 'ran'), 'utf8')).toBe('');
  });

  it('waits five seconds unless told otherwise', () => {
    const scheduler = new RebootScheduler(log, ['/bin/true']);
    expect(scheduler.pending()).toBe(false);
    expect(DEFAULT_REBOOT_DELAY_SECONDS).toBe(5);
    expect(DEFAULT_REBOOT_ARGV).toEqual(['systemctl', 'reboot']);
  });

  it('logs that the reboot is starting, with the program', async () => {
    const lines: string[] = [];
    const scheduler = new RebootScheduler(new Logger({ journal: false, write: (l) => lines.push(l) }), ['/bin/true', 'now'], 0);
    await scheduler.schedule().done;
    expect(lines).toEqual([expect.stringMatching(/level=warn event=reboot.starting argv="\/bin\/true now"\n$/)]);
  });

  it('says why the reboot program failed, in its own words when it gave some', async () => {
    const withWords = new RebootScheduler(log, ['sh', '-c', 'echo "Access denied" >&2; exit 1'], 0);
    await expect(withWords.schedule().done).rejects.toThrow(/^sh -c echo "Access denied" >&2; exit 1 failed: Access denied$/);
    const silent = new RebootScheduler(log, ['sh', '-c', 'exit 4'], 0);
    await expect(silent.schedule().done).rejects.toThrow(/^sh -c exit 4 failed: Command failed: sh -c exit 4/);
  });

  it('counts a reboot program that says something before the machine goes down as started', async () => {
    // What `reboot` prints on some systems; the program is still running when its words arrive.
    const scheduler = new RebootScheduler(log, ['sh', '-c', 'echo "Broadcast message: The system will reboot now!"; sleep 0.2'], 0);
    await expect(scheduler.schedule().done).resolves.toBeUndefined();
    expect(scheduler.pending()).toBe(true);
  });

  it('does not fall back to another program when a configured one is missing', async () => {
    const scheduler = new RebootScheduler(log, ['/nonexistent/iot-agent-reboot'], 0);
    await expect(scheduler.schedule().done).rejects.toMatchObject({ code: 'ENOENT' });
    expect(scheduler.pending()).toBe(false);
  });
});
