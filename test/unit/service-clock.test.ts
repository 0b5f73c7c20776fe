import { describe, expect, it } from 'vitest';
import { CORRECTION_THRESHOLD_MS, ServiceClock } from '../../agent/time/service-clock.js';
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
