import { describe, expect, it } from 'vitest';
import { ConnectionPolicy, REFUSALS_BEFORE_SLOW_RETRY, type PolicySettings } from '../../agent/retry/connection-policy.js';

const HOUR = 3_600_000;

function settings(overrides: Partial<PolicySettings> = {}): PolicySettings {
  return {
    reprovision: 'onErrorOnly', minReprovisionSeconds: 3_600, hubUnreachableSeconds: 1_800, operatorRetrySeconds: 6 * 3_600,
    backoff: { initialMs: 1_000, maxMs: 300_000, multiplier: 2 }, reconnectSpreadMs: 15_000, ...overrides,
  };
}

/** A policy on a clock the test moves, with a fixed "random" draw. */
function policyAt(start: number, overrides: Partial<PolicySettings> = {}, lastRegistrationAt?: number, random = 0.999) {
  const clock = { t: start, now: () => clock.t, random: () => random };
  const policy = new ConnectionPolicy(settings(overrides), { lastRegistrationAt }, clock);
  return { policy, clock };
}

describe('connection policy: the hub refuses the device', () => {
  it('with reprovision never, reconnects with a backoff that grows to the cap and never goes to DPS', () => {
    const { policy } = policyAt(0, { reprovision: 'never' });
    const delays = Array.from({ length: 14 }, () => policy.hubFailed('refused'));
    expect(delays.every((d) => d.action === 'reconnect')).toBe(true);
    const ms = delays.map((d) => d.delayMs);
    expect(ms.slice(0, 6)).toEqual([999, 1_998, 3_996, 7_992, 15_984, 31_968]);
    expect(ms.at(-1)).toBe(299_700);
    expect(ms.every((d, i) => i === 0 || d >= ms[i - 1]!)).toBe(true);
  });

  it('re-provisions at once when no registration is remembered', () => {
    const { policy } = policyAt(10 * HOUR);
    expect(policy.hubFailed('refused')).toMatchObject({ action: 'reprovision', delayMs: 0 });
  });

  it('re-provisions at most once per minReprovisionSeconds after a registration, and reconnects meanwhile', () => {
    const { policy, clock } = policyAt(10 * HOUR, {}, 10 * HOUR - 60_000);
    const first = policy.hubFailed('refused');
    expect(first.action).toBe('reconnect');
    expect(first.reason).toContain(new Date(11 * HOUR - 60_000).toISOString());
    clock.t = 11 * HOUR - 60_001;
    expect(policy.hubFailed('refused').action).toBe('reconnect');
    clock.t = 11 * HOUR - 60_000;
    expect(policy.hubFailed('refused').action).toBe('reprovision');
  });

  it('counts from now when the remembered registration lies in the future (the clock went back)', () => {
    const { policy, clock } = policyAt(5 * HOUR, {}, 9 * HOUR);
    expect(policy.hubFailed('refused').action).toBe('reconnect');
    clock.t = 6 * HOUR;
    expect(policy.hubFailed('refused').action).toBe('reprovision');
  });

  it('re-provisions at once on the first refusal after a working session, then waits for the rate limit', () => {
    const { policy, clock } = policyAt(10 * HOUR, {}, 10 * HOUR - 60_000);
    policy.hubConnected();
    clock.t += 30_000;
    policy.hubLost();
    expect(policy.hubFailed('refused')).toMatchObject({ action: 'reprovision', reason: 'the hub refused a device it had accepted since the last registration' });
    policy.dpsAssigned(); // the same hub, which refuses again
    expect(policy.hubFailed('refused').action).toBe('reconnect');
    // Working and refused again within the hour: no second exception.
    policy.hubConnected();
    clock.t += 60_000;
    policy.hubLost();
    expect(policy.hubFailed('refused').action).toBe('reconnect');
  });

  it('a disabled device costs at most two DPS registrations in ten minutes, however often it is refused', () => {
    const { policy, clock } = policyAt(100 * HOUR);
    policy.hubConnected(); // it worked, then the hub disabled it
    let registrations = 0;
    while (clock.t < 100 * HOUR + 600_000) {
      const decision = policy.hubFailed('refused');
      if (decision.action === 'reprovision') {
        registrations++;
        policy.dpsAssigned(); // DPS assigns the same hub, which refuses again
      }
      clock.t += Math.max(decision.delayMs, 50);
    }
    expect(registrations).toBeLessThanOrEqual(2);
    expect(registrations).toBeGreaterThanOrEqual(1);
  });
});

describe('connection policy: the hub is unreachable', () => {
  it('reconnects with backoff, then asks DPS again once hubUnreachableSeconds have passed', () => {
    const { policy, clock } = policyAt(0, { hubUnreachableSeconds: 30 });
    expect(policy.hubFailed('unreachable').action).toBe('reconnect');
    clock.t = 29_999;
    expect(policy.hubFailed('unreachable').action).toBe('reconnect');
    clock.t = 30_000;
    expect(policy.hubFailed('unreachable')).toMatchObject({ action: 'reprovision', reason: 'the hub has been unreachable for 30 s' });
    // DPS named the same hub, still unreachable: another full period before DPS again.
    clock.t = 31_000;
    expect(policy.hubFailed('unreachable').action).toBe('reconnect');
    clock.t = 60_000;
    expect(policy.hubFailed('unreachable').action).toBe('reprovision');
  });

  it('never goes back to DPS with hubUnreachableSeconds 0 or reprovision never', () => {
    for (const overrides of [{ hubUnreachableSeconds: 0 }, { reprovision: 'never' as const }]) {
      const { policy, clock } = policyAt(0, overrides);
      for (let i = 0; i < 50; i++) {
        expect(policy.hubFailed('unreachable').action).toBe('reconnect');
        clock.t += 3_600_000;
      }
    }
  });

  it('a connection starts the unreachable count over', () => {
    const { policy, clock } = policyAt(0, { hubUnreachableSeconds: 30 });
    policy.hubFailed('unreachable');
    clock.t = 20_000;
    policy.hubConnected();
    clock.t = 40_000;
    expect(policy.hubFailed('unreachable').action).toBe('reconnect');
  });
});

describe('connection policy: DPS', () => {
  it('goes back to the fallback hub at once when DPS fails, and holds DPS off for its backoff', () => {
    const { policy, clock } = policyAt(0);
    expect(policy.dpsFailed({ retryable: true }, true)).toMatchObject({ action: 'fallback', delayMs: 0 });
    expect(policy.view().dpsHeldOffUntil).toBe(999);
    clock.t = 500;
    // The fallback hub refuses again before DPS may be asked: reconnect, not DPS.
    expect(policy.hubFailed('refused').action).toBe('reconnect');
  });

  it('retries DPS after its own backoff, honouring Retry-After as the floor', () => {
    const { policy } = policyAt(0, {}, undefined, 0);
    expect(policy.dpsFailed({ retryable: true, retryAfterMs: 7_000 }, false)).toMatchObject({ action: 'retryDps', delayMs: 7_000 });
    expect(policy.dpsFailed({ retryable: true }, false).delayMs).toBe(0);
  });

  it('leaves DPS alone for hours once only an operator can help, and says so', () => {
    const { policy } = policyAt(0, {}, undefined, 0.5);
    const decision = policy.dpsFailed({ retryable: false, operatorMustAct: true }, false);
    expect(decision).toMatchObject({ action: 'retryDps', delayMs: 6 * HOUR });
    expect(policy.view().operatorMustAct).toBe(true);
  });

  it('takes the first refusals as an enrollment on its way, then slows down', () => {
    const { policy } = policyAt(0, {}, undefined, 0.5);
    const delays = Array.from({ length: REFUSALS_BEFORE_SLOW_RETRY }, () => policy.dpsFailed({ retryable: false, refused: true }, false).delayMs);
    expect(delays.slice(0, -1).every((d) => d < 60_000)).toBe(true);
    expect(delays.at(-1)).toBe(6 * HOUR);
  });

  it('spreads the slow retries of boards disabled together (0.75 to 1.25 of the interval)', () => {
    const low = policyAt(0, {}, undefined, 0).policy.dpsFailed({ retryable: false, operatorMustAct: true }, false).delayMs;
    const high = policyAt(0, {}, undefined, 0.999999).policy.dpsFailed({ retryable: false, operatorMustAct: true }, false).delayMs;
    expect(low).toBe(4.5 * HOUR);
    expect(high).toBeGreaterThan(7.49 * HOUR);
  });

  it('a completed registration clears the hold and starts the rate limit', () => {
    const { policy, clock } = policyAt(0);
    policy.dpsFailed({ retryable: false, operatorMustAct: true }, false);
    policy.dpsAssigned();
    expect(policy.view()).toMatchObject({ operatorMustAct: false, dpsHeldOffUntil: HOUR, consecutiveFailures: 0 }); // the rate limit from now
    expect(policy.history().lastRegistrationAt).toBe(0);
    clock.t = HOUR - 1;
    expect(policy.hubFailed('refused').action).toBe('reconnect');
  });
});

describe('connection policy: spreading reconnects', () => {
  it('draws the first reconnect after a session that worked from 0..spread, not from the backoff', () => {
    for (const [random, delay] of [[0, 0], [0.5, 7_500]] as const) {
      const { policy, clock } = policyAt(0, {}, undefined, random);
      policy.hubConnected();
      clock.t = 60_000;
      expect(policy.hubLost()).toMatchObject({ action: 'reconnect', delayMs: delay });
    }
  });

  it('keeps growing the backoff for connections the hub drops at once (throttling, a used-up quota)', () => {
    const { policy, clock } = policyAt(0);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      policy.hubConnected();
      clock.t += 100;
      const decision = policy.hubLost();
      expect(decision.action).toBe('reconnect');
      delays.push(decision.delayMs);
      clock.t += decision.delayMs;
    }
    expect(delays.slice(0, 5)).toEqual([999, 1_998, 3_996, 7_992, 15_984]);
    expect(policy.view().consecutiveFailures).toBe(1); // counted since the last connection
    // A session that then lasts starts the backoff over.
    policy.hubConnected();
    clock.t += 60_000;
    policy.hubLost();
    expect(policy.hubFailed('unreachable').delayMs).toBe(999);
  });

  it('keeps counting failures across flows until a connection succeeds', () => {
    const { policy } = policyAt(0, { reprovision: 'never' });
    policy.hubFailed('unreachable');
    policy.flowFailed();
    policy.hubFailed('refused');
    expect(policy.view().consecutiveFailures).toBe(3);
    policy.hubConnected();
    expect(policy.view().consecutiveFailures).toBe(0);
  });
});

describe('connection policy: reasons and the status view', () => {
  it('starts with nothing wrong', () => {
    const { policy } = policyAt(0);
    expect(policy.view()).toEqual({ consecutiveFailures: 0, nextAttemptAt: undefined, dpsHeldOffUntil: undefined, operatorMustAct: false });
  });

  it('shows when the next attempt is due, until it is', () => {
    const { policy, clock } = policyAt(1_000, { reprovision: 'never' });
    const decision = policy.hubFailed('unreachable');
    expect(policy.view().nextAttemptAt).toBe(1_000 + decision.delayMs);
    clock.t = 1_000 + decision.delayMs - 1;
    expect(policy.view().nextAttemptAt).toBe(1_000 + decision.delayMs);
    clock.t = 1_000 + decision.delayMs;
    expect(policy.view().nextAttemptAt).toBeUndefined();
  });

  it('shows how long DPS is held off, until it is not', () => {
    const { policy, clock } = policyAt(0);
    policy.dpsFailed({ retryable: true }, true);
    expect(policy.view().dpsHeldOffUntil).toBe(999);
    clock.t = 998;
    expect(policy.view().dpsHeldOffUntil).toBe(999);
    clock.t = 999;
    expect(policy.view().dpsHeldOffUntil).toBeUndefined();
  });

  it('says why it reconnects or goes back to DPS', () => {
    const { policy, clock } = policyAt(0, { hubUnreachableSeconds: 30 });
    policy.hubConnected();
    clock.t = 2_400;
    expect(policy.hubLost().reason).toBe('the hub dropped the connection after 2 s');
    policy.hubConnected();
    clock.t += 60_000;
    expect(policy.hubLost().reason).toBe('the connection to the hub dropped');
    expect(policy.hubFailed('unreachable').reason).toBe('the hub is unreachable');
    expect(policy.hubFailed('refused').reason).toBe('the hub refused the device');
    const never = policyAt(0, { reprovision: 'never' }).policy;
    expect(never.hubFailed('refused').reason).toBe('the hub refused the device and reprovision is never');
  });

  it('says why DPS is asked again, and whether only an operator can help', () => {
    const { policy } = policyAt(0);
    expect(policy.dpsFailed({ retryable: true }, false).reason).toBe('DPS failed');
    expect(policy.dpsFailed({ retryable: true }, true).reason).toBe('DPS failed: back to the hub of the previous assignment');
    expect(policy.dpsFailed({ retryable: false, operatorMustAct: true }, false).reason).toBe('DPS will not assign this device until an operator acts');
  });

  it('counts a failed DPS attempt as a failure in a row', () => {
    const { policy } = policyAt(0);
    policy.dpsFailed({ retryable: true }, false);
    policy.dpsFailed({ retryable: true }, true);
    expect(policy.view().consecutiveFailures).toBe(2);
  });

  it('after going back to the fallback hub, shows the next DPS attempt as due when DPS is no longer held off', () => {
    const { policy } = policyAt(5_000);
    const decision = policy.dpsFailed({ retryable: true }, true);
    expect(decision.delayMs).toBe(0);
    expect(policy.view().nextAttemptAt).toBe(5_000 + 999);
  });
});

describe('connection policy: the rest of the flow', () => {
  it('retries a flow stopped by something else (TPM, CA file) after its own growing backoff', () => {
    const { policy } = policyAt(0);
    expect([policy.flowFailed(), policy.flowFailed(), policy.flowFailed()]).toEqual([999, 1_998, 3_996]);
    expect(policy.view()).toMatchObject({ consecutiveFailures: 3, nextAttemptAt: 3_996 });
  });

  it('starts the flow backoff over once the hub is connected', () => {
    const { policy } = policyAt(0);
    policy.flowFailed();
    policy.flowFailed();
    policy.hubConnected();
    expect(policy.flowFailed()).toBe(999);
  });
});

describe('connection policy: DPS held off', () => {
  it('does not go back to DPS for an unreachable hub while DPS is held off, and does once it is not', () => {
    const { policy, clock } = policyAt(0, { hubUnreachableSeconds: 30 });
    policy.dpsFailed({ retryable: false, operatorMustAct: true }, true); // held off for hours, on the fallback hub
    const heldUntil = policy.view().dpsHeldOffUntil!;
    clock.t = 1_000;
    policy.hubFailed('unreachable');
    clock.t = heldUntil - 1;
    expect(policy.hubFailed('unreachable').action).toBe('reconnect');
    clock.t = heldUntil;
    expect(policy.hubFailed('unreachable').action).toBe('reprovision');
  });

  it('takes a refusal after a working session as news only once DPS is no longer held off', () => {
    const { policy, clock } = policyAt(10 * HOUR, {}, 10 * HOUR - 60_000);
    policy.dpsFailed({ retryable: true }, true); // a requested re-provisioning failed: back on the previous hub
    const heldUntil = policy.view().dpsHeldOffUntil!;
    policy.hubConnected();
    clock.t = 10 * HOUR + 100;
    policy.hubLost();
    expect(policy.hubFailed('refused').action).toBe('reconnect');
    expect(heldUntil).toBeGreaterThan(10 * HOUR + 100);
    clock.t = 10 * HOUR + 999;
    expect(policy.hubFailed('refused')).toMatchObject({ action: 'reprovision', reason: 'the hub refused a device it had accepted since the last registration' });
  });

  it('counts an unreachable hub from the moment the link was lost', () => {
    const { policy, clock } = policyAt(0, { hubUnreachableSeconds: 1_800 });
    policy.hubConnected();
    clock.t = 100_000;
    policy.hubLost();
    clock.t = 100_000 + 600_000;
    expect(policy.hubFailed('unreachable').action).toBe('reconnect');
    clock.t = 100_000 + 1_800_000;
    expect(policy.hubFailed('unreachable')).toMatchObject({ action: 'reprovision', reason: 'the hub has been unreachable for 1800 s' });
  });

  it('allows the next exception for a refusal exactly minReprovisionSeconds after the last', () => {
    const { policy, clock } = policyAt(10 * HOUR, {}, 10 * HOUR - 60_000);
    policy.hubConnected();
    clock.t += 30_000;
    policy.hubLost();
    const exceptionAt = clock.t;
    expect(policy.hubFailed('refused').action).toBe('reprovision');
    clock.t += 10_000;
    policy.dpsAssigned(); // the same hub again; the rate limit now runs from here
    policy.hubConnected();
    clock.t = exceptionAt + HOUR - 1;
    policy.hubLost();
    expect(policy.hubFailed('refused').action).toBe('reconnect');
    clock.t = exceptionAt + HOUR;
    expect(policy.hubFailed('refused')).toMatchObject({ action: 'reprovision', reason: 'the hub refused a device it had accepted since the last registration' });
  });
});

describe('connection policy: settings and clock', () => {
  it('takes new settings at once and keeps its history and backoff counts', () => {
    const { policy } = policyAt(0, { reprovision: 'never' }, 0);
    expect(policy.hubFailed('refused').delayMs).toBe(999);
    policy.update(settings({ reprovision: 'never', minReprovisionSeconds: 0 }));
    expect(policy.hubFailed('refused').delayMs).toBe(1_998);
    policy.update(settings({ minReprovisionSeconds: 0 }));
    expect(policy.hubFailed('refused').action).toBe('reprovision');
    expect(policy.history()).toEqual({ lastRegistrationAt: 0 });
  });

  it('uses the system clock unless given one', () => {
    const policy = new ConnectionPolicy(settings());
    const before = Date.now();
    policy.dpsAssigned();
    const at = policy.history().lastRegistrationAt!;
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
  });
});
