import { describe, expect, it } from 'vitest';
import { revertDue } from '../../hardening/boot-guard.js';
import { parseHostPort } from '../../hardening/probe.js';

describe('boot guard decision', () => {
  const facts = { appliedHash: 'new', appliedConfirmed: false, knownGoodHash: 'good', unreachableForMs: 300_000, graceMs: 120_000 };

  it('reverts an unconfirmed profile after the hub stayed away for the grace time', () => {
    expect(revertDue(facts)).toMatchObject({ revert: true, reason: 'hub unreachable for 300 s with an unconfirmed profile applied' });
  });

  it('waits out the grace time', () => {
    expect(revertDue({ ...facts, unreachableForMs: 60_000 }).revert).toBe(false);
  });

  it('never reverts a confirmed profile, the known good one itself, or without a known good one', () => {
    expect(revertDue({ ...facts, appliedConfirmed: true }).revert).toBe(false);
    expect(revertDue({ ...facts, knownGoodHash: 'new' }).revert).toBe(false);
    expect(revertDue({ ...facts, knownGoodHash: null }).revert).toBe(false);
    expect(revertDue({ ...facts, appliedHash: null }).revert).toBe(false);
  });
});

describe('confirm targets', () => {
  it('parses host:port, IPv6 in brackets included', () => {
    expect(parseHostPort('hub.example.net:8883')).toEqual({ host: 'hub.example.net', port: 8883 });
    expect(parseHostPort('[fd00::1]:443')).toEqual({ host: 'fd00::1', port: 443 });
  });

  it('rejects a missing or bad port as a usage error', () => {
    for (const bad of ['hub.example.net', 'hub:0', 'hub:70000', 'fd00::1:443']) {
      expect(() => parseHostPort(bad)).toThrow(/invalid host:port/);
    }
  });
});
