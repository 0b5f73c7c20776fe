import { describe, expect, it } from 'vitest';
import { withDeadline } from '../../agent/check/deadline.js';

describe('check: deadlines', () => {
  it('gives the work its result when it finishes in time', async () => {
    expect(await withDeadline(Promise.resolve('done'), 1_000, () => 'late')).toBe('done');
  });

  it('gives the timeout result once the deadline passes, without waiting for the work', async () => {
    const t0 = performance.now();
    const never = new Promise<string>(() => undefined);
    expect(await withDeadline(never, 50, () => 'late')).toBe('late');
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it('passes a failure of the work on to the caller', async () => {
    await expect(withDeadline(Promise.reject(new Error('boom')), 1_000, () => 'late')).rejects.toThrow('boom');
  });
});

describe('check: deadlines that are not reached', () => {
  it('never runs the timeout once the work has finished', async () => {
    let late = 0;
    expect(await withDeadline(Promise.resolve('done'), 20, () => { late++; return 'late'; })).toBe('done');
    await expect(withDeadline(Promise.reject(new Error('boom')), 20, () => { late++; return 'late'; })).rejects.toThrow('boom');
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(late).toBe(0);
  });
});
