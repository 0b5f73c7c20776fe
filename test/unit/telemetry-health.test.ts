import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DiskQueue } from '../../agent/telemetry/disk-queue.js';
import { Telemetry, type TelemetryOptions } from '../../agent/telemetry/telemetry.js';
import { stringMatching } from '../support/matchers.js';

const running: Telemetry[] = [];
afterEach(async () => {
  for (const telemetry of running.splice(0)) await telemetry.stop().catch(() => undefined);
});

/** Telemetry over a real disk queue in a temporary directory, with no hub attached. */
async function telemetryWith(overrides: Partial<TelemetryOptions> = {}): Promise<{ telemetry: Telemetry; queue: DiskQueue; lines: string[] }> {
  const lines: string[] = [];
  const log = new Logger({ journal: false, write: (line) => lines.push(line) });
  const queue = await DiskQueue.open(mkdtempSync(path.join(tmpdir(), 'iot-agent-telemetry-')), 100, log);
  const telemetry = new Telemetry({
    queue, log, intervalSeconds: 60, maxMessagesPerSecond: 4,
    sample: () => Promise.resolve({ cpu: { percent: 12.5 } }),
    connection: () => ({ state: 'disconnected', since: '2026-11-26T12:00:00.000Z' }),
    ...overrides,
  });
  running.push(telemetry);
  return { telemetry, queue, lines };
}

describe('health telemetry while offline', () => {
  it('queues a health message with the sample, the connection, the queue and the interval', async () => {
    const { telemetry, queue } = await telemetryWith();
    await telemetry.enqueue('command-result', { ok: true }, 'op-1');
    await telemetry.produce();
    const [result, health] = queue.peek(10);
    expect(result).toMatchObject({ kind: 'command-result', correlationId: 'op-1', body: { ok: true } });
    expect(health).toMatchObject({
      kind: 'health',
      body: {
        time: stringMatching(/^\d{4}-\d\d-\d\dT/), cpu: { percent: 12.5 }, connection: { state: 'disconnected', since: '2026-11-26T12:00:00.000Z' },
        queue: { depth: 1, dropped: 0 }, intervalSeconds: 60,
      },
    });
    expect(telemetry.stats()).toEqual({ intervalSeconds: 60, queued: 2, dropped: 0 });
    expect(telemetry.queueStats()).toMatchObject({ depth: 2, dropped: 0, oldestSeq: 1 });
  });

  it('logs a sample that fails and queues nothing for it', async () => {
    const { telemetry, queue, lines } = await telemetryWith({ sample: () => Promise.reject(new Error('df hung')) });
    await telemetry.produce();
    expect(queue.stats().depth).toBe(0);
    expect(lines.some((l) => l.includes('event=telemetry.sample_failed') && l.includes('df hung'))).toBe(true);
  });

  it('produces one message per interval once started, in seconds of the length given', async () => {
    const { telemetry, queue } = await telemetryWith({ intervalSeconds: 10, secondMs: 10 });
    telemetry.start();
    await expect.poll(() => queue.stats().depth, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    await telemetry.stop();
    const bodies = queue.peek(10).map((m) => m.body as { intervalSeconds: number });
    expect(bodies.every((b) => b.intervalSeconds === 10)).toBe(true);
  });

  it('produces nothing before the first interval has passed', async () => {
    const { telemetry, queue } = await telemetryWith({ intervalSeconds: 10, secondMs: 100 });
    telemetry.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(queue.stats().depth).toBe(0);
  });

  it('changes the interval at once, logging the change, and ignores the interval it already has', async () => {
    const { telemetry, queue, lines } = await telemetryWith({ intervalSeconds: 3_600, secondMs: 10 });
    telemetry.start();
    telemetry.setIntervalSeconds(3_600);
    expect(lines.filter((l) => l.includes('event=telemetry.interval_changed'))).toEqual([]);
    telemetry.setIntervalSeconds(10);
    expect(telemetry.intervalSeconds()).toBe(10);
    expect(lines.filter((l) => l.includes('event=telemetry.interval_changed') && l.includes('from=3600') && l.includes('to=10'))).toHaveLength(1);
    await expect.poll(() => queue.stats().depth, { timeout: 5_000 }).toBeGreaterThanOrEqual(1);
  });

  it('stops producing, and closes its queue, when stopped', async () => {
    const { telemetry, queue } = await telemetryWith({ intervalSeconds: 10, secondMs: 10 });
    telemetry.start();
    await telemetry.stop();
    telemetry.setIntervalSeconds(11);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(queue.stats().depth).toBe(0);
    await expect(queue.append('health', {})).rejects.toThrow('the telemetry queue is closed');
  });
});
