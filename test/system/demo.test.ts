import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO } from './artifacts.js';

/** The README's demo command, as a newcomer runs it (npm test has built the tree already). */
describe('bash scripts/demo.sh', () => {
  it('runs the agent to ready, prints the ping and getSystemInfo answers, the twin and the strict plan, and cleans up', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile('bash', ['scripts/demo.sh'], { cwd: REPO, timeout: 150_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
    });
    expect(stderr, stdout).not.toMatch(/demo failed/);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/the agent is READY after [\d.]+ s: device demo-board-1/);
    expect(stdout).toMatch(/invokeDeviceMethod\("demo-board-1", "ping"\)\n\s+status 200, answer:/);
    expect(stdout).toMatch(/invokeDeviceMethod\("demo-board-1", "getSystemInfo"\)\n\s+status 200, answer:/);
    expect(stdout).toMatch(/\[7\] The device twin/);
    expect(stdout).toContain('Profile strict (builtin:strict)');
    expect(stdout).toMatch(/\[9\] Clean up/);
    expect(stdout).toContain('done.');
  }, 180_000);
});
