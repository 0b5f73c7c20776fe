import { describe, expect, it, vi } from 'vitest';
import { CLOCK_NOT_BEFORE } from '../../agent/time/clock-bounds.js';
import { CORRECTION_THRESHOLD_MS, JUMP_THRESHOLD_MS, offsetFromDate, ServiceClock } from '../../agent/time/service-clock.js';
import { parseHttpDate } from '../../agent/time/http-date.js';

const T0 = Date.parse('2026-12-01T12:00:00Z');

function clockAt(wall: number, notBefore = Date.parse('2026-01-01T00:00:00Z')) {
  const c = { wall, mono: 0 };
  const clock = new ServiceClock(() => c.wall, () => c.mono, notBefore);
  return { clock, c };
}

describe('service clock', () => {
  it('trusts the local clock when no Date header was seen or it is within five minutes', () => {
    const { clock, c } = clockAt(T0);
    expect(clock.now()).toBe(T0);
    clock.observe(new Date(T0 + CORRECTION_THRESHOLD_MS - 2_000).toUTCString(), c.wall, c.wall);
    expect(clock.correctionMs()).toBe(0);
    expect(clock.offsetMs()).toBeCloseTo(CORRECTION_THRESHOLD_MS - 1_500, -2);
  });

  it('signs against the service time when the board is two hours behind, and says so once', () => {
    const { clock, c } = clockAt(T0 - 2 * 3_600_000);
    const corrections: number[] = [];
    clock.on('corrected', (ms) => corrections.push(ms));
    clock.observe(new Date(T0).toUTCString(), c.wall - 100, c.wall + 100);
    expect(clock.now()).toBe(T0 + 500);
    clock.observe(new Date(T0).toUTCString(), c.wall - 100, c.wall + 100);
    expect(corrections).toEqual([2 * 3_600_000 + 500]);
  });

  it('signs with an offset another process measured until a Date header says otherwise', () => {
    const { clock, c } = clockAt(T0 - 2 * 3_600_000);
    clock.adopt(2 * 3_600_000);
    expect(clock.now()).toBe(T0);
    expect(clock.lastMeasuredAt()).toBe(c.wall);
    clock.observe(new Date(T0 + 60_000).toUTCString(), c.wall, c.wall);
    expect(clock.now()).toBe(T0 + 60_500);
  });

  it('splits the round trip in two', () => {
    const { clock } = clockAt(T0);
    clock.observe(new Date(T0 + 3_600_000).toUTCString(), T0 - 1_000, T0 + 1_000);
    expect(clock.offsetMs()).toBe(3_600_000 + 500);
  });

  it('never signs with a clock from before the release', () => {
    const { clock } = clockAt(Date.parse('1970-01-01T00:01:00Z'));
    expect(clock.now()).toBe(Date.parse('2026-01-01T00:00:00Z'));
  });

  it('ignores unreadable dates', () => {
    const { clock, c } = clockAt(T0);
    for (const bad of [undefined, '', '1700000000', 'yesterday', 'Tue, 01 Dec 2026 12:00:00 CET', '-1']) clock.observe(bad, c.wall);
    expect(clock.offsetMs()).toBeUndefined();
    expect(parseHttpDate(' Tue, 01 Dec 2026 12:00:00 GMT ')).toBe(T0);
    // Date.parse would take the offset after GMT and move the time by an hour.
    expect(parseHttpDate('Tue, 01 Dec 2026 12:00:00 GMT+0100')).toBeUndefined();
  });

  it('notices a wall-clock jump against the monotonic clock and moves the offset by the opposite amount', () => {
    const { clock, c } = clockAt(T0 - 2 * 3_600_000);
    clock.observe(new Date(T0).toUTCString(), c.wall, c.wall);
    const jumps: number[] = [];
    clock.on('jumped', (ms) => jumps.push(ms));
    c.wall += 5_000; c.mono += 5_000;
    expect(clock.checkForJump()).toBeUndefined();
    c.wall += 2 * 3_600_000 + 5_000; c.mono += 5_000;
    expect(clock.checkForJump()).toBe(2 * 3_600_000);
    expect(jumps).toEqual([2 * 3_600_000]);
    expect(clock.offsetMs()).toBe(500);
    expect(clock.correctionMs()).toBe(0);
  });
});

describe('service clock: when a correction is news', () => {
  it('says nothing when a new Date header moves the correction by less than a second', () => {
    const { clock, c } = clockAt(T0 - 2 * 3_600_000);
    const corrections: number[] = [];
    clock.on('corrected', (ms) => corrections.push(ms));
    clock.observe(new Date(T0).toUTCString(), c.wall, c.wall);
    clock.observe(new Date(T0).toUTCString(), c.wall - 1_998, c.wall);
    expect(clock.offsetMs()).toBe(2 * 3_600_000 + 500 + 999);
    expect(corrections).toEqual([2 * 3_600_000 + 500]);
  });

  it('says so when the correction moves by a second or more, and when it ends', () => {
    const { clock, c } = clockAt(T0 - 2 * 3_600_000);
    const corrections: number[] = [];
    clock.on('corrected', (ms) => corrections.push(ms));
    clock.observe(new Date(T0).toUTCString(), c.wall, c.wall);
    clock.observe(new Date(T0 + 1_000).toUTCString(), c.wall, c.wall);
    c.wall = T0; // NTP set the clock: the service agrees with it now
    clock.observe(new Date(T0).toUTCString(), c.wall, c.wall);
    expect(corrections).toEqual([2 * 3_600_000 + 500, 2 * 3_600_000 + 1_500, 0]);
  });

  it('remembers when the offset was last measured, at the answer\'s arrival', () => {
    const { clock, c } = clockAt(T0);
    expect(clock.lastMeasuredAt()).toBeUndefined();
    clock.observe(new Date(T0).toUTCString(), T0 - 50, T0 + 70);
    expect(clock.lastMeasuredAt()).toBe(T0 + 70);
    c.wall = T0 + 5_000;
    clock.observe(new Date(T0 + 5_000).toUTCString(), T0 + 4_900);
    expect(clock.lastMeasuredAt()).toBe(T0 + 5_000);
    clock.observe('not a date', T0 + 6_000, T0 + 6_100);
    expect(clock.lastMeasuredAt()).toBe(T0 + 5_000);
  });
});

describe('service clock: the correction', () => {
  it('corrects a board that is ahead of the service as well as one behind', () => {
    const { clock, c } = clockAt(T0 + 3_600_000);
    clock.observe(new Date(T0).toUTCString(), c.wall, c.wall);
    expect(clock.correctionMs()).toBe(-3_600_000 + 500);
    expect(clock.now()).toBe(T0 + 500);
  });

  it('trusts the local clock at exactly five minutes off, and corrects it beyond', () => {
    const { clock, c } = clockAt(T0);
    clock.observe(new Date(T0 + CORRECTION_THRESHOLD_MS).toUTCString(), c.wall + 500, c.wall + 500);
    expect(clock.offsetMs()).toBe(CORRECTION_THRESHOLD_MS);
    expect(clock.correctionMs()).toBe(0);
    clock.observe(new Date(T0 + CORRECTION_THRESHOLD_MS).toUTCString(), c.wall + 499, c.wall + 499);
    expect(clock.correctionMs()).toBe(CORRECTION_THRESHOLD_MS + 1);
  });

  it('rounds a correction to whole milliseconds', () => {
    const { clock, c } = clockAt(T0);
    clock.observe(new Date(T0 + 3_600_000).toUTCString(), c.wall - 1, c.wall);
    expect(clock.offsetMs()).toBe(3_600_000 + 500.5);
    expect(clock.correctionMs()).toBe(3_600_501);
  });

  it('keeps the release date as the floor when the service agrees with a clock from before it', () => {
    const notBefore = Date.parse('2026-01-01T00:00:00Z');
    const { clock, c } = clockAt(notBefore - 60_000, notBefore);
    clock.observe(new Date(notBefore - 60_000).toUTCString(), c.wall, c.wall);
    expect(clock.correctionMs()).toBe(60_000);
    c.wall = notBefore;
    expect(clock.correctionMs()).toBe(0);
  });

  it('reads the offset from a Date header as the service time at the middle of the round trip', () => {
    expect(offsetFromDate(new Date(T0).toUTCString(), T0 - 2_000, T0)).toBe(1_500);
    expect(offsetFromDate(undefined, T0, T0)).toBeUndefined();
    expect(offsetFromDate('soon', T0, T0)).toBeUndefined();
  });

  it('uses the system clocks by default', () => {
    const clock = new ServiceClock();
    const before = Math.max(Date.now(), CLOCK_NOT_BEFORE.getTime());
    const now = clock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Math.max(Date.now(), CLOCK_NOT_BEFORE.getTime()));
    expect(clock.checkForJump()).toBeUndefined();
  });
});

describe('service clock: jumps', () => {
  it('takes a wall clock that moved exactly 30 s more than the monotonic one as a jump, and 29.999 s as none', () => {
    const { clock, c } = clockAt(T0);
    c.wall += JUMP_THRESHOLD_MS - 1;
    expect(clock.checkForJump()).toBeUndefined();
    c.wall += JUMP_THRESHOLD_MS;
    expect(clock.checkForJump()).toBe(JUMP_THRESHOLD_MS);
  });

  it('notices a jump backwards, and moves the offset forwards by as much', () => {
    const { clock, c } = clockAt(T0);
    clock.observe(new Date(T0).toUTCString(), c.wall, c.wall);
    const jumps: number[] = [];
    clock.on('jumped', (ms) => jumps.push(ms));
    c.wall -= 3_600_000; c.mono += 1_000;
    expect(clock.checkForJump()).toBe(-3_601_000);
    expect(jumps).toEqual([-3_601_000]);
    expect(clock.offsetMs()).toBe(500 + 3_601_000);
  });

  it('reports a jump with no offset to move when the service was never asked', () => {
    const { clock, c } = clockAt(T0);
    c.wall += 3_600_000;
    expect(clock.checkForJump()).toBe(3_600_000);
    expect(clock.offsetMs()).toBeUndefined();
  });

  it('compares each check with the one before, not with the start', () => {
    const { clock, c } = clockAt(T0);
    c.wall += 3_600_000;
    clock.checkForJump();
    c.wall += 1_000; c.mono += 1_000;
    expect(clock.checkForJump()).toBeUndefined();
  });

  it('watches for jumps on a timer from the moment it starts, until stopped', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const { clock, c } = clockAt(T0);
      const jumps: number[] = [];
      clock.on('jumped', (ms) => jumps.push(ms));
      c.wall += 3_600_000; // before watching: not a jump it reports
      const stop = clock.watch(1_000);
      vi.advanceTimersByTime(1_000);
      expect(jumps).toEqual([]);
      c.wall += 60_000;
      vi.advanceTimersByTime(999);
      expect(jumps).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(jumps).toEqual([60_000]);
      stop();
      c.wall += 60_000;
      vi.advanceTimersByTime(5_000);
      expect(jumps).toEqual([60_000]);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('checks every five seconds unless told otherwise', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const { clock, c } = clockAt(T0);
      const jumps: number[] = [];
      clock.on('jumped', (ms) => jumps.push(ms));
      const stop = clock.watch();
      c.wall += 60_000;
      vi.advanceTimersByTime(4_999);
      expect(jumps).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(jumps).toEqual([60_000]);
      stop();
    } finally {
      vi.useRealTimers();
    }
  });

});

describe('HTTP dates', () => {
  it('reads an IMF-fixdate, with white space around it', () => {
    expect(parseHttpDate('Tue, 01 Dec 2026 12:00:00 GMT')).toBe(T0);
    expect(parseHttpDate('\tTue, 01 Dec 2026 12:00:00 GMT ')).toBe(T0);
  });

  it.each([
    ['another zone', 'Tue, 01 Dec 2026 12:00:00 CET'],
    ['ISO 8601', '2026-12-01T12:00:00Z'],
    ['a one-digit day', 'Tue, 1 Dec 2026 12:00:00 GMT'],
    ['no seconds', 'Tue, 01 Dec 2026 12:00 GMT'],
    ['a two-digit year', 'Tue, 01 Dec 26 12:00:00 GMT'],
    ['no weekday', '01 Dec 2026 12:00:00 GMT'],
    ['text before it', 'x Tue, 01 Dec 2026 12:00:00 GMT'],
    ['text after it', 'Tue, 01 Dec 2026 12:00:00 GMT x'],
    ['a number', '1796126400'],
    ['a month that does not exist', 'Tue, 01 Xyz 2026 12:00:00 GMT'],
    ['a day that does not exist', 'Tue, 99 Dec 2026 12:00:00 GMT'],
  ])('refuses %s', (_what, value) => {
    expect(parseHttpDate(value)).toBeUndefined();
  });
});
