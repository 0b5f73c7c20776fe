import { describe, expect, it } from 'vitest';
import { bootChoice, nothingToGuard, revertDue, type History } from '../../hardening/known-good.js';

const NEW = 'a1b2c3d4e5f6a7b8c9d0';
const history = (): History => ({ applied: { name: 'no-hub', hash: NEW, confirmed: false }, knownGood: { name: 'strict', hash: 'good' }, pending: false });
const confirmed = (): History => ({ ...history(), applied: { name: 'no-hub', hash: NEW, confirmed: true } });

describe('the known-good policy: the guard\'s decision', () => {
  it('reverts an unconfirmed profile once the endpoints stayed away for the grace time, saying for how long in seconds', () => {
    expect(revertDue(history(), 300_000, 120_000)).toEqual({ revert: true, reason: 'endpoints unreachable for 300 s with an unconfirmed profile applied' });
    expect(revertDue(history(), 120_000, 120_000)).toEqual({ revert: true, reason: 'endpoints unreachable for 120 s with an unconfirmed profile applied' });
    expect(revertDue(history(), 130_600, 120_000).reason).toBe('endpoints unreachable for 131 s with an unconfirmed profile applied');
  });

  it('waits out the grace time', () => {
    expect(revertDue(history(), 119_999, 120_000)).toEqual({ revert: false, reason: 'within the grace time' });
  });

  it('never reverts a confirmed profile, the known good one itself, or without a known good one', () => {
    expect(revertDue(confirmed(), 1e9, 1)).toEqual({ revert: false, reason: 'profile no-hub (a1b2c3d4e5f6) is already known good' });
    expect(revertDue({ ...history(), knownGood: { name: 'no-hub', hash: NEW } }, 1e9, 1)).toEqual({ revert: false, reason: 'profile no-hub (a1b2c3d4e5f6) is the known good one' });
    expect(revertDue({ ...history(), knownGood: null }, 1e9, 1)).toEqual({ revert: false, reason: 'no known good profile to go back to' });
    expect(revertDue({ ...history(), applied: null }, 1e9, 1)).toEqual({ revert: false, reason: 'no hardening profile has been applied' });
  });

  it('has nothing to guard without an applied profile, or when it is known good; an unconfirmed one has to prove itself', () => {
    expect(nothingToGuard({ ...history(), applied: null })).toBe('no hardening profile has been applied');
    expect(nothingToGuard(confirmed())).toBe('profile no-hub (a1b2c3d4e5f6) is already known good');
    expect(nothingToGuard({ ...history(), knownGood: { name: 'other-name', hash: NEW } })).toBe('profile no-hub (a1b2c3d4e5f6) is the known good one');
    expect(nothingToGuard(history())).toBeNull();
    expect(nothingToGuard({ ...history(), knownGood: null })).toBeNull();
  });
});

describe('the known-good policy: what the boot path applies', () => {
  it('the last known good profile after an interrupted change (a corrupt pending marker counts as one)', () => {
    expect(bootChoice({ ...history(), pending: true })).toEqual({ source: 'known-good', why: 'last known good (a remote change was interrupted before it was confirmed)' });
  });

  it('the applied profile otherwise, saying whether it is known good', () => {
    expect(bootChoice(history())).toEqual({ source: 'applied', why: 'applied profile (not yet confirmed)' });
    expect(bootChoice(confirmed())).toEqual({ source: 'applied', why: 'applied profile (known good)' });
  });

  it('the applied profile after an interrupted change when there is no known good one to go back to', () => {
    expect(bootChoice({ ...history(), knownGood: null, pending: true })).toEqual({ source: 'applied', why: 'applied profile (not yet confirmed)' });
  });

  it('the known good one without a usable record of the applied one, else the configured one', () => {
    expect(bootChoice({ ...history(), applied: null })).toEqual({ source: 'known-good', why: 'last known good (no usable record of the applied profile)' });
    expect(bootChoice({ applied: null, knownGood: null, pending: true })).toEqual({ source: 'configured', why: 'no profile recorded yet: the configured one' });
  });
});
