import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { exposedGc, trimHeap } from '../../agent/daemon/heap-trim.js';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** node's real `gc`, as --expose-gc gives it (made available in this worker after start). */
function realGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => gc();
}

describe('trimming the heap', () => {
  it('collects only once the heap holds the given garbage more than after the last collection', async () => {
    let used = 10;
    let collections = 0;
    const stop = trimHeap({ gc: () => { collections++; used = 10; }, used: () => used, everyMs: 5, garbageBytes: 4 });
    try {
      used = 13;
      await tick(30);
      expect(collections).toBe(0);
      used = 14;
      await tick(30);
      expect(collections).toBe(1);
      expect(used).toBe(10);
      await tick(30);
      expect(collections).toBe(1); // nothing new since
    } finally {
      stop();
    }
  });

  it('measures from what a collection left, not from where it started', async () => {
    let used = 10;
    let collections = 0;
    const stop = trimHeap({ gc: () => { collections++; used = 20; }, used: () => used, everyMs: 5, garbageBytes: 4 });
    try {
      used = 30;
      await tick(30);
      expect(collections).toBe(1);
      used = 23; // 3 above the 20 the collection left: not yet
      await tick(30);
      expect(collections).toBe(1);
      used = 24;
      await tick(30);
      expect(collections).toBe(2);
    } finally {
      stop();
    }
  });

  it('stops when asked', async () => {
    let collections = 0;
    let used = 0;
    const stop = trimHeap({ gc: () => { collections++; }, used: () => used, everyMs: 5, garbageBytes: 1 });
    stop();
    used = 100;
    await tick(30);
    expect(collections).toBe(0);
  });

  it('gives back garbage the real heap held, with the default sizes', async () => {
    const { getHeapStatistics } = await import('node:v8');
    const gc = realGc();
    gc();
    expect(Array.from({ length: 200_000 }, (_, i) => ({ i, s: `garbage ${i}` })).length).toBe(200_000);
    const held = getHeapStatistics().used_heap_size;
    const stop = trimHeap({ gc, everyMs: 5 });
    try {
      await tick(50);
      expect(held - getHeapStatistics().used_heap_size).toBeGreaterThan(4 * 2 ** 20);
    } finally {
      stop();
    }
  });

  it('finds node\'s gc only when node exposes it', () => {
    const had = (globalThis as { gc?: unknown }).gc;
    try {
      delete (globalThis as { gc?: unknown }).gc;
      expect(exposedGc()).toBeUndefined();
      let called = 0;
      (globalThis as { gc?: unknown }).gc = () => { called++; };
      exposedGc()!();
      expect(called).toBe(1);
    } finally {
      if (had === undefined) delete (globalThis as { gc?: unknown }).gc;
      else (globalThis as { gc?: unknown }).gc = had;
    }
  });
});
