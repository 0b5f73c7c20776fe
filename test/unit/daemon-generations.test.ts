import { describe, expect, it } from 'vitest';
import { Generations, Superseded } from '../../agent/daemon/generations.js';

describe('one flow at a time: generations', () => {
  it('counts generations from zero, and a check passes only for the current one', () => {
    const generations = new Generations();
    expect(generations.value).toBe(0);
    expect(generations.next()).toBe(1);
    expect(generations.value).toBe(1);
    expect(() => generations.check(1)).not.toThrow();
    expect(() => generations.check(0)).toThrow(Superseded);
    expect(() => generations.check(0)).toThrow('superseded by a newer flow');
  });

  it('sleeps the time asked in the current generation', async () => {
    const generations = new Generations();
    const t0 = performance.now();
    await generations.sleep(60, generations.value);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
  });

  it('ends the sleep of an older generation at once, with Superseded', async () => {
    const generations = new Generations();
    const t0 = performance.now();
    const sleeping = generations.sleep(60_000, generations.value);
    generations.next();
    await expect(sleeping).rejects.toBeInstanceOf(Superseded);
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it('refuses to wait for a generation that has already ended, without arming anything', async () => {
    const generations = new Generations();
    generations.next();
    let armed = false;
    await expect(generations.until(0, () => { armed = true; return () => undefined; })).rejects.toBeInstanceOf(Superseded);
    expect(armed).toBe(false);
  });

  it('resolves a wait with the value given, and cleans up once', async () => {
    const generations = new Generations();
    let disarmed = 0;
    let done: ((value: string) => void) | undefined;
    const waiting = generations.until<string>(0, (d) => { done = d; return () => { disarmed++; }; });
    done!('lost');
    done!('again');
    await expect(waiting).resolves.toBe('lost');
    expect(disarmed).toBe(1);
    generations.next(); // the finished wait no longer listens: nothing to reject
    expect(disarmed).toBe(1);
  });

  it('cleans up a wait whose done is called while it is being armed', async () => {
    const generations = new Generations();
    let disarmed = 0;
    await expect(generations.until<number>(0, (done) => { done(7); return () => { disarmed++; }; })).resolves.toBe(7);
    expect(disarmed).toBe(1);
  });

  it('cleans up a wait that a newer generation ends, and wakes every waiter of the old one', async () => {
    const generations = new Generations();
    let disarmed = 0;
    const arm = () => () => { disarmed++; };
    const first = generations.until(0, arm);
    const second = generations.until(0, arm);
    generations.next();
    await expect(first).rejects.toBeInstanceOf(Superseded);
    await expect(second).rejects.toBeInstanceOf(Superseded);
    expect(disarmed).toBe(2);
  });
});
