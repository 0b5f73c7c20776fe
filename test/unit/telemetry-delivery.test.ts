import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import common from 'azure-iot-common';
import type deviceSdk from 'azure-iot-device';
import { afterEach, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DiskQueue } from '../../agent/telemetry/disk-queue.js';
import { Telemetry, type TelemetryOptions } from '../../agent/telemetry/telemetry.js';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { randomLoopbackAddress } from '../support/ports.js';

/**
 * Delivery of queued D2C messages through the unmodified device SDK to the local hub,
 * running in this process on a loopback address of its own (MQTT over TLS on 8883).
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function hubWithDevice(): Promise<{ hub: LocalHub; client: () => Promise<deviceSdk.Client> }> {
  const hub = await startHub({ address: randomLoopbackAddress(), stateDir: mkdtempSync(path.join(tmpdir(), 'iot-agent-telemetry-hub-')), httpsPort: 0, log: () => undefined });
  cleanups.push(() => hub.stop());
  await hub.registerDevice({ deviceId: 'board-17', registrationId: 'board-17', primaryKey: randomBytes(32) });
  return {
    hub,
    client: async () => {
      const client = await openDevice(hub, 'board-17');
      client.on('error', () => undefined);
      // As the agent's hub session does: a failed send fails, and the agent decides when to try again.
      client.setRetryPolicy(new common.NoRetry());
      cleanups.push(() => client.close());
      return client;
    },
  };
}

async function telemetryWith(overrides: Partial<TelemetryOptions> = {}): Promise<{ telemetry: Telemetry; queue: DiskQueue; lines: string[] }> {
  const lines: string[] = [];
  const log = new Logger({ journal: false, write: (line) => lines.push(line) });
  const queue = await DiskQueue.open(mkdtempSync(path.join(tmpdir(), 'iot-agent-telemetry-queue-')), 1_000, log);
  const telemetry = new Telemetry({
    queue, log, intervalSeconds: 3_600, maxMessagesPerSecond: 1_000,
    sample: () => Promise.resolve({}), connection: () => ({ state: 'connected', since: '2026-11-26T12:00:00.000Z' }),
    ...overrides,
  });
  cleanups.push(() => telemetry.stop());
  return { telemetry, queue, lines };
}

describe('D2C delivery through the hub', () => {
  it('delivers what was queued offline, oldest first, once a client is attached, and forgets it on the hub\'s acknowledgement', async () => {
    const { hub, client } = await hubWithDevice();
    const { telemetry, queue } = await telemetryWith();
    const queued = [
      await telemetry.enqueue('health', { n: 1 }),
      await telemetry.enqueue('command-result', { n: 2 }, 'env-7'),
      await telemetry.enqueue('health', { n: 3 }),
    ];
    expect(hub.d2c({ deviceId: 'board-17' })).toEqual([]);
    telemetry.attach(await client());
    await expect.poll(() => hub.d2c({ deviceId: 'board-17' }).length, { timeout: 10_000 }).toBe(3);
    const arrived = hub.d2c({ deviceId: 'board-17' });
    expect(arrived.map((m) => JSON.parse(m.body.toString()) as unknown)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(arrived[1]!.systemProperties).toMatchObject({ mid: queued[1]!.mid, cid: 'env-7', ct: 'application/json', ce: 'utf-8' });
    expect(arrived[1]!.properties).toEqual({ 'iot-agent-message': 'command-result', 'iot-agent-seq': '2', 'iot-agent-created': queued[1]!.at });
    expect(arrived[0]!.systemProperties.cid).toBeUndefined();
    await expect.poll(() => queue.stats().depth).toBe(0);
  });

  it('sends a message queued while attached at once, and none after detaching', async () => {
    const { hub, client } = await hubWithDevice();
    const { telemetry, queue } = await telemetryWith();
    telemetry.attach(await client());
    await telemetry.enqueue('health', { n: 1 });
    await expect.poll(() => hub.d2c({ deviceId: 'board-17' }).length, { timeout: 10_000 }).toBe(1);
    telemetry.detach();
    await telemetry.enqueue('health', { n: 2 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hub.d2c({ deviceId: 'board-17' })).toHaveLength(1);
    expect(queue.stats()).toMatchObject({ depth: 1, oldestSeq: 2 });
  });

  /** How long a backlog of `count` takes to reach the hub, timed from the attach of an open client. */
  async function drainMs(count: number, maxMessagesPerSecond: number, lowerTo?: number): Promise<number> {
    const { hub, client } = await hubWithDevice();
    const { telemetry } = await telemetryWith({ maxMessagesPerSecond });
    for (let i = 0; i < count; i++) await telemetry.enqueue('health', { i });
    if (lowerTo !== undefined) telemetry.setMaxMessagesPerSecond(lowerTo);
    const connected = await client();
    const t0 = Date.now();
    telemetry.attach(connected);
    await expect.poll(() => hub.d2c({ deviceId: 'board-17' }).length, { timeout: 15_000 }).toBe(count);
    return Date.now() - t0;
  }

  it('keeps to its own rate cap while draining a backlog', async () => {
    // A second's worth at once, the other four at 4 a second.
    expect(await drainMs(8, 4)).toBeGreaterThanOrEqual(900);
  });

  it('sends each message once when more arrive while a drain is under way', async () => {
    const { hub, client } = await hubWithDevice();
    const { telemetry, queue } = await telemetryWith({ maxMessagesPerSecond: 3 });
    telemetry.attach(await client());
    // Each enqueue starts a drain; at 3 a second the first is still sending when the others come.
    const sent = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => telemetry.enqueue('health', { i })));
    await expect.poll(() => queue.stats().depth, { timeout: 15_000 }).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const ids = hub.d2c({ deviceId: 'board-17' }).map((m) => m.systemProperties.mid);
    expect([...ids].sort()).toEqual(sent.map((m) => m.mid).sort());
  });

  it('keeps what the hub did not acknowledge when sends fail, halves its window and waits before trying again', async () => {
    const { hub, client } = await hubWithDevice();
    const { telemetry, queue, lines } = await telemetryWith();
    telemetry.attach(await client());
    await hub.stopMqtt();
    await telemetry.enqueue('health', { n: 1 });
    await expect.poll(() => lines.some((l) => l.includes('event=telemetry.send_failed')), { timeout: 15_000 }).toBe(true);
    const failed = lines.find((l) => l.includes('event=telemetry.send_failed'))!;
    expect(failed).toContain('delivered=0');
    expect(failed).toContain('window=25');
    expect(failed).toMatch(/retryInMs=\d+/);
    expect(queue.stats().depth).toBe(1);
    await hub.startMqtt();
    telemetry.detach();
    telemetry.attach(await client());
    await expect.poll(() => hub.d2c({ deviceId: 'board-17' }).length, { timeout: 15_000 }).toBe(1);
    await expect.poll(() => queue.stats().depth).toBe(0);
  });

  it('keeps to a rate cap lowered while it runs', async () => {
    // Two at once, the other two at 2 a second.
    expect(await drainMs(4, 1_000, 2)).toBeGreaterThanOrEqual(900);
  });

  it('sends nothing more on a connection detached while its sends waited for the rate cap, and keeps the rest', async () => {
    const { hub, client } = await hubWithDevice();
    const { telemetry, queue, lines } = await telemetryWith({ maxMessagesPerSecond: 1 });
    for (let i = 0; i < 3; i++) await telemetry.enqueue('health', { i });
    telemetry.attach(await client());
    // The first goes at once, the next waits a second for its turn.
    await expect.poll(() => hub.d2c({ deviceId: 'board-17' }).length, { timeout: 10_000 }).toBe(1);
    telemetry.detach();
    await expect.poll(() => lines.find((l) => l.includes('event=telemetry.send_failed')), { timeout: 5_000 }).toContain('the hub connection went away');
    expect(lines.find((l) => l.includes('event=telemetry.send_failed'))).toContain('delivered=1');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(hub.d2c({ deviceId: 'board-17' })).toHaveLength(1);
    expect(queue.stats()).toMatchObject({ depth: 2, oldestSeq: 2 });
  });

  it('stops sending when stopped, and closes its queue', async () => {
    const { hub, client } = await hubWithDevice();
    const { telemetry, queue } = await telemetryWith({ maxMessagesPerSecond: 1 });
    await telemetry.enqueue('health', { n: 1 });
    await telemetry.enqueue('health', { n: 2 });
    telemetry.attach(await client());
    await expect.poll(() => hub.d2c({ deviceId: 'board-17' }).length, { timeout: 10_000 }).toBe(1);
    await telemetry.stop();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(hub.d2c({ deviceId: 'board-17' })).toHaveLength(1);
    await expect(queue.append('health', {})).rejects.toThrow('the telemetry queue is closed');
  });
});

describe('the health timer', () => {
  it('produces a health message every interval once started, with the interval and the queue in it', async () => {
    const { telemetry, queue } = await telemetryWith({ intervalSeconds: 1, secondMs: 50, sample: () => Promise.resolve({ cpu: 7 }) });
    telemetry.start();
    await expect.poll(() => queue.stats().depth, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    const [first, second] = queue.peek(2);
    expect(first).toMatchObject({ kind: 'health', body: { cpu: 7, intervalSeconds: 1, queue: { depth: 0, dropped: 0 }, connection: { state: 'connected' } } });
    expect(second).toMatchObject({ body: { queue: { depth: 1 } } });
  });

  it('arms no new round after a stop, even when a sample was still being taken', async () => {
    let samples = 0;
    let finishSample: (value: Record<string, unknown>) => void = () => undefined;
    const { telemetry } = await telemetryWith({
      intervalSeconds: 1, secondMs: 20,
      sample: () => new Promise((resolve) => { samples++; finishSample = resolve; }),
    });
    telemetry.start();
    await expect.poll(() => samples, { timeout: 5_000 }).toBe(1);
    await telemetry.stop();
    finishSample({});
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(samples).toBe(1);
  });
});
