import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DiskQueue, inspectQueue, queueFacts, SEGMENT_MESSAGES } from '../../agent/telemetry/disk-queue.js';

describe('the disk-backed D2C queue', () => {
  let dir: string;
  const lines: string[] = [];
  const log = new Logger({ write: (l) => lines.push(l) });
  const opened: DiskQueue[] = [];
  /** Opens without closing the previous one: what a restart after kill -9 sees. */
  const open = async (limit: number) => {
    const queue = await DiskQueue.open(dir, limit, log);
    opened.push(queue);
    return queue;
  };
  beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-queue-')); lines.length = 0; });
  afterEach(async () => {
    for (const queue of opened.splice(0)) await queue.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps messages in order with stable ids across a reopen', async () => {
    const queue = await open(100);
    const a = await queue.append('health', { n: 1 });
    const b = await queue.append('command-result', { n: 2 }, 'op-1');
    // No close: as after kill -9.
    const again = await open(100);
    expect(again.peek(10)).toEqual([a, b]);
    expect(again.peek(10)[1]).toMatchObject({ seq: 2, kind: 'command-result', correlationId: 'op-1', body: { n: 2 } });
    expect((await again.append('health', {})).seq).toBe(3);
  });

  it('forgets delivered messages once the cursor is written, and continues the sequence', async () => {
    const queue = await open(100);
    for (let i = 0; i < 5; i++) await queue.append('health', { i });
    queue.ack(3);
    expect(queue.peek(10).map((m) => m.seq)).toEqual([4, 5]);
    await queue.close();
    const again = await open(100);
    expect(again.peek(10).map((m) => m.seq)).toEqual([4, 5]);
    expect((await again.append('health', {})).seq).toBe(6);
  });

  it('drops the oldest beyond its bound, counts them, and keeps the count across restarts', async () => {
    const queue = await open(10);
    for (let i = 0; i < 25; i++) await queue.append('health', { i });
    expect(queue.stats()).toEqual({ depth: 10, dropped: 15, oldestSeq: 16, oldestAt: queue.peek(1)[0]!.at });
    await queue.close();
    const again = await open(10);
    expect(again.stats()).toEqual({ depth: 10, dropped: 15, oldestSeq: 16, oldestAt: again.peek(1)[0]!.at });
    expect(lines.some((l) => l.includes('event=telemetry.queue_full'))).toBe(true);
  });

  it('skips a torn last line (a crash mid-write) and keeps everything before it', async () => {
    const queue = await open(100);
    await queue.append('health', { ok: 1 });
    await queue.append('health', { ok: 2 });
    const segment = readdirSync(dir).find((n) => n.startsWith('seg-'))!;
    appendFileSync(path.join(dir, segment), '{"seq":3,"mid":"x","kin');
    const again = await open(100);
    expect(again.peek(10).map((m) => m.body)).toEqual([{ ok: 1 }, { ok: 2 }]);
    expect(lines.some((l) => l.includes('event=telemetry.queue_lines_skipped') && l.includes('count=1'))).toBe(true);
    expect((await again.append('health', {})).seq).toBe(3);
  });

  it('treats a corrupt cursor as nothing delivered (at least once), and says so', async () => {
    const queue = await open(100);
    await queue.append('health', {});
    writeFileSync(path.join(dir, 'cursor.json'), 'garbage');
    const again = await open(100);
    expect(again.stats().depth).toBe(1);
    expect(lines.some((l) => l.includes('event=telemetry.cursor_invalid'))).toBe(true);
  });

  it('rolls segments and deletes the delivered ones', async () => {
    const queue = await open(100_000);
    for (let i = 0; i < SEGMENT_MESSAGES + 5; i++) await queue.append('health', { i });
    expect(readdirSync(dir).filter((n) => n.startsWith('seg-'))).toHaveLength(2);
    queue.ack(SEGMENT_MESSAGES + 2);
    await queue.close();
    expect(readdirSync(dir).filter((n) => n.startsWith('seg-'))).toEqual([`seg-${String(SEGMENT_MESSAGES + 1).padStart(12, '0')}.jsonl`]);
    expect(JSON.parse(readFileSync(path.join(dir, 'cursor.json'), 'utf8'))).toMatchObject({ ackedSeq: SEGMENT_MESSAGES + 2, dropped: 0 });
  }, 30_000);

  it('shows its counters to a reader while closed, without changing a file', async () => {
    const queue = await open(10);
    for (let i = 0; i < 12; i++) await queue.append('health', { i });
    await queue.close();
    const before = readdirSync(dir).sort().map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]);
    const stats = await inspectQueue(dir);
    expect(stats).toMatchObject({ depth: 10, dropped: 2, oldestSeq: 3 });
    expect(Date.parse(stats!.oldestAt!)).toBeLessThanOrEqual(Date.now());
    expect(readdirSync(dir).sort().map((f) => [f, readFileSync(path.join(dir, f), 'utf8')])).toEqual(before);
    expect(await inspectQueue(path.join(dir, 'never-made'))).toBeNull();
  });

  it('gives the oldest waiting message\'s age in whole seconds, and none for an empty queue', () => {
    const now = new Date('2026-11-26T12:00:00Z');
    expect(queueFacts({ depth: 3, dropped: 1, oldestSeq: 7, oldestAt: '2026-11-26T11:58:29.600Z' }, now)).toEqual({ depth: 3, dropped: 1, oldestAgeSeconds: 90 });
    expect(queueFacts({ depth: 0, dropped: 0, oldestSeq: null, oldestAt: null }, now)).toEqual({ depth: 0, dropped: 0, oldestAgeSeconds: null });
    expect(queueFacts({ depth: 1, dropped: 0, oldestSeq: 1, oldestAt: 'garbage' }, now).oldestAgeSeconds).toBeNull();
  });
});
