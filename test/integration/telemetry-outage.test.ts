import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DiskQueue, type QueuedMessage } from '../../agent/telemetry/disk-queue.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { objectAt, parseObject } from '../support/json.js';
import { ofType } from '../support/matchers.js';

/** Sequence numbers and message ids of the queue files on disk (what the agent produced and has not seen delivered). */
function queuedOnDisk(stateDir: string): Map<number, string> {
  const dir = path.join(stateDir, 'telemetry');
  const out = new Map<number, string>();
  for (const name of readdirSync(dir).filter((n) => n.startsWith('seg-'))) {
    for (const line of readFileSync(path.join(dir, name), 'utf8').split('\n')) {
      try {
        const { seq, mid } = JSON.parse(line) as { seq: number; mid: string };
        out.set(seq, mid);
      } catch { /* a torn line */ }
    }
  }
  return out;
}

describe('health telemetry through a hub outage and a kill -9', () => {
  let dc: DeviceCloud;

  beforeAll(async () => {
    // The 10 s floor of the interval, at the test timings' 100 ms telemetry second: a message a second.
    dc = await DeviceCloud.start({ deviceId: 'board-tel', telemetry: { intervalSeconds: 10, queueLimit: 1000 } });
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it('sends health telemetry as JSON, UTF-8, with a message id, CPU, memory, disk, uptime and connection state', async () => {
    const agent = dc.startAgent();
    await agent.waitForState('ready');
    const [message] = await dc.waitFor('a health message', () => {
      const list = dc.d2c('health');
      return list.length ? list : undefined;
    });
    expect(message!.systemProperties).toMatchObject({ ct: 'application/json', ce: 'utf-8' });
    expect(message!.systemProperties.mid).toMatch(/^[0-9a-f-]{36}$/);
    const body = parseObject(message!.body.toString('utf8'), 'a health message');
    expect(body).toMatchObject({ connection: { state: ofType(String) }, queue: { dropped: 0 }, intervalSeconds: 10 });
    expect(objectAt(body, 'cpu').loadAverage).toHaveLength(3);
    expect(objectAt(body, 'memory').totalBytes).toBeGreaterThan(0);
    expect(objectAt(body, 'disk').sizeBytes).toBeGreaterThan(0);
    expect(body.uptimeSeconds).toBeGreaterThan(0);
    expect('temperatureC' in body).toBe(true);
    await dc.stopAgents();
  }, 60_000);

  it('delivers every message produced during an outage, across a SIGKILL and restart, in order, duplicates only by message id', async () => {
    const first = dc.startAgent();
    await first.waitForState('ready');
    await dc.waitFor('telemetry flowing', () => dc.d2c('health').length > 2);
    const before = Math.max(...dc.d2c('health').map((m) => Number(m.properties['iot-agent-seq'])));
    await dc.hub.stopMqtt();
    await first.waitForState('degraded');
    await new Promise((r) => setTimeout(r, 3_500));
    first.kill();
    await new Promise((r) => first.child.once('close', r));
    const killedWith = queuedOnDisk(dc.files.stateDir);
    expect([...killedWith.keys()].filter((seq) => seq > before).length).toBeGreaterThanOrEqual(2);

    const second = dc.startAgent();
    await second.waitForLog('event=telemetry.queue_opened');
    await new Promise((r) => setTimeout(r, 2_500));
    await dc.hub.startMqtt();
    await second.waitForState('ready', 30_000);
    const produced = queuedOnDisk(dc.files.stateDir);
    const last = Math.max(...produced.keys(), ...killedWith.keys());

    const received = await dc.waitFor('every produced message received', () => {
      const health = dc.d2c('health');
      const seqs = new Set(health.map((m) => Number(m.properties['iot-agent-seq'])));
      for (let seq = before + 1; seq <= last; seq++) if (!seqs.has(seq)) return undefined;
      return health;
    }, 30_000);

    // Every message the first process had on disk when it was killed arrived, with the same id.
    const byId = new Map(received.map((m) => [m.systemProperties.mid!, Number(m.properties['iot-agent-seq'])]));
    for (const [seq, mid] of killedWith) if (seq > before) expect(byId.get(mid)).toBe(seq);
    // Duplicates (at-least-once) repeat a message id with the same sequence number; never two ids for one sequence number.
    const idsPerSeq = new Map<number, Set<string>>();
    for (const m of received) {
      const seq = Number(m.properties['iot-agent-seq']);
      idsPerSeq.set(seq, (idsPerSeq.get(seq) ?? new Set()).add(m.systemProperties.mid!));
    }
    expect([...idsPerSeq.values()].every((ids) => ids.size === 1)).toBe(true);
    // In order: first arrivals come by ascending sequence number.
    const firstArrivals: number[] = [];
    const seen = new Set<number>();
    for (const m of received) {
      const seq = Number(m.properties['iot-agent-seq']);
      if (!seen.has(seq)) { seen.add(seq); firstArrivals.push(seq); }
    }
    expect(firstArrivals).toEqual([...firstArrivals].sort((a, b) => a - b));
    await dc.stopAgents();
  }, 90_000);
});

describe('the telemetry queue bound', () => {
  let dc: DeviceCloud;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-bound', telemetry: { intervalSeconds: 3600, queueLimit: 10 } });
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it('drops the oldest beyond the bound, delivers the newest in order, and reports the drop counter in telemetry and the twin', async () => {
    // 25 messages waiting from an outage, written by the agent's own queue code while it was stopped.
    const queue = await DiskQueue.open(path.join(dc.files.stateDir, 'telemetry'), 1000, new Logger({ write: () => undefined }));
    const waiting: QueuedMessage[] = [];
    for (let i = 0; i < 25; i++) waiting.push(await queue.append('health', { i }));
    await queue.close();
    const agent = dc.startAgent();
    await agent.waitForState('ready');
    const newest = waiting.slice(-10).map((m) => m.mid);
    const arrived = await dc.waitFor('the 10 newest', () => {
      const mids = dc.d2c('health').map((m) => m.systemProperties.mid!);
      return newest.every((mid) => mids.includes(mid)) ? mids : undefined;
    });
    expect(arrived.filter((mid) => waiting.some((w) => w.mid === mid))).toEqual(newest);
    expect(agent.lines.some((l) => l.includes('event=telemetry.queue_full') && l.includes('droppedTotal=15'))).toBe(true);
    await dc.waitFor('twin telemetry.dropped', async () => ((await dc.reported()).telemetry as { dropped?: number } | undefined)?.dropped === 15);
    expect((await dc.invoke('setTelemetryInterval', { seconds: 10 })).status).toBe(200);
    const health = await dc.waitFor('a fresh health message', () => dc.d2c('health').map((m) => JSON.parse(m.body.toString('utf8')) as { queue?: { dropped: number } })
      .find((b) => b.queue !== undefined));
    expect(health.queue).toMatchObject({ dropped: 15 });
    await dc.stopAgents();
  }, 60_000);

  it('applies a new telemetry interval from the config on SIGHUP without reconnecting', async () => {
    const agent = dc.startAgent();
    await agent.waitForState('ready');
    const connects = agent.lines.filter((l) => l.includes('event=hub.connecting')).length;
    writeFileSync(dc.files.configPath, readFileSync(dc.files.configPath, 'utf8').replace('intervalSeconds: 3600', 'intervalSeconds: 20'));
    agent.child.kill('SIGHUP');
    await agent.waitForLog('event=config.reloaded');
    await dc.waitFor('twin telemetry interval 20', async () => ((await dc.reported()).telemetry as { intervalSeconds?: number }).intervalSeconds === 20);
    expect(agent.lines.filter((l) => l.includes('event=hub.connecting')).length).toBe(connects);
    await dc.stopAgents();
  }, 60_000);
});
