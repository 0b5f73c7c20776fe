import { describe, expect, it } from 'vitest';
import type { ApplyReport, HardeningEngine } from '../../hardening/engine.js';
import { runGuard } from '../../hardening/guard.js';
import type { History } from '../../hardening/known-good.js';
import type { HostPort, ProbeResult } from '../../hardening/probe.js';

/** The engine's history in memory: what the guard reads, marks and reverts. */
function fakeEngine(applied: History['applied'], knownGood: History['knownGood']) {
  const state = { applied, knownGood, reverts: 0, marks: 0 };
  const engine = {
    history: async (): Promise<History> => ({ applied: state.applied, knownGood: state.knownGood, pending: false }),
    markKnownGood: async () => {
      state.marks++;
      state.applied = { ...state.applied!, confirmed: true };
      state.knownGood = { name: state.applied.name, hash: state.applied.hash };
    },
    revertToKnownGood: async (): Promise<ApplyReport> => {
      state.reverts++;
      return { profile: 'strict', hash: 'good', changed: true, confirmed: false, rolledBack: false, notes: [], durationMs: 1 };
    },
  };
  return { state, engine: engine as unknown as HardeningEngine };
}

/** A clock that only moves when the guard sleeps or probes, so the loop is tested without waiting. */
function fakeClock() {
  let t = 1_000_000;
  return { now: () => t, sleep: async (ms: number) => { t += ms; }, advance: (ms: number) => { t += ms; } };
}

const hub: HostPort = { host: 'hub.example.net', port: 8883 };
const dps: HostPort = { host: 'global.azure-devices-provisioning.net', port: 443 };
const answer = (ok: (t: HostPort) => boolean) => (targets: readonly HostPort[]): Promise<ProbeResult[]> =>
  Promise.resolve(targets.map((t) => ({ target: `${t.host}:${t.port}`, ok: ok(t), detail: ok(t) ? 'TLS handshake completed (TLSv1.3)' : 'ECONNREFUSED' })));
const unconfirmed = { name: 'no-hub', hash: 'new', confirmed: false };

describe('boot guard run', () => {
  it('has nothing to guard without an applied profile, or when it is known good', async () => {
    for (const [applied, good] of [[null, null], [{ ...unconfirmed, confirmed: true }, null], [unconfirmed, { name: 'no-hub', hash: 'new' }]] as const) {
      const { engine, state } = fakeEngine(applied, good);
      const probe = () => { throw new Error('must not probe'); };
      expect((await runGuard({ engine, targets: [hub], graceSeconds: 300, probe })).status).toBe('nothing-to-guard');
      expect(state.reverts + state.marks).toBe(0);
    }
  });

  it('marks the profile known good as soon as every endpoint answers', async () => {
    const { engine, state } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    const outcome = await runGuard({ engine, targets: [hub, dps], graceSeconds: 300, probe: answer(() => true), ...fakeClock() });
    expect(outcome).toMatchObject({ status: 'confirmed', rounds: 1 });
    expect(state).toMatchObject({ marks: 1, reverts: 0 });
  });

  it('does not keep a profile under which the hub answers but DPS does not: it reverts after the grace time', async () => {
    const { engine, state } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    const clock = fakeClock();
    const outcome = await runGuard({ engine, targets: [hub, dps], graceSeconds: 30, probe: answer((t) => t.port === 8883), ...clock });
    expect(outcome.status).toBe('reverted');
    expect(outcome.reason).toMatch(/global\.azure-devices-provisioning\.net:443: ECONNREFUSED/);
    expect(state).toMatchObject({ marks: 0, reverts: 1 });
  });

  it('probes every interval for the grace time, then reverts to the known good profile', async () => {
    const { engine, state } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    const clock = fakeClock();
    let probes = 0;
    const probe = (t: readonly HostPort[]) => { probes++; clock.advance(100); return answer(() => false)(t); };
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 30, probe, intervalMs: 3_000, ...clock });
    expect(outcome).toMatchObject({ status: 'reverted', reconnected: false });
    expect(outcome.reason).toMatch(/endpoints unreachable for 30 s .*hub\.example\.net:8883: ECONNREFUSED/);
    expect(probes).toBeGreaterThanOrEqual(10);
    expect(probes).toBeLessThanOrEqual(13);
    expect(state.reverts).toBe(1);
  });

  it('keeps an unconfirmed profile when there is no known good one to go back to', async () => {
    const { engine, state } = fakeEngine(unconfirmed, null);
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 5, probe: answer(() => false), ...fakeClock() });
    expect(outcome.status).toBe('kept');
    expect(outcome.reason).toMatch(/no known good profile to go back to/);
    expect(state.reverts).toBe(0);
  });

  it('stops after a bounded number of rounds even if the clock stands still', async () => {
    const { engine } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    let probes = 0;
    const probe = (t: readonly HostPort[]) => { probes++; return answer(() => false)(t); };
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 6, probe, intervalMs: 3_000, now: () => 0, sleep: async () => undefined });
    expect(probes).toBe(4);
    expect(outcome).toMatchObject({ status: 'kept', reason: expect.stringMatching(/within the grace time/) });
  });
});
