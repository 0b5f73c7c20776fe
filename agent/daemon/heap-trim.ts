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

/** Looked at every 10 s; a collection pays once 1 MiB more than after the last one is held. */
export const HEAP_TRIM_EVERY_MS = 10_000;
export const HEAP_TRIM_GARBAGE_BYTES = 2 ** 20;

/**
 * Collects the whole heap when it has grown by `garbageBytes` since the last full
 * collection. V8 collects its old generation when it nears a limit sized to the load, so
 * after a burst of commands megabytes of garbage stay and so does the RSS they take (about
 * 5 % of the daemon's after 10,000 direct methods, with the heap it really holds flat).
 * A full collection of a heap this size takes a few milliseconds (jitless); it runs from a
 * timer, never inside a command. Returns the function that stops it.
 */
export function trimHeap(options: HeapTrimOptions): () => void {
  const used = options.used ?? (() => getHeapStatistics().used_heap_size);
  const garbageBytes = options.garbageBytes ?? HEAP_TRIM_GARBAGE_BYTES;
  let after = used();
  const timer = setInterval(() => {
    const before = used();
    if (before - after < garbageBytes) return;
    const start = performance.now();
    options.gc();
    after = used();
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
