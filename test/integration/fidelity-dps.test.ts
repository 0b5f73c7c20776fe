import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REFUSALS_BEFORE_SLOW_RETRY } from '../../agent/retry/connection-policy.js';
import { MIN_POLL_SECONDS } from '../../agent/provisioning/dps-transport.js';
import { runCli } from '../support/cli.js';
import { stringContaining, stringMatching } from '../support/matchers.js';
import { DeviceCloud } from '../support/device-cloud.js';

/**
 * Provisioning against a DPS that ends registrations with "disabled" or "failed", throttles
 * status polls and signed requests with 429: the agent names DPS's status and reason, waits
 * hours for what an operator must mend, and never starts a billed registration over for a throttle.
 */
describe('provisioning against DPS as documented', () => {
  let dc: DeviceCloud;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-dps' });
  }, 60_000);
  afterEach(async () => {
    await dc.stopAgents();
    dc.cloud.dps.faults.clear();
    dc.cloud.dps.configure({});
    rmSync(path.join(dc.files.stateDir, 'assignment.json'), { force: true });
  });
  afterAll(async () => {
    await dc?.stop();
  });

  const enroll = (provisioningStatus: 'enabled' | 'disabled') => dc.cloud.dps.enroll({
    registrationId: dc.identity.registrationId, deviceId: dc.deviceId, iotHubs: [dc.hub.hostName], provisioningStatus,
    attestation: { type: 'tpm', tpm: { endorsementKey: dc.identity.endorsementKey } },
  });

  it.each(['status', 'unauthorized'] as const)('waits hours, not seconds, for an operator when the enrollment is disabled (DPS answering %s), then provisions at once when a technician asks', async (answer) => {
    dc.cloud.dps.configure({ disabledEnrollment: answer });
    enroll('disabled');
    const attempts = () => dc.cloud.dps.counters.challenges + dc.cloud.dps.counters.refusals;
    const before = attempts();
    const agent = dc.startAgent();
    // A refusal may be an enrollment on its way: a few quick tries (REFUSALS_BEFORE_SLOW_RETRY), then hours.
    const reason = await dc.waitFor('an operator hold', async () => {
      const text = String((JSON.parse((await agent.status()).stdout) as { reason?: string }).reason);
      return /an operator must act/.test(text) ? text : undefined;
    }, 30_000);
    expect(reason).toMatch(answer === 'status' ? /ended the registration with status "disabled"/ : /refused the device \(401\)/);
    expect(reason).toMatch(/an operator must act; next try in (4\.[5-9]|[56]\.\d|7\.[0-5]) h\)$/);
    expect(reason).not.toMatch(/could not be reached/);
    const held = attempts() - before;
    expect(held).toBeLessThanOrEqual(answer === 'status' ? 1 : REFUSALS_BEFORE_SLOW_RETRY);
    await new Promise((r) => setTimeout(r, 5_000));
    expect(attempts() - before).toBe(held); // the test backoff (200 ms to 2 s) would have tried a dozen times
    const check = await runCli(['--config', dc.files.configPath, 'check', '--json'], { IOT_AGENT_TPM: '' }, 30_000, dc.files.hostsFile);
    expect(check.code, check.stderr).toBe(1);
    expect((JSON.parse(check.stdout) as { checks: { id: string }[] }).checks.find((c) => c.id === 'dps-hold')).toMatchObject({
      status: 'fail', message: stringContaining(`until an operator acts (daemon pid ${agent.child.pid}): provisioning failed: `),
      hint: stringMatching(/^an operator must enable or fix this device's enrollment in DPS; the daemon asks DPS again at 20\d\d-/),
    });
    expect(attempts() - before).toBe(held);
    enroll('enabled');
    const result = await runCli(['--config', dc.files.configPath, 'provision', '--json'], {}, 60_000, dc.files.hostsFile);
    expect(result.code, result.stderr).toBe(0);
    await agent.waitForState('ready');
  }, 90_000);

  it('names a registration DPS ended as "failed" with its code and message, and tries again on the short backoff', async () => {
    enroll('enabled');
    dc.cloud.dps.faults.failAssignmentNext(1, { errorCode: 400209, errorMessage: 'The IoT hub is not reachable' });
    const agent = dc.startAgent();
    await agent.waitForState('ready', 30_000);
    expect(agent.lines.some((l) => l.includes('event=provisioning.failed')
      && l.includes('ended the registration with status \\"failed\\" (400209: The IoT hub is not reachable)') && l.includes('operatorMustAct=false'))).toBe(true);
  }, 60_000);

  it(`polls no faster than every ${MIN_POLL_SECONDS} s, so DPS never throttles a slow assignment, with one challenge for the whole registration`, async () => {
    enroll('enabled');
    dc.cloud.dps.faults.assignmentDelayMs = 8_000; // DPS says retry-after 1 s: at that pace the sixth poll would get 429
    const { challenges, throttledPolls } = dc.cloud.dps.counters;
    const agent = dc.startAgent();
    await agent.waitForState('ready', 40_000);
    expect(dc.cloud.dps.counters.throttledPolls).toBe(throttledPolls);
    expect(dc.cloud.dps.counters.challenges - challenges).toBe(1);
  }, 60_000);

  it('lets the SDK repeat a signed registration DPS throttled, after its Retry-After, instead of starting over with a new challenge', async () => {
    enroll('enabled');
    dc.cloud.dps.faults.throttleSignedNext(1, 1);
    const { challenges } = dc.cloud.dps.counters;
    const agent = dc.startAgent();
    await agent.waitForState('ready', 40_000);
    expect(dc.cloud.dps.counters.challenges - challenges).toBe(1);
    expect(agent.lines.filter((l) => l.includes('event=provisioning.failed'))).toEqual([]);
  }, 60_000);
});
