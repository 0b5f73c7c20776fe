import { afterEach, describe, expect, it } from 'vitest';
import { askDaemon } from '../../agent/control/client.js';
import { DaemonOnCloud, stopDaemonsOnCloud } from '../support/daemon-on-cloud.js';
import { arrayContaining, ofType, stringMatching } from '../support/matchers.js';

afterEach(stopDaemonsOnCloud, 60_000);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('the daemon when DPS does not assign at once', () => {
  it('waits as long as DPS\'s Retry-After says, degraded with the next try in the status, then connects', async () => {
    const board = await DaemonOnCloud.start();
    board.cloud.dps.faults.throttleNext(1, 3);
    const { daemon, told, logged, reach } = await board.startDaemon();
    const degraded = await reach('degraded');
    expect(degraded).toMatchObject({
      reason: stringMatching(/^provisioning failed: .*throttling registrations \(429\).* \(next try in 3 s\)$/),
      lastError: { message: stringMatching(/^provisioning failed: .*\(429\)/), at: stringMatching(ISO) },
      consecutiveFailures: 1, operatorMustAct: false,
      dpsHeldOffUntil: stringMatching(ISO), nextRetryAt: stringMatching(ISO),
    });
    const heldFor = Date.parse(degraded.dpsHeldOffUntil!) - Date.now();
    expect(heldFor).toBeGreaterThan(1_000);
    expect(heldFor).toBeLessThanOrEqual(3_000);
    expect(logged('provisioning.failed')).toEqual([stringMatching(/then=retryDps retryInMs=3000 operatorMustAct=false reason="DPS failed"/)]);
    expect(daemon.status().state).toBe('degraded');
    const ready = await reach('ready');
    // The failure stays on record after the recovery; the counters start over.
    expect(ready).toMatchObject({ lastError: degraded.lastError, consecutiveFailures: 0, dpsHeldOffUntil: null, nextRetryAt: null });
    expect(told.filter((t) => t.startsWith('STATUS provisioning: '))).toEqual(['STATUS provisioning: not provisioned yet', 'STATUS provisioning: not provisioned yet']);
  });

  it('asks DPS again soon after it refused an unknown registration id, then leaves it to an operator after the third refusal', async () => {
    const board = await DaemonOnCloud.start({ provisioning: { registrationId: 'not-enrolled-70' } });
    const { logged, reach } = await board.startDaemon();
    await expect.poll(() => logged('provisioning.failed').length, { timeout: 30_000 }).toBe(3);
    const failed = logged('provisioning.failed');
    expect(failed.slice(0, 2)).toEqual([
      stringMatching(/then=retryDps retryInMs=\d+ operatorMustAct=false reason="DPS failed"/),
      stringMatching(/then=retryDps retryInMs=\d+ operatorMustAct=false reason="DPS failed"/),
    ]);
    expect(failed[2]).toMatch(/then=retryDps retryInMs=\d+ operatorMustAct=true reason="DPS will not assign this device until an operator acts"/);
    const status = await reach('degraded');
    expect(status).toMatchObject({
      registrationId: 'not-enrolled-70', deviceId: undefined, operatorMustAct: true, consecutiveFailures: 3,
      reason: stringMatching(/^provisioning failed: .*401.* \(an operator must act; next try in \d\.\d h\)$/),
    });
    expect(Date.parse(status.dpsHeldOffUntil!) - Date.now()).toBeGreaterThan(4 * 3_600_000);
    expect(board.cloud.dps.counters.refusals).toBe(3);
  });

  it('leaves DPS alone for hours at once when the enrollment is disabled', async () => {
    const board = await DaemonOnCloud.start({ provisioning: { slowRetryHours: 2 } });
    board.cloud.dps.enroll({ ...board.cloud.dps.enrollment(board.board.registrationId)!, provisioningStatus: 'disabled' });
    const { told, logged, reach } = await board.startDaemon();
    const status = await reach('degraded');
    expect(status).toMatchObject({ operatorMustAct: true, reason: stringMatching(/^provisioning failed: .* \(an operator must act; next try in (1\.[5-9]|2\.\d) h\)$/) });
    expect(logged('provisioning.failed')).toEqual([stringMatching(/operatorMustAct=true/)]);
    expect(told).toEqual(arrayContaining([stringMatching(/^STATUS degraded: provisioning failed: /)]));
    const remote = await askDaemon(board.files.runtimeDir, { op: 'status' }, 'status');
    expect(remote).toMatchObject({ operatorMustAct: true, lastError: { message: status.lastError!.message, at: ofType(String) } });
  });
});
