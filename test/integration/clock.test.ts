import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { fakeTimeEnv, jumpFakeTime } from '../support/fake-time.js';
import { rmSync } from 'node:fs';
import { stringMatching } from '../support/matchers.js';

/**
 * A board whose clock is wrong (no RTC, NTP not synced yet: any Raspberry Pi after a power
 * cut), against a cloud whose certificates are weeks old, as Azure's are: the agent learns
 * the service's time from DPS's and the hub's Date headers and signs its tokens with it.
 */
describe('an agent with a wrong clock', () => {
  let dc: DeviceCloud;
  beforeAll(async () => { dc = await DeviceCloud.start({ deviceId: 'board-clock' }); }, 60_000);
  afterEach(async () => {
    await dc.stopAgents();
    rmSync(path.join(dc.files.stateDir, 'assignment.json'), { force: true });
  });
  afterAll(async () => { await dc?.stop(); });

  const status = async (agent: ReturnType<DeviceCloud['startAgent']>) => JSON.parse((await agent.status()).stdout) as Record<string, unknown>;

  it('two hours behind: provisions and reaches ready with tokens signed against the service\'s time, with at most two registrations', async () => {
    const registrations = dc.cloud.dps.counters.registrations;
    const refused = dc.hub.counters.refused;
    const agent = dc.startAgent('', fakeTimeEnv('-2h'));
    await agent.waitForState('ready', 45_000);
    expect(dc.cloud.dps.counters.registrations - registrations).toBeLessThanOrEqual(2);
    expect(dc.hub.counters.refused).toBe(refused);
    const offset = Number((await status(agent)).clockOffsetMs);
    expect(Math.abs(offset - 2 * 3_600_000)).toBeLessThan(10_000);
    // check, with the same clock, says so.
    const check = await runCli(['--config', dc.files.configPath, 'check', '--json'], { IOT_AGENT_TPM: '', ...fakeTimeEnv('-2h') }, 30_000, dc.files.hostsFile);
    const clock = (JSON.parse(check.stdout) as { checks: { id: string; status: string; message: string }[] }).checks.find((c) => c.id === 'clock');
    expect(clock).toMatchObject({ status: 'warn', message: stringMatching(/is 72\d\d s behind DPS dps-/) });
  }, 90_000);

  it('half an hour ahead: reaches ready, and a warm start with the wrong clock needs no DPS', async () => {
    const agent = dc.startAgent('', fakeTimeEnv('+30m'));
    await agent.waitForState('ready', 45_000);
    await dc.stopAgents();
    const registrations = dc.cloud.dps.counters.registrations;
    const again = dc.startAgent('', fakeTimeEnv('+30m'));
    await again.waitForState('ready', 45_000);
    expect(dc.cloud.dps.counters.registrations).toBe(registrations);
  }, 90_000);

  it('a warm start two hours behind: the hub refuses the first token, the agent asks the hub for its time and signs again, no DPS', async () => {
    const first = dc.startAgent();
    await first.waitForState('ready', 45_000);
    await dc.stopAgents();
    const registrations = dc.cloud.dps.counters.registrations;
    const agent = dc.startAgent('', fakeTimeEnv('-2h'));
    await agent.waitForState('ready', 45_000);
    expect(agent.lines.some((l) => l.includes('event=clock.corrected'))).toBe(true);
    expect(dc.cloud.dps.counters.registrations).toBe(registrations);
  }, 90_000);

  it('a clock that jumps two hours forward while connected: a fresh token and a reconnect, never a refusal loop', async () => {
    const file = path.join(dc.dir, 'faketime-offset');
    const agent = dc.startAgent('', fakeTimeEnv('-2h', file));
    await agent.waitForState('ready', 45_000);
    const refused = dc.hub.counters.refused;
    const registrations = dc.cloud.dps.counters.registrations;
    const connects = dc.hub.counters.connects;
    jumpFakeTime(file, '+0');
    await agent.waitForLog('event=hub.token_resigned', 20_000);
    await dc.waitFor('reconnected', () => dc.hub.counters.connects > connects || undefined, 20_000);
    await agent.waitForState('ready', 20_000);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(dc.hub.counters.refused).toBe(refused);
    expect(dc.cloud.dps.counters.registrations).toBe(registrations);
    expect(Math.abs(Number((await status(agent)).clockOffsetMs ?? 0))).toBeLessThan(10_000);
  }, 90_000);
});
