import { describe, expect, it } from 'vitest';
import { bootChoice, nothingToGuard, revertDue, type History } from '../../hardening/known-good.js';
import { parseHostPort, probeUntilReachable, type HostPort } from '../../hardening/probe.js';

const history: History = { applied: { name: 'no-hub', hash: 'new', confirmed: false }, knownGood: { name: 'strict', hash: 'good' }, pending: false };

describe('the known-good policy: the guard\'s decision', () => {
  it('reverts an unconfirmed profile after the endpoints stayed away for the grace time', () => {
    expect(revertDue(history, 300_000, 120_000)).toMatchObject({ revert: true, reason: 'endpoints unreachable for 300 s with an unconfirmed profile applied' });
  });

  it('waits out the grace time', () => {
    expect(revertDue(history, 60_000, 120_000).revert).toBe(false);
  });

  it('never reverts a confirmed profile, the known good one itself, or without a known good one', () => {
    expect(revertDue({ ...history, applied: { ...history.applied!, confirmed: true } }, 1e9, 1).revert).toBe(false);
    expect(revertDue({ ...history, knownGood: { name: 'no-hub', hash: 'new' } }, 1e9, 1).revert).toBe(false);
    expect(revertDue({ ...history, knownGood: null }, 1e9, 1)).toMatchObject({ revert: false, reason: 'no known good profile to go back to' });
    expect(revertDue({ ...history, applied: null }, 1e9, 1).revert).toBe(false);
  });

  it('has nothing to guard without an applied profile, or when it is known good', () => {
    expect(nothingToGuard({ ...history, applied: null })).toBe('no hardening profile has been applied');
    expect(nothingToGuard({ ...history, applied: { ...history.applied!, confirmed: true } })).toMatch(/already known good/);
    expect(nothingToGuard(history)).toBeNull();
  });
});

describe('the known-good policy: what the boot path applies', () => {
  it('the last known good profile after an interrupted change (a corrupt pending marker counts as one)', () => {
    expect(bootChoice({ ...history, pending: true })).toMatchObject({ source: 'known-good', why: expect.stringMatching(/interrupted/) });
  });

  it('otherwise the applied profile, then the known good one, then the configured one', () => {
    expect(bootChoice(history).source).toBe('applied');
    expect(bootChoice({ ...history, applied: null }).source).toBe('known-good');
    expect(bootChoice({ applied: null, knownGood: null, pending: true }).source).toBe('configured');
  });
});

describe('the one probe loop', () => {
  const hub: HostPort = { host: 'hub.example.net', port: 8883 };
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, sleep: async (ms: number) => { t += ms; } };
  };

  it('stops at the first round in which every target answers', async () => {
    let round = 0;
    const probe = async (targets: readonly HostPort[]) => targets.map((t) => ({ target: t.host, ok: ++round >= 3, detail: '' }));
    const c = clock();
    expect(await probeUntilReachable({ probe, targets: [hub], deadline: c.now() + 60_000, intervalMs: 1_000, ...c })).toMatchObject({ ok: true, rounds: 3 });
  });

  it('gives up at the deadline, and after a bounded number of rounds if the clock stands still', async () => {
    const probe = async (targets: readonly HostPort[]) => targets.map((t) => ({ target: t.host, ok: false, detail: 'ECONNREFUSED' }));
    const c = clock();
    expect(await probeUntilReachable({ probe, targets: [hub], deadline: c.now() + 10_000, intervalMs: 3_000, ...c })).toMatchObject({ ok: false, rounds: 5 });
    expect(await probeUntilReachable({ probe, targets: [hub], deadline: 6_000, intervalMs: 3_000, now: () => 0, sleep: async () => undefined }))
      .toMatchObject({ ok: false, rounds: 4 });
  });
});

describe('confirm targets', () => {
  it('parses host:port, IPv6 in brackets included', () => {
    expect(parseHostPort('hub.example.net:8883')).toEqual({ host: 'hub.example.net', port: 8883 });
    expect(parseHostPort('[fd00::1]:443')).toEqual({ host: 'fd00::1', port: 443 });
  });

  it('rejects a missing or bad port, and a host that is not a DNS name or address, as a usage error', () => {
    for (const bad of ['hub.example.net', 'hub:0', 'hub:70000', 'fd00::1:443', 'hub_x:443', 'a..b:443', ' hub:443', '-hub:443', `${'a'.repeat(64)}.net:443`]) {
      expect(() => parseHostPort(bad), bad).toThrow(/invalid host:port/);
    }
  });
});
