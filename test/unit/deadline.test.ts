import { describe, expect, it } from 'vitest';
import { retryUntilDeadline, withDeadline } from '../../agent/lib/deadline.js';

describe('a race against a deadline', () => {
  it('gives the work its result when it finishes in time', async () => {
    expect(await withDeadline(Promise.resolve('done'), 1_000, () => 'late')).toBe('done');
  });

  it('gives the timeout result once the deadline passes, without waiting for the work', async () => {
    const t0 = performance.now();
    const never = new Promise<string>(() => undefined);
    expect(await withDeadline(never, 50, () => 'late')).toBe('late');
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it('rejects with what the timeout throws, for callers that treat a deadline as a failure', async () => {
    const never = new Promise<string>(() => undefined);
    await expect(withDeadline(never, 20, () => {
      throw new Error('no connection within 0.02 s');
    })).rejects.toThrow('no connection within 0.02 s');
  });

  it('passes a failure of the work on to the caller', async () => {
    await expect(withDeadline(Promise.reject(new Error('boom')), 1_000, () => 'late')).rejects.toThrow('boom');
  });
});

describe('deadlines that are not reached', () => {
  it('never runs the timeout once the work has finished', async () => {
    let late = 0;
    expect(await withDeadline(Promise.resolve('done'), 20, () => { late++; return 'late'; })).toBe('done');
    await expect(withDeadline(Promise.reject(new Error('boom')), 20, () => { late++; return 'late'; })).rejects.toThrow('boom');
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(late).toBe(0);
  });
});

describe('a retry loop until a deadline', () => {
  /** A clock that only moves when the loop sleeps (or a try takes time). */
  function clock(start = 0) {
    let t = start;
    const slept: number[] = [];
    return { now: () => t, sleep: (ms: number) => { slept.push(ms); t += ms; return Promise.resolve(); }, advance: (ms: number) => { t += ms; }, slept };
  }

  it('tries again every interval until a try is done, and says after how many rounds', async () => {
    const c = clock();
    let tries = 0;
    const outcome = await retryUntilDeadline({ deadline: 10_000, intervalMs: 2_000, now: c.now, sleep: c.sleep }, () => {
      tries++;
      return Promise.resolve({ done: tries === 3, value: `try ${tries}` });
    });
    expect(outcome).toEqual({ done: true, value: 'try 3', rounds: 3 });
    expect(c.slept).toEqual([2_000, 2_000]);
  });

  it('gives up at the deadline with the last try\'s value, shortening the last pause to what is left', async () => {
    const c = clock();
    const left: number[] = [];
    const outcome = await retryUntilDeadline({ deadline: 5_000, intervalMs: 2_000, now: c.now, sleep: c.sleep }, (msLeft) => {
      left.push(msLeft);
      return Promise.resolve({ done: false, value: msLeft });
    });
    expect(outcome).toEqual({ done: false, value: 0, rounds: 4 });
    expect(left).toEqual([5_000, 3_000, 1_000, 0]);
    expect(c.slept).toEqual([2_000, 2_000, 1_000]);
  });

  it('tries once when the deadline has already passed', async () => {
    const c = clock(20_000);
    const outcome = await retryUntilDeadline({ deadline: 10_000, intervalMs: 1_000, now: c.now, sleep: c.sleep }, () => Promise.resolve({ done: false, value: 'late' }));
    expect(outcome).toEqual({ done: false, value: 'late', rounds: 1 });
    expect(c.slept).toEqual([]);
  });

  it('stops after a bounded number of rounds when the clock stands still', async () => {
    const outcome = await retryUntilDeadline({ deadline: 6_000, intervalMs: 3_000, now: () => 0, sleep: () => Promise.resolve() }, () => Promise.resolve({ done: false, value: null }));
    expect(outcome.rounds).toBe(4);
  });

  it('ends with the error of a try that throws', async () => {
    const c = clock();
    await expect(retryUntilDeadline({ deadline: 60_000, intervalMs: 1_000, now: c.now, sleep: c.sleep }, () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    expect(c.slept).toEqual([]);
  });
});
