import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DiskQueue } from '../../agent/telemetry/disk-queue.js';
import { DeviceCloud } from '../support/device-cloud.js';

const BACKLOG = 10_000;

/** Messages waiting from an outage, written by the agent's own queue code while it was stopped. */
async function queueOnDisk(dc: DeviceCloud, count: number): Promise<Set<string>> {
  const queue = await DiskQueue.open(path.join(dc.files.stateDir, 'telemetry'), 20_000, new Logger({ write: () => undefined }));
  const mids = new Set<string>();
  for (let i = 0; i < count; i++) mids.add((await queue.append('health', { i })).mid);
  await queue.close();
  return mids;
}

/**
 * D2C against IoT Hub's throttle (traffic shaping, then 429, which closes an MQTT
 * connection) and its daily quota (connections refused): the agent adapts instead of bouncing.
 */
describe('draining a backlog into a throttled hub', () => {
  let dc: DeviceCloud;

  beforeAll(async () => {
    // A hub limit of 400 sends/s with a backlog (30) smaller than the agent's first window (50), and a device cap above the hub's.
    dc = await DeviceCloud.start({
      deviceId: 'board-drain', telemetry: { queueLimit: 20_000, maxMessagesPerSecond: 1_000 }, cloud: { hub: { perSecond: 400, backlog: 30 } },
    });
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it(`delivers a backlog of ${BACKLOG} once each, at the hub's rate, without a storm of reconnects`, async () => {
    const mids = await queueOnDisk(dc, BACKLOG);
    const agent = dc.startAgent();
    const received = new Map<string, number>();
    let since = 0;
    await dc.waitFor(`all ${BACKLOG} messages`, () => {
      // The hub keeps the last 10,000 messages: read them as they come.
      for (const m of dc.hub.d2c({ deviceId: dc.deviceId, since })) {
        since = m.sequence;
        const mid = m.systemProperties.mid!;
        if (mids.has(mid)) received.set(mid, (received.get(mid) ?? 0) + 1);
      }
      return received.size === BACKLOG;
    }, 90_000);
    const sessions = agent.lines.filter((l) => l.includes('event=hub.connecting')).length;
    expect([...received.values()].filter((n) => n > 1)).toEqual([]); // no duplicates
    expect(sessions).toBeLessThanOrEqual(2); // at most the one reconnect after the hub's 429
    expect(dc.hub.counters.d2cThrottled).toBeLessThanOrEqual(1);
    await dc.stopAgents();
  }, 120_000);
});

describe('a used-up daily quota', () => {
  let dc: DeviceCloud;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-quota', telemetry: { intervalSeconds: 10 } });
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it('backs off while the hub resets its connections, does not re-provision, and delivers what waited once the quota is back', async () => {
    const agent = dc.startAgent();
    await agent.waitForState('ready');
    const registrations = dc.cloud.dps.counters.registrations;
    dc.hub.core.d2cThrottle.resetQuota();
    dc.hub.configure({ dailyQuota: 2 }); // the health messages (one a second at the test timings) use it up
    await agent.waitForState('degraded', 15_000);
    const refusedAt = dc.hub.counters.quotaRefusals;
    await new Promise((r) => setTimeout(r, 8_000));
    const attempts = dc.hub.counters.quotaRefusals - refusedAt;
    expect(attempts).toBeGreaterThan(0);
    // Each attempt can be counted twice (the refused CONNECT, and a publish the hub refuses before it
    // closes); the test backoff grows to 2 s (5 min in production): a storm would be hundreds.
    expect(attempts).toBeLessThanOrEqual(30);
    expect(dc.cloud.dps.counters.registrations).toBe(registrations);
    const before = dc.d2c('health').length;
    dc.hub.configure({});
    await agent.waitForState('ready', 15_000);
    // The health messages produced while refused (one a second at the test timings) arrive.
    await dc.waitFor('health messages produced while refused', () => dc.d2c('health').length >= before + 8, 30_000);
  }, 90_000);
});
