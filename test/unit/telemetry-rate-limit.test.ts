import { describe, expect, it } from 'vitest';
import { RateLimit } from '../../agent/telemetry/rate-limit.js';

/** A clock the test moves by hand; the bucket's own timers still run for real, briefly. */
function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => { now += ms; } };
}

/** Which of `takes` have resolved after the pending microtasks ran. */
async function settled(takes: Promise<void>[]): Promise<boolean[]> {
  const done = takes.map(() => false);
  takes.forEach((t, i) => void t.then(() => { done[i] = true; }));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('the D2C rate cap as a token bucket', () => {
  it('lets a second\'s worth go at once and holds the next', async () => {
    const clock = manualClock();
    const limit = new RateLimit(3, clock.now);
    const takes = [limit.take(), limit.take(), limit.take(), limit.take()];
    expect(await settled(takes)).toEqual([true, true, true, false]);
    limit.release();
  });

  it('refills at the rate as time passes, a token per 1/rate seconds', async () => {
    const clock = manualClock();
    const limit = new RateLimit(10, clock.now);
    for (let i = 0; i < 10; i++) await limit.take();
    clock.advance(250);
    const takes = [limit.take(), limit.take(), limit.take()];
    expect(await settled(takes)).toEqual([true, true, false]);
    limit.release();
  });

  it('never saves up more than a second\'s worth, however long it was idle', async () => {
    const clock = manualClock();
    const limit = new RateLimit(2, clock.now);
    clock.advance(3_600_000);
    expect(await settled([limit.take(), limit.take(), limit.take()])).toEqual([true, true, false]);
    limit.release();
  });

  it('lets a waiting send go once its token has come, and the ones behind it in order', async () => {
    const clock = manualClock();
    const limit = new RateLimit(100, clock.now);
    for (let i = 0; i < 100; i++) await limit.take();
    const order: number[] = [];
    const waiting = [0, 1, 2].map((i) => limit.take().then(() => order.push(i)));
    clock.advance(20); // two tokens
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(order).toEqual([0, 1]);
    clock.advance(10);
    await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2]);
  });

  it('serves first come first: a token that arrives goes to the waiting send, not a newcomer', async () => {
    const clock = manualClock();
    const limit = new RateLimit(1, clock.now);
    await limit.take();
    const first = limit.take();
    clock.advance(1_000);
    const newcomer = limit.take();
    expect(await settled([first, newcomer])).toEqual([false, false]);
    await first;
    expect(await settled([newcomer])).toEqual([false]);
    limit.release();
    await newcomer;
  });

  it('lowers the burst at once when the rate is lowered, and raises it only as time passes', async () => {
    const clock = manualClock();
    const limit = new RateLimit(10, clock.now);
    limit.setRate(2);
    expect(await settled([limit.take(), limit.take(), limit.take()])).toEqual([true, true, false]);
    limit.release();
    const raised = new RateLimit(1, clock.now);
    raised.setRate(5);
    expect(await settled([raised.take(), raised.take()])).toEqual([true, false]);
    raised.release();
  });

  it('lets everything waiting go when released, and can be used again after', async () => {
    const clock = manualClock();
    const limit = new RateLimit(1, clock.now);
    await limit.take();
    const waiting = [limit.take(), limit.take()];
    limit.release();
    expect(await settled(waiting)).toEqual([true, true]);
    clock.advance(1_000);
    expect(await settled([limit.take()])).toEqual([true]);
  });
});
