import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../agent/state/process-alive.js';

describe('process liveness', () => {
  it('knows its own process is alive', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
  });

  it('counts init as alive, whether it may be signalled (root) or not (EPERM)', () => {
    expect(isProcessAlive(1)).toBe(true);
  });

  it('knows a process that exited is gone', async () => {
    const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    const pid = child.pid!;
    await new Promise((resolve) => child.once('exit', resolve));
    expect(isProcessAlive(pid)).toBe(false);
  });
});
