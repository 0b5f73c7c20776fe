import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { exposedGc, startHeapTrim, trimHeap } from '../../agent/daemon/heap-trim.js';
import { Logger } from '../../agent/log/logger.js';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const MiB = 2 ** 20;
const heapUsed = () => getHeapStatistics().used_heap_size;

/** Waits until `done` holds, for at most `ms`. */
async function until(done: () => boolean, ms = 3_000): Promise<void> {
  for (let waited = 0; waited < ms && !done(); waited += 10) await tick(10);
}

/** Some 10 MiB of objects the caller keeps: heap that grew, none of it garbage V8 could take first. */
function liveObjects(): object[] {
  return Array.from({ length: 200_000 }, (_, i) => ({ i, s: `live ${i}` }));
}

/** Runs `body` with `gc` as node's global gc (what --expose-gc adds), then puts back what was there. */
async function withGlobalGc<T>(gc: (() => void) | undefined, body: () => T | Promise<T>): Promise<T> {
  const global = globalThis as { gc?: unknown };
  const had = global.gc;
  if (gc) global.gc = gc;
  else delete global.gc;
  try {
    return await body();
  } finally {
    if (had === undefined) delete global.gc;
    else global.gc = had;
  }
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
      // Ten looks at 5 ms each take 50 ms on a quiet machine; a loaded one may need longer.
      for (let waited = 0; seen.length === 0 && waited < 2_000; waited += 20) await tick(20);
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

  it('reads the real heap by default, and collects once it holds a MiB more than when it started', async () => {
    const trims: number[] = [];
    const start = heapUsed();
    const stop = trimHeap({ gc: () => undefined, everyMs: 5, onTrim: (before) => trims.push(before) });
    try {
      await tick(30);
      expect(trims).toEqual([]);
      const kept = liveObjects();
      await until(() => trims.length > 0);
      expect(trims[0]! - start).toBeGreaterThanOrEqual(MiB);
      expect(kept).toHaveLength(200_000);
    } finally {
      stop();
    }
  });

  it('tells how long each collection took', async () => {
    let used = 0;
    const took: number[] = [];
    const started = performance.now();
    const stop = trimHeap({
      gc: () => { const end = performance.now() + 20; while (performance.now() < end) { /* a collection that takes 20 ms */ } },
      used: () => used, everyMs: 5, garbageBytes: 1, onTrim: (_before, _after, ms) => took.push(ms),
    });
    try {
      used = 1;
      await until(() => took.length > 0);
      expect(took[0]).toBeGreaterThanOrEqual(20);
      expect(took[0]).toBeLessThanOrEqual(performance.now() - started);
    } finally {
      stop();
    }
  });

  it('finds node\'s gc only when node exposes it', async () => {
    expect(await withGlobalGc(undefined, exposedGc)).toBeUndefined();
    let called = 0;
    await withGlobalGc(() => { called++; }, () => exposedGc()!());
    expect(called).toBe(1);
  });
});

describe('the daemon\'s heap trim', () => {
  it('runs nothing without node\'s gc', async () => {
    const lines: string[] = [];
    expect(await withGlobalGc(undefined, () => startHeapTrim(new Logger({ level: 'debug', write: (line) => lines.push(line) }), 1))).toBeUndefined();
  });

  it('collects with node\'s gc at the interval asked, each collection a debug line with the heap in MiB', async () => {
    const lines: string[] = [];
    const log = new Logger({ level: 'debug', write: (line) => lines.push(line) });
    let collections = 0;
    const start = heapUsed();
    await withGlobalGc(() => { collections++; }, async () => {
      const stop = startHeapTrim(log, 1)!;
      try {
        const kept = liveObjects();
        await tick(100);
        expect(collections, 'looked at every second, not sooner').toBe(0);
        await until(() => lines.length > 0);
        expect(kept).toHaveLength(200_000);
      } finally {
        stop();
      }
    });
    expect(collections).toBeGreaterThan(0);
    const [, before, after, ms] = /event=heap\.trimmed heapMiB="(\d+(?:\.\d)?) -> (\d+(?:\.\d)?)" ms=(\d+)$/.exec(lines[0]!.trim()) ?? [];
    expect(Number(before)).toBeGreaterThanOrEqual(Math.floor(start / MiB));
    expect(Number(before)).toBeLessThanOrEqual(Math.ceil(heapUsed() / MiB) + 10);
    expect(Math.abs(Number(after) - Number(before))).toBeLessThan(5);
    expect(Number(ms)).toBeLessThan(1_000);
  });

  it('waits its interval (5 s) before the first look unless told otherwise', async () => {
    let collections = 0;
    await withGlobalGc(() => { collections++; }, async () => {
      const stop = startHeapTrim(new Logger({ level: 'debug', write: () => undefined }))!;
      try {
        const kept = liveObjects();
        await tick(100);
        expect(kept).toHaveLength(200_000);
      } finally {
        stop();
      }
    });
    expect(collections).toBe(0);
  });
});
