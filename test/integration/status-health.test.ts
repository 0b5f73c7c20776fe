import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { DeviceCloud } from '../support/device-cloud.js';

interface Health {
  state: string;
  lastError: { message: string; at: string } | null;
  consecutiveFailures: number;
  nextRetryAt: string | null;
}

describe('status: what a technician needs when the agent struggles', () => {
  let dc: DeviceCloud;
  beforeAll(async () => { dc = await DeviceCloud.start({ deviceId: 'board-health' }); }, 60_000);
  afterAll(async () => { await dc?.stop(); });

  const health = async (): Promise<Health> => JSON.parse((await runCli(['--config', dc.files.configPath, 'status', '--json'])).stdout) as Health;

  it('counts failures in a row with the last error and its time, shows when the next try is due, and starts over once connected', async () => {
    rmSync(path.join(dc.files.stateDir, 'assignment.json'), { force: true });
    dc.cloud.dps.faults.failNext(30);
    const agent = dc.startAgent();
    // The daemon sleeps between attempts (backoff 0.2 to 2 s under test timings): catch it waiting.
    const waiting = await dc.waitFor('a status with a retry due', async () => {
      const h = await health();
      return h.nextRetryAt !== null && h.consecutiveFailures >= 2 ? h : undefined;
    }, 30_000);
    expect(waiting.state).toBe('degraded');
    expect(waiting.lastError!.message).toMatch(/^provisioning failed: /);
    expect(Math.abs(Date.parse(waiting.lastError!.at) - Date.now())).toBeLessThan(30_000);
    expect(Date.parse(waiting.nextRetryAt!)).toBeGreaterThan(Date.parse(waiting.lastError!.at));
    const human = await runCli(['--config', dc.files.configPath, 'status']);
    expect(human.stdout).toMatch(/^Last error +provisioning failed: .* \(\d{4}-\d\d-\d\dT[\d:.]+Z, \d+ s ago\)$/m);
    expect(human.stdout).toMatch(/^Failures in a row +\d+$/m);

    dc.cloud.dps.faults.clear();
    await agent.waitForState('ready', 30_000);
    const recovered = await health();
    expect(recovered).toMatchObject({ consecutiveFailures: 0, nextRetryAt: null });
    expect(recovered.lastError!.message).toMatch(/^provisioning failed: /); // kept for the record
    await dc.stopAgents();
  }, 90_000);
});
