import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RebootScheduler } from '../../agent/commands/reboot-scheduler.js';
import { Logger } from '../../agent/log/logger.js';

const log = new Logger({ write: () => undefined });

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
});
