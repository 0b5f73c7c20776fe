import { describe, expect, it } from 'vitest';
import { checkClock } from '../../agent/check/clock-check.js';
import { CLOCK_NOT_AFTER, CLOCK_NOT_BEFORE, clockNotBefore } from '../../agent/time/clock-bounds.js';
import { stringContaining } from '../support/matchers.js';

describe('check: clock plausibility', () => {
  it('passes a time after the agent was built', () => {
    expect(checkClock(new Date('2026-11-26T02:35:00Z'))).toEqual({
      id: 'clock', status: 'pass', message: 'system time 2026-11-26T02:35:00Z is plausible (the service\'s time was not measured)',
    });
  });

  it('says how far the service\'s clock is, and warns beyond five minutes', () => {
    const now = new Date('2026-11-26T02:35:00Z');
    expect(checkClock(now, { offsetMs: 1_400, source: 'DPS dps.example' })).toMatchObject({
      status: 'pass', message: 'system time 2026-11-26T02:35:00Z is plausible, 1 s behind DPS dps.example',
    });
    const behind = checkClock(now, { offsetMs: 2 * 3_600_000, source: 'DPS dps.example' });
    expect(behind).toMatchObject({ status: 'warn', message: stringContaining('is 7200 s behind DPS dps.example: the agent signs its tokens with the service\'s time') });
    expect(behind.hint).toContain('timedatectl set-ntp true');
    expect(checkClock(now, { offsetMs: -300_001, source: 'DPS x' })).toMatchObject({ status: 'warn', message: stringContaining('300 s ahead of DPS x') });
    expect(checkClock(now, { offsetMs: 300_000, source: 'DPS x' }).status).toBe('pass');
  });

  it('fails a board that woke up in 1970, saying SAS tokens will be rejected and pointing at NTP', () => {
    const result = checkClock(new Date(12_000));
    expect(result.status).toBe('fail');
    expect(result.message).toContain('1970-01-01T00:00:12Z is before 2026-01-01');
    expect(result.message).toContain('reject its SAS tokens');
    expect(result.hint).toContain('systemd-timesyncd');
  });

  it('fails the instant before the floor and passes the floor itself', () => {
    expect(checkClock(new Date(CLOCK_NOT_BEFORE.getTime() - 1)).status).toBe('fail');
    expect(checkClock(CLOCK_NOT_BEFORE).status).toBe('pass');
  });

  it('names the clock check in each of its verdicts', () => {
    const now = new Date('2026-11-26T02:35:00Z');
    expect([checkClock(new Date(12_000)), checkClock(CLOCK_NOT_AFTER), checkClock(now, { offsetMs: 1_000, source: 'DPS x' })].map((r) => [r.id, r.status]))
      .toEqual([['clock', 'fail'], ['clock', 'fail'], ['clock', 'pass']]);
  });

  it('fails an absurd future', () => {
    const result = checkClock(CLOCK_NOT_AFTER);
    expect(result.status).toBe('fail');
    expect(result.message).toContain('is after 2100-01-01');
    expect(result.hint).toContain('NTP');
  });
});

describe('check: clock offsets and bounds', () => {
  it('says how far behind or ahead the service is, in whole seconds', () => {
    const now = new Date('2026-11-26T02:35:00.250Z');
    expect(checkClock(now, { offsetMs: 400, source: 'DPS x' }).message).toBe('system time 2026-11-26T02:35:00Z is plausible, 0 s behind DPS x');
    expect(checkClock(now, { offsetMs: -1_400, source: 'DPS x' }).message).toBe('system time 2026-11-26T02:35:00Z is plausible, 1 s ahead of DPS x');
    expect(checkClock(now, { offsetMs: -1_600, source: 'DPS x' }).message).toBe('system time 2026-11-26T02:35:00Z is plausible, 2 s ahead of DPS x');
  });

  it('warns beyond five minutes either way, saying TLS and logs still use this clock', () => {
    const now = new Date('2026-11-26T02:35:00Z');
    expect(checkClock(now, { offsetMs: 300_001, source: 'DPS x' })).toEqual({
      id: 'clock', status: 'warn',
      message: 'system time 2026-11-26T02:35:00Z is 300 s behind DPS x: the agent signs its tokens with the service\'s time, but TLS certificates and logs use this clock',
      hint: 'enable time synchronisation: `timedatectl set-ntp true` (systemd-timesyncd), allow outbound NTP (udp/123), then re-run check',
    });
    expect(checkClock(now, { offsetMs: -300_000, source: 'DPS x' }).status).toBe('pass');
  });

  it('takes the plausible window it is given, the last instant before its end included', () => {
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const notAfter = new Date('2031-01-01T00:00:00Z');
    expect(checkClock(new Date('2029-12-31T23:59:59.999Z'), undefined, notBefore, notAfter)).toMatchObject({
      status: 'fail', message: 'system time 2029-12-31T23:59:59Z is before 2030-01-01, older than this agent: the clock was never set, so DPS and the hub will reject its SAS tokens and TLS certificates look not yet valid',
    });
    expect(checkClock(new Date('2030-12-31T23:59:59.999Z'), undefined, notBefore, notAfter).status).toBe('pass');
    expect(checkClock(notAfter, undefined, notBefore, notAfter)).toMatchObject({
      status: 'fail', message: 'system time 2031-01-01T00:00:00Z is after 2031-01-01: the clock is wrong, so DPS and the hub will reject its SAS tokens and TLS certificates look expired',
      hint: stringContaining('timedatectl set-ntp true'),
    });
  });
});

describe('the floor of a plausible clock', () => {
  it('is the build\'s time when the bundle gives one later than the release floor', () => {
    expect(clockNotBefore('2026-11-30T10:00:00.000Z').toISOString()).toBe('2026-11-30T10:00:00.000Z');
  });

  it('is the release floor without a build time, with one before it, or with one that is not a time', () => {
    for (const builtAt of [undefined, '2025-06-01T00:00:00.000Z', 'yesterday', '']) {
      expect(clockNotBefore(builtAt).toISOString()).toBe('2026-01-01T00:00:00.000Z');
    }
  });

  it('is the release floor when the agent runs from a plain TypeScript build', () => {
    expect(CLOCK_NOT_BEFORE.toISOString()).toBe('2026-01-01T00:00:00.000Z');
  });
});
