import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { syncDirectory, writeFileAtomic } from '../lib/atomic-file.js';

/** One queued D2C message. `mid` is its message id, stable across restarts and retries. */
export interface QueuedMessage {
  seq: number;
  mid: string;
  at: string;
  /** Application property `iot-agent-message`: health, command-result, … */
  kind: string;
  correlationId?: string;
  body: unknown;
}

export interface QueueStats {
  depth: number;
  dropped: number;
  oldestSeq: number | null;
  /** When the oldest undelivered message was produced (ISO 8601), null when none waits. */
  oldestAt: string | null;
}

/** The queue as `status` shows it: how many wait, how many were dropped, and how old the oldest is. */
export interface QueueFacts {
  depth: number;
  dropped: number;
  oldestAgeSeconds: number | null;
}

export function queueFacts(stats: QueueStats, now = new Date()): QueueFacts {
  const oldest = Date.parse(stats.oldestAt ?? '');
  return {
    depth: stats.depth,
    dropped: stats.dropped,
    oldestAgeSeconds: Number.isNaN(oldest) ? null : Math.max(0, Math.round((now.getTime() - oldest) / 1000)),
  };
}

interface Cursor {
  kind: 'iot-agent/telemetry-cursor';
  /** Every message up to this sequence number was delivered (or dropped). */
  ackedSeq: number;
  dropped: number;
}

const CURSOR = 'cursor.json';
const SEGMENT = /^seg-(\d{12})\.jsonl$/;
/** Messages per segment file; a segment is deleted once all of its messages are delivered. */
export const SEGMENT_MESSAGES = 1000;
/** How often delivery progress is written (a crash in between only causes duplicates). */
const CURSOR_FLUSH_MS = 250;

/**
 * The outbox for D2C messages, on disk so that nothing produced while offline is lost to
 * an outage, a restart or kill -9.
 *
 * Format: append-only segment files of JSON lines (`seg-<first seq>.jsonl`), plus
 * `cursor.json` (written atomically) with the last delivered sequence number and the drop
 * counter. fsync policy: every append is fdatasync'ed before `append` resolves (a message
 * the agent produced survives a crash or power cut); the cursor is flushed at most every
 * 250 ms, so a crash re-sends at most that much — at-least-once, identified by `$.mid`.
 * A torn last line (crash mid-write) is skipped at start. Bounded to `limit` messages:
 * the oldest are dropped first and counted.
 */
export class DiskQueue {
  private pending: QueuedMessage[] = [];
  private ackedSeq = 0;
  private dropped = 0;
  private nextSeq = 1;
  private segment: { handle: FileHandle; firstSeq: number; count: number } | undefined;
  /** Segment files and the last sequence number each holds. */
  private readonly segments = new Map<string, number>();
  private chain: Promise<unknown> = Promise.resolve();
  private cursorTimer: NodeJS.Timeout | undefined;
  private cursorDirty = false;
  private closed = false;

  private constructor(private readonly dir: string, private readonly limit: number, private readonly log: Logger) {}

  static async open(dir: string, limit: number, log: Logger): Promise<DiskQueue> {
    const queue = new DiskQueue(dir, limit, log);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await queue.load();
    return queue;
  }

  stats(): QueueStats {
    return statsOf(this.pending, this.dropped);
  }

  /** The oldest `count` undelivered messages, in order. */
  peek(count: number): QueuedMessage[] {
    return this.pending.slice(0, count);
  }

  /** Adds a message durably (fsync) and resolves with it. */
  append(kind: string, body: unknown, correlationId?: string): Promise<QueuedMessage> {
    return this.serial(async () => {
      if (this.closed) throw new Error('the telemetry queue is closed');
      const message: QueuedMessage = {
        seq: this.nextSeq++, mid: randomUUID(), at: new Date().toISOString(), kind, ...(correlationId ? { correlationId } : {}), body,
      };
      const segment = await this.currentSegment(message.seq);
      await segment.handle.write(`${JSON.stringify(message)}\n`);
      await segment.handle.datasync();
      segment.count++;
      this.segments.set(this.segmentName(segment.firstSeq), message.seq);
      this.pending.push(message);
      this.enforceLimit();
      return message;
    });
  }

  /** Marks everything up to `seq` as delivered. */
  ack(seq: number): void {
    if (seq <= this.ackedSeq) return;
    this.ackedSeq = seq;
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.seq <= seq) n++;
    this.pending.splice(0, n);
    this.scheduleCursor();
  }

  async close(): Promise<void> {
    await this.serial(async () => {
      this.closed = true;
      clearTimeout(this.cursorTimer);
      if (this.cursorDirty) await this.writeCursor();
      await this.segment?.handle.close();
      this.segment = undefined;
    });
  }

  private enforceLimit(): void {
    if (this.pending.length <= this.limit) return;
    const excess = this.pending.length - this.limit;
    const last = this.pending[excess - 1]!;
    this.dropped += excess;
    this.log.warn('telemetry.queue_full', { limit: this.limit, droppedNow: excess, droppedTotal: this.dropped });
    this.ack(last.seq);
  }

  private async load(): Promise<void> {
    const contents = await readQueueDir(this.dir);
    if (contents.cursorProblem !== undefined) {
      this.log.warn('telemetry.cursor_invalid', { dir: this.dir, ...(contents.cursorProblem ? { err: contents.cursorProblem } : {}), treatedAs: 'nothing delivered yet' });
    }
    this.ackedSeq = contents.ackedSeq;
    this.dropped = contents.dropped;
    this.pending = contents.pending;
    for (const { name, last } of contents.segments) {
      if (last <= this.ackedSeq) await rm(path.join(this.dir, name), { force: true });
      else this.segments.set(name, last);
    }
    this.nextSeq = contents.maxSeq + 1;
    if (contents.skipped) this.log.warn('telemetry.queue_lines_skipped', { count: contents.skipped, why: 'torn or corrupt lines (a crash mid-write)' });
    this.enforceLimit();
    this.log.info('telemetry.queue_opened', { dir: this.dir, depth: this.pending.length, dropped: this.dropped, nextSeq: this.nextSeq });
  }

  private async currentSegment(seq: number): Promise<{ handle: FileHandle; firstSeq: number; count: number }> {
    if (this.segment && this.segment.count < SEGMENT_MESSAGES) return this.segment;
    await this.segment?.handle.close();
    const name = this.segmentName(seq);
    const handle = await open(path.join(this.dir, name), 'a', 0o600);
    await syncDirectory(this.dir);
    this.segment = { handle, firstSeq: seq, count: 0 };
    return this.segment;
  }

  private segmentName(firstSeq: number): string {
    return `seg-${String(firstSeq).padStart(12, '0')}.jsonl`;
  }

  private scheduleCursor(): void {
    this.cursorDirty = true;
    if (this.cursorTimer || this.closed) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      void this.serial(() => this.writeCursor()).catch((err: unknown) => this.log.warn('telemetry.cursor_write_failed', { err }));
    }, CURSOR_FLUSH_MS);
  }

  private async writeCursor(): Promise<void> {
    this.cursorDirty = false;
    const cursor: Cursor = { kind: 'iot-agent/telemetry-cursor', ackedSeq: this.ackedSeq, dropped: this.dropped };
    await writeFileAtomic(path.join(this.dir, CURSOR), JSON.stringify(cursor), 0o600);
    // Only after the cursor is durable may delivered segments go.
    for (const [name, last] of this.segments) {
      if (last > this.ackedSeq || (this.segment && name === this.segmentName(this.segment.firstSeq))) continue;
      this.segments.delete(name);
      await rm(path.join(this.dir, name), { force: true });
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work, work);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/**
 * The queue's counters read from its directory without changing anything, for `status` and
 * support bundles while the daemon does not run. Null when there is no queue directory.
 */
export async function inspectQueue(dir: string): Promise<QueueStats | null> {
  try {
    const contents = await readQueueDir(dir);
    return statsOf(contents.pending, contents.dropped);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function statsOf(pending: QueuedMessage[], dropped: number): QueueStats {
  const oldest = pending[0];
  return { depth: pending.length, dropped, oldestSeq: oldest?.seq ?? null, oldestAt: oldest?.at ?? null };
}

interface QueueContents {
  ackedSeq: number;
  dropped: number;
  /** Set when the cursor exists but is unusable: the error, or null for a foreign document. */
  cursorProblem?: unknown;
  /** Undelivered messages in sequence order. */
  pending: QueuedMessage[];
  /** Every segment file with the last sequence number it holds. */
  segments: { name: string; last: number }[];
  skipped: number;
  maxSeq: number;
}

/** Reads the cursor and every segment; changes nothing. */
async function readQueueDir(dir: string): Promise<QueueContents> {
  const contents: QueueContents = { ackedSeq: 0, dropped: 0, pending: [], segments: [], skipped: 0, maxSeq: 0 };
  try {
    const cursor = JSON.parse(await readFile(path.join(dir, CURSOR), 'utf8')) as Partial<Cursor>;
    if (cursor.kind === 'iot-agent/telemetry-cursor' && Number.isSafeInteger(cursor.ackedSeq) && Number.isSafeInteger(cursor.dropped)) {
      contents.ackedSeq = cursor.ackedSeq!;
      contents.dropped = cursor.dropped!;
    } else contents.cursorProblem = null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') contents.cursorProblem = err;
  }
  // A segment is named after its first sequence number and holds rising ones: in name order,
  // the messages are in sequence order.
  const names = (await readdir(dir)).filter((n) => SEGMENT.test(n)).sort();
  contents.maxSeq = contents.ackedSeq;
  for (const name of names) {
    const lines = (await readFile(path.join(dir, name), 'utf8')).split('\n');
    let last = 0;
    for (const line of lines) {
      if (!line) continue;
      const message = parseLine(line);
      if (!message || message.seq <= last) { contents.skipped++; continue; }
      last = message.seq;
      if (message.seq > contents.ackedSeq) contents.pending.push(message);
    }
    contents.maxSeq = Math.max(contents.maxSeq, last);
    contents.segments.push({ name, last });
  }
  return contents;
}

function parseLine(line: string): QueuedMessage | undefined {
  let value: Partial<QueuedMessage> | null;
  try {
    value = JSON.parse(line) as Partial<QueuedMessage> | null;
  } catch {
    return undefined;
  }
  const seq = value?.seq;
  return Number.isSafeInteger(seq) && seq! >= 1 && typeof value!.mid === 'string' && typeof value!.kind === 'string' ? value as QueuedMessage : undefined;
}
