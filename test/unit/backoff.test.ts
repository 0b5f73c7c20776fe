import { describe, expect, it } from 'vitest';
import { Backoff, MAX_RETRY_AFTER_MS, parseRetryAfter } from '../../agent/retry/backoff.js';

const policy = { initialMs: 100, maxMs: 1_000, multiplier: 2 };

describe('backoff with full jitter', () => {
  it('grows exponentially to the cap and never stops', () => {
    const top = new Backoff(policy, () => 0.999999);
    const delays = Array.from({ length: 50 }, () => top.next());
    expect(delays.slice(0, 5)).toEqual([99, 199, 399, 799, 999]);
    expect(delays.every((d) => d <= 1_000)).toBe(true);
    expect(top.attempts).toBe(50);
  });

  it('draws each delay between zero and the ceiling', () => {
    const low = new Backoff(policy, () => 0);
    expect([low.next(), low.next(), low.next()]).toEqual([0, 0, 0]);
    const half = new Backoff(policy, () => 0.5);
    expect([half.next(), half.next(), half.next()]).toEqual([50, 100, 200]);
  });

  it('waits at least what Retry-After asks, bounded by an hour', () => {
    const b = new Backoff(policy, () => 0);
    expect(b.next(3_000)).toBe(3_000);
    expect(b.next(10 * 3_600_000)).toBe(MAX_RETRY_AFTER_MS);
    expect(b.next(-5)).toBe(0);
    expect(b.next(Number.NaN)).toBe(0);
  });

  it('starts over after reset', () => {
    const b = new Backoff(policy, () => 0.999999);
    b.next(); b.next(); b.next();
    b.reset();
    expect(b.next()).toBe(99);
  });

  it('by default starts at one second and doubles up to five minutes', () => {
    const b = new Backoff(undefined, () => 0.999999);
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays).toEqual([999, 1_999, 3_999, 7_999, 15_999, 31_999, 63_999, 127_999, 255_999, 299_999]);
  });

  it('stays finite after very many attempts', () => {
    const b = new Backoff(policy, () => 0.999999);
    for (let i = 0; i < 10_000; i++) b.next();
    expect(b.next()).toBe(999);
  });
});

describe('Retry-After', () => {
  it.each([
    ['3', 3_000], [' 10 ', 10_000], ['0', 0],
    ['Thu, 26 Nov 2026 00:00:05 GMT', 5_000],
    ['Thu, 25 Nov 2026 23:00:00 GMT', 0],
  ])('reads %j', (value, ms) => {
    expect(parseRetryAfter(value, Date.parse('2026-11-26T00:00:00Z'))).toBe(ms);
  });

  it.each([undefined, '', 'soon', '-1', '1.5', '9999999999'])('ignores %j', (value) => {
    expect(parseRetryAfter(value)).toBeUndefined();
  });
});
