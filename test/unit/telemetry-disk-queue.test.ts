import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DiskQueue, inspectQueue, queueFacts, SEGMENT_MESSAGES } from '../../agent/telemetry/disk-queue.js';
import { ofType, stringMatching } from '../support/matchers.js';

describe('the disk-backed D2C queue', () => {
  let dir: string;
  let log: Logger;
  const lines: string[] = [];
  const opened: DiskQueue[] = [];
  /** Opens without closing the previous one: what a restart after kill -9 sees. */
  const open = async (limit: number) => {
    const queue = await DiskQueue.open(dir, limit, log);
    opened.push(queue);
    return queue;
  };
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-queue-'));
    lines.length = 0;
    log = new Logger({ write: (l) => lines.push(l) });
  });
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
    expect(lines.find((l) => l.includes('event=telemetry.cursor_invalid'))).toMatch(/ err=.*JSON/);
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

describe('the disk-backed D2C queue: files and damage', () => {
  let dir: string;
  let lines: string[];
  const opened: DiskQueue[] = [];
  const open = async (limit = 100, at = dir) => {
    const queue = await DiskQueue.open(at, limit, new Logger({ journal: false, write: (l) => lines.push(l) }));
    opened.push(queue);
    return queue;
  };
  const segments = () => readdirSync(dir).filter((n) => n.startsWith('seg-')).sort();
  beforeEach(() => {
    dir = path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-queue-files-')), 'telemetry');
    lines = [];
  });
  afterEach(async () => {
    for (const queue of opened.splice(0)) await queue.close().catch(() => undefined);
  });

  it('keeps its files owner-only, in segments named after their first sequence number', async () => {
    const queue = await open();
    const message = await queue.append('health', { n: 1 });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(segments()).toEqual(['seg-000000000001.jsonl']);
    expect(statSync(path.join(dir, 'seg-000000000001.jsonl')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(dir, 'seg-000000000001.jsonl'), 'utf8')).toBe(`${JSON.stringify(message)}\n`);
    expect(message).toEqual({ seq: 1, mid: stringMatching(/^[0-9a-f-]{36}$/), at: ofType(String), kind: 'health', body: { n: 1 } });
    queue.ack(1);
    await queue.close();
    expect(statSync(path.join(dir, 'cursor.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path.join(dir, 'cursor.json'), 'utf8'))).toEqual({ kind: 'iot-agent/telemetry-cursor', ackedSeq: 1, dropped: 0 });
  });

  it('writes delivery progress a moment after an ack, without a close', async () => {
    const queue = await open();
    await queue.append('health', {});
    queue.ack(1);
    queue.ack(1);
    expect(existsSync(path.join(dir, 'cursor.json'))).toBe(false);
    await expect.poll(() => existsSync(path.join(dir, 'cursor.json')), { timeout: 5_000 }).toBe(true);
    expect(JSON.parse(readFileSync(path.join(dir, 'cursor.json'), 'utf8'))).toMatchObject({ ackedSeq: 1 });
  });

  it('ignores an ack for what was already delivered', async () => {
    const queue = await open();
    for (let i = 0; i < 3; i++) await queue.append('health', { i });
    queue.ack(2);
    queue.ack(1);
    expect(queue.peek(10).map((m) => m.seq)).toEqual([3]);
    expect(queue.stats()).toMatchObject({ depth: 1, oldestSeq: 3 });
    // Nor does the late ack move the recorded progress back: nothing delivered comes again.
    await queue.close();
    expect((await open()).peek(10).map((m) => m.seq)).toEqual([3]);
  });

  it('hands out the oldest waiting messages, as many as asked', async () => {
    const queue = await open();
    for (let i = 0; i < 3; i++) await queue.append('health', { i });
    expect(queue.peek(2).map((m) => m.body)).toEqual([{ i: 0 }, { i: 1 }]);
    expect(queue.peek(0)).toEqual([]);
  });

  it('writes no delivery progress when nothing was delivered, and none after it is closed', async () => {
    const queue = await open();
    await queue.append('health', {});
    await queue.close();
    expect(existsSync(path.join(dir, 'cursor.json'))).toBe(false);
    // A delivery that ends after the close (the daemon stopping) is not written behind its back.
    queue.ack(1);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(existsSync(path.join(dir, 'cursor.json'))).toBe(false);
    expect((await open()).peek(10).map((m) => m.seq)).toEqual([1]);
  });

  it('says so when delivery progress cannot be written, and keeps taking messages', async () => {
    const queue = await open();
    await queue.append('health', {});
    // A directory where the cursor's file goes: the atomic rename fails.
    mkdirSync(path.join(dir, 'cursor.json', 'in-the-way'), { recursive: true });
    queue.ack(1);
    await expect.poll(() => lines.find((l) => l.includes('event=telemetry.cursor_write_failed')), { timeout: 5_000 }).toMatch(/ err=/);
    expect((await queue.append('health', {})).seq).toBe(2);
  });

  it('deletes a segment once its last message is delivered, and not before', async () => {
    const queue = await open(100_000);
    for (let i = 0; i < SEGMENT_MESSAGES + 1; i++) await queue.append('health', { i });
    const [first, second] = segments();
    queue.ack(SEGMENT_MESSAGES - 1);
    await expect.poll(() => existsSync(path.join(dir, 'cursor.json')), { timeout: 5_000 }).toBe(true);
    expect(segments()).toEqual([first, second]);
    const reopened = await open(100_000);
    expect(reopened.peek(1)[0]).toMatchObject({ seq: SEGMENT_MESSAGES, body: { i: SEGMENT_MESSAGES - 1 } });
    await reopened.close();
    queue.ack(SEGMENT_MESSAGES);
    await queue.close();
    expect(segments()).toEqual([second]);
  }, 30_000);

  it('keeps exactly its limit, and drops nothing at the limit', async () => {
    const queue = await open(3);
    for (let i = 0; i < 3; i++) await queue.append('health', { i });
    expect(queue.stats()).toMatchObject({ depth: 3, dropped: 0 });
    expect(lines.some((l) => l.includes('event=telemetry.queue_full'))).toBe(false);
    await queue.append('health', { i: 3 });
    expect(queue.stats()).toMatchObject({ depth: 3, dropped: 1, oldestSeq: 2 });
    expect(lines.some((l) => l.includes('event=telemetry.queue_full') && l.includes('limit=3') && l.includes('droppedNow=1') && l.includes('droppedTotal=1'))).toBe(true);
  });

  it('drops what is over a lowered limit when it opens', async () => {
    const queue = await open(10);
    for (let i = 0; i < 5; i++) await queue.append('health', { i });
    await queue.close();
    const again = await open(2);
    expect(again.stats()).toMatchObject({ depth: 2, dropped: 3, oldestSeq: 4 });
  });

  it('skips lines that are not its messages, or out of order, and says how many', async () => {
    mkdirSync(dir, { recursive: true });
    const line = (seq: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ seq, mid: `m${String(seq)}`, at: '2026-11-26T12:00:00.000Z', kind: 'health', body: {}, ...extra });
    writeFileSync(path.join(dir, 'seg-000000000001.jsonl'), [
      line(0), line(1), line(-1), line(1.5), line('2'), line(2, { mid: 7 }), line(2, { kind: null }), line(2), line(2), line(3), '', line(4), 'not json', 'null',
    ].join('\n'));
    const queue = await open();
    expect(queue.peek(10)).toEqual([1, 2, 3, 4].map((seq) => JSON.parse(line(seq)) as unknown));
    expect(lines.some((l) => l.includes('event=telemetry.queue_lines_skipped') && l.includes('count=9') && l.includes('why="torn or corrupt lines (a crash mid-write)"'))).toBe(true);
    expect((await queue.append('health', {})).seq).toBe(5);
  });

  it('ignores files that are not segments', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'seg-1.jsonl'), '{"seq":1,"mid":"a","at":"x","kind":"health","body":{}}\n');
    writeFileSync(path.join(dir, 'seg-000000000001.jsonl.tmp'), '{"seq":1,"mid":"a","at":"x","kind":"health","body":{}}\n');
    writeFileSync(path.join(dir, 'old-seg-000000000001.jsonl'), '{"seq":1,"mid":"a","at":"x","kind":"health","body":{}}\n');
    const queue = await open();
    expect(queue.stats().depth).toBe(0);
  });

  it('treats a cursor of another kind as nothing delivered, and says so without an error', async () => {
    const queue = await open();
    await queue.append('health', {});
    await queue.close();
    for (const cursor of [{ kind: 'other', ackedSeq: 1, dropped: 0 }, { kind: 'iot-agent/telemetry-cursor', ackedSeq: 1.5, dropped: 0 }, { kind: 'iot-agent/telemetry-cursor', ackedSeq: 1, dropped: 'x' }]) {
      writeFileSync(path.join(dir, 'cursor.json'), JSON.stringify(cursor));
      lines.length = 0;
      const again = await open();
      expect(again.stats().depth, JSON.stringify(cursor)).toBe(1);
      const warned = lines.find((l) => l.includes('event=telemetry.cursor_invalid'));
      expect(warned).toContain('treatedAs="nothing delivered yet"');
      expect(warned).not.toContain(' err=');
      await again.close();
    }
  });

  it('says nothing about a cursor that is not there yet, nor about lines when none was skipped', async () => {
    await (await open()).append('health', {});
    await open();
    expect(lines.some((l) => l.includes('event=telemetry.cursor_invalid'))).toBe(false);
    expect(lines.some((l) => l.includes('event=telemetry.queue_lines_skipped'))).toBe(false);
    expect(lines.some((l) => l.includes('event=telemetry.queue_opened') && l.includes('depth=0') && l.includes('nextSeq=1'))).toBe(true);
  });

  it('deletes fully delivered segments when it opens, and continues after the last delivered message', async () => {
    const queue = await open();
    for (let i = 0; i < 3; i++) await queue.append('health', { i });
    queue.ack(3);
    await queue.close();
    expect(segments()).toEqual(['seg-000000000001.jsonl']);
    const again = await open();
    expect(segments()).toEqual([]);
    expect((await again.append('health', {})).seq).toBe(4);
  });

  it('shows a reader the counters, and passes on a failure other than a missing directory', async () => {
    const queue = await open();
    await queue.append('health', {});
    await queue.close();
    expect(await inspectQueue(dir)).toMatchObject({ depth: 1, dropped: 0, oldestSeq: 1 });
    const file = path.join(dir, 'cursor.json');
    writeFileSync(file, '');
    await expect(inspectQueue(file)).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it('refuses to take messages once closed', async () => {
    const queue = await open();
    await queue.close();
    await expect(queue.append('health', {})).rejects.toThrow('the telemetry queue is closed');
  });
});
