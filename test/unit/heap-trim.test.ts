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
const MiB = 2 ** 20;

/** A heap whose size the test sets, looked at every 5 ms, with the default thresholds (1 MiB; a quarter when still). */
function fakeHeap(startMiB: number, collectTo: (before: number) => number) {
  const heap = { used: startMiB * MiB, collections: 0 };
  const stop = trimHeap({ gc: () => { heap.collections++; heap.used = collectTo(heap.used); }, used: () => heap.used, everyMs: 5 });
  return { heap, stop };
}

  it('collects once the heap holds 1 MiB more than after the last collection, while it is still growing', async () => {
    // Growing by 0.1 MiB at every look (never still): the first collection comes at 1 MiB.
    const seen: number[] = [];
    let used = 10 * MiB;
    const stop = trimHeap({
      gc: () => { seen.push(used); used = 10 * MiB; }, used: () => (used += 0.1 * MiB), everyMs: 5,
    });
    try {
      await tick(100);
      expect(seen.length).toBeGreaterThan(0);
      for (const before of seen) expect(before - 10 * MiB).toBeGreaterThanOrEqual(MiB - 1);
      for (const before of seen) expect(before - 10 * MiB).toBeLessThan(1.3 * MiB);
    } finally {
      stop();
    }
  });

  it('collects a quarter of that once the heap stands still (a burst is over), and not less', async () => {
    const { heap, stop } = fakeHeap(10, () => 10 * MiB);
    try {
      heap.used = 10.2 * MiB; // still, but under a quarter MiB grown
      await tick(40);
      expect(heap.collections).toBe(0);
      heap.used = 10.25 * MiB;
      await tick(40);
      expect(heap.collections).toBe(1);
    } finally {
      stop();
    }
  });

  it('measures from what a collection left, not from where it started', async () => {
    const { heap, stop } = fakeHeap(10, () => 20 * MiB);
    try {
      heap.used = 30 * MiB;
      await tick(30);
      expect(heap.collections).toBe(1);
      heap.used = 20.2 * MiB; // 0.2 above the 20 the collection left, standing still: not yet
      await tick(30);
      expect(heap.collections).toBe(1);
      heap.used = 21 * MiB;
      await tick(30);
      expect(heap.collections).toBe(2);
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
