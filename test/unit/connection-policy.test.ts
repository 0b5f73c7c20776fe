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
