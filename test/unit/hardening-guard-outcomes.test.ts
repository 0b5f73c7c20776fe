import { describe, expect, it } from 'vitest';
import type { ApplyReport, HardeningEngine } from '../../hardening/engine.js';
import { DEFAULT_PROBE_INTERVAL_MS, guardIdle, runGuard } from '../../hardening/guard.js';
import type { History } from '../../hardening/known-good.js';
import type { HostPort, ProbeResult } from '../../hardening/probe.js';
import { stringMatching } from '../support/matchers.js';

/** The engine's history in memory: what the guard reads, marks and reverts. */
function fakeEngine(applied: History['applied'], knownGood: History['knownGood'], options: { goodRecordGone?: boolean } = {}) {
  const state = { applied, knownGood, reverts: 0, marks: 0, reverted: false };
  const engine = {
    history: (): Promise<History> => Promise.resolve({ applied: state.applied, knownGood: state.knownGood, pending: false }),
    markKnownGood: () => {
      state.marks++;
      state.applied = { ...state.applied!, confirmed: true };
      state.knownGood = { name: state.applied.name, hash: state.applied.hash };
      return Promise.resolve();
    },
    revertToKnownGood: (): Promise<ApplyReport | null> => {
      if (options.goodRecordGone) return Promise.resolve(null);
      state.reverts++;
      state.reverted = true;
      return Promise.resolve({ profile: 'strict', hash: 'good', changed: true, confirmed: false, rolledBack: false, notes: [], durationMs: 1 });
    },
  };
  return { state, engine: engine as unknown as HardeningEngine };
}

/** A clock that only moves when the guard sleeps or probes, so the loop is tested without waiting. */
function fakeClock() {
  let t = 1_000_000;
  return { now: () => t, sleep: (ms: number) => { t += ms; return Promise.resolve(); }, advance: (ms: number) => { t += ms; } };
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
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 6, probe, intervalMs: 3_000, now: () => 0, sleep: () => Promise.resolve() });
    expect(probes).toBe(4);
    expect(outcome).toMatchObject({ status: 'kept', reason: stringMatching(/within the grace time/) });
  });

  it('counts the grace time in seconds when the rounds run out before it passed', async () => {
    const { engine, state } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    let t = 0;
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 6, probe: answer(() => false), intervalMs: 3_000, now: () => t, sleep: () => { t += 1; return Promise.resolve(); } });
    expect(outcome).toMatchObject({ status: 'kept', reason: stringMatching(/^within the grace time; /) });
    expect(state.reverts).toBe(0);
  });

  it('is not reconnected after reverting while any one endpoint still does not answer', async () => {
    const { engine, state } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    const outcome = await runGuard({ engine, targets: [hub, dps], graceSeconds: 3, probe: answer((t) => state.reverted && t === hub), intervalMs: 3_000, ...fakeClock() });
    expect(outcome).toMatchObject({ status: 'reverted', reconnected: false, after: [{ ok: true }, { ok: false }] });
  });

  it('says which endpoints answered when it confirms', async () => {
    const { engine } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    const outcome = await runGuard({ engine, targets: [hub, dps], graceSeconds: 300, probe: answer(() => true), ...fakeClock() });
    expect(outcome.reason).toBe('hub.example.net:8883, global.azure-devices-provisioning.net:443 answered: the applied profile is now known good');
    expect(outcome).toMatchObject({ probes: [{ target: 'hub.example.net:8883', ok: true }, { target: 'global.azure-devices-provisioning.net:443', ok: true }] });
  });

  it('probes again after reverting, and says whether the endpoints answered', async () => {
    const { engine, state } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    const timeouts: number[] = [];
    const probe = (targets: readonly HostPort[], timeoutMs: number) => { timeouts.push(timeoutMs); return answer(() => state.reverted)(targets); };
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 6, probe, intervalMs: 3_000, ...fakeClock() });
    expect(outcome).toMatchObject({
      status: 'reverted', reconnected: true, rounds: 3, report: { profile: 'strict' },
      after: [{ target: 'hub.example.net:8883', ok: true, detail: 'TLS handshake completed (TLSv1.3)' }],
      reason: 'endpoints unreachable for 6 s with an unconfirmed profile applied (hub.example.net:8883: ECONNREFUSED): reverted to the last known good profile strict',
    });
    expect(timeouts.at(-1)).toBe(3_000);
  });

  it('keeps the profile, saying why and what the last probe found, when there is nothing to revert to', async () => {
    const { engine } = fakeEngine(unconfirmed, null);
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 5, probe: answer(() => false), ...fakeClock() });
    expect(outcome.reason).toBe('no known good profile to go back to; last probe: hub.example.net:8883: ECONNREFUSED');
  });

  it('keeps the profile when the known good record is gone by the time it would revert', async () => {
    const { engine } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' }, { goodRecordGone: true });
    const outcome = await runGuard({ engine, targets: [hub], graceSeconds: 3, probe: answer(() => false), ...fakeClock() });
    expect(outcome).toMatchObject({ status: 'kept', reason: 'endpoints unreachable for 3 s with an unconfirmed profile applied; last probe: hub.example.net:8883: ECONNREFUSED' });
  });

  it('probes every 3 s unless told otherwise, for the grace time counted from its start', async () => {
    const { engine } = fakeEngine(unconfirmed, { name: 'strict', hash: 'good' });
    const clock = fakeClock();
    const sleeps: number[] = [];
    const sleep = async (ms: number) => { sleeps.push(ms); await clock.sleep(ms); };
    await runGuard({ engine, targets: [hub], graceSeconds: 9, probe: answer(() => false), now: clock.now, sleep });
    expect(DEFAULT_PROBE_INTERVAL_MS).toBe(3_000);
    expect(sleeps).toEqual([3_000, 3_000, 3_000]);
  });

  it('says why there is nothing to guard, or null while the applied profile has to prove itself', async () => {
    expect(await guardIdle(fakeEngine(null, null).engine)).toBe('no hardening profile has been applied');
    expect(await guardIdle(fakeEngine(unconfirmed, { name: 'strict', hash: 'good' }).engine)).toBeNull();
  });
});
