import { getHeapStatistics } from 'node:v8';
import type { Logger } from '../log/logger.js';

export interface HeapTrimOptions {
  /** A full collection: node's `gc` (the unit's NODE_OPTIONS has --expose-gc). */
  gc: () => void;
  /** Bytes the V8 heap holds now, live and garbage. */
  used?: () => number;
  everyMs?: number;
  garbageBytes?: number;
  /** Told of each collection: the heap's bytes before and after, and how long it took. */
  onTrim?: (beforeBytes: number, afterBytes: number, ms: number) => void;
}

/**
 * Looked at every 5 s: a collection pays once 1 MiB more than after the last one is held,
 * or once a quarter of that is held and the heap has stood still since the last look (a
 * burst of work is over; V8 grew its young generation for it and gives it back only in a
 * full collection).
 */
export const HEAP_TRIM_EVERY_MS = 5_000;
export const HEAP_TRIM_GARBAGE_BYTES = 2 ** 20;
/** Less change than this between two looks counts as standing still. */
const STILL_BYTES = 64 * 2 ** 10;

/**
 * Collects the whole heap when it has grown by `garbageBytes` since the last full
 * collection, or by a quarter of that and is no longer growing. V8 collects its old
 * generation when it nears a limit sized to the load, so after a burst of commands
 * megabytes of garbage stay and so does the RSS they take (about 5 % of the daemon's after
 * 10,000 direct methods, with the heap it really holds flat). A full collection of a heap
 * this size takes about 10 ms (jitless); it runs from a timer, never inside a command.
 * Returns the function that stops it.
 */
export function trimHeap(options: HeapTrimOptions): () => void {
  const used = options.used ?? (() => getHeapStatistics().used_heap_size);
  const garbageBytes = options.garbageBytes ?? HEAP_TRIM_GARBAGE_BYTES;
  let after = used();
  let lastLook = after;
  const timer = setInterval(() => {
    const before = used();
    const grown = before - after;
    const still = Math.abs(before - lastLook) < STILL_BYTES;
    lastLook = before;
    if (grown < garbageBytes && !(still && grown >= garbageBytes / 4)) return;
    const start = performance.now();
    options.gc();
    after = used();
    lastLook = after;
    options.onTrim?.(before, after, performance.now() - start);
  }, options.everyMs ?? HEAP_TRIM_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** node's `gc` when it was started with --expose-gc, undefined otherwise. */
export function exposedGc(): (() => void) | undefined {
  const gc: unknown = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? () => void (gc as () => unknown)() : undefined;
}

/**
 * The daemon's trim, when node exposes `gc` (the unit's NODE_OPTIONS); each collection is
 * a debug line. undefined without `gc`: nothing runs.
 */
export function startHeapTrim(log: Logger, everySeconds?: number): (() => void) | undefined {
  const gc = exposedGc();
  if (!gc) return undefined;
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20 * 10) / 10;
  return trimHeap({
    gc, ...(everySeconds ? { everyMs: everySeconds * 1000 } : {}),
    onTrim: (before, after, ms) => log.debug('heap.trimmed', { heapMiB: `${mib(before)} -> ${mib(after)}`, ms: Math.round(ms) }),
  });
}
