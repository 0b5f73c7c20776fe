import { describe, expect, it } from 'vitest';
import { checkClock } from '../../agent/check/clock-check.js';
import { CLOCK_NOT_AFTER, CLOCK_NOT_BEFORE } from '../../agent/time/clock-bounds.js';

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
    expect(behind).toMatchObject({ status: 'warn', message: expect.stringContaining('is 7200 s behind DPS dps.example: the agent signs its tokens with the service\'s time') });
    expect(behind.hint).toContain('timedatectl set-ntp true');
    expect(checkClock(now, { offsetMs: -300_001, source: 'DPS x' })).toMatchObject({ status: 'warn', message: expect.stringContaining('300 s ahead of DPS x') });
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

  it('fails an absurd future', () => {
    const result = checkClock(CLOCK_NOT_AFTER);
    expect(result.status).toBe('fail');
    expect(result.message).toContain('is after 2100-01-01');
    expect(result.hint).toContain('NTP');
  });
});
