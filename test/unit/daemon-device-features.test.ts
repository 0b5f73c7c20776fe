import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Client, Twin } from 'azure-iot-device';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { DeviceFeatures, type FeatureHooks } from '../../agent/daemon/device-features.js';
import { Logger } from '../../agent/log/logger.js';
import type { DesiredFeed } from '../../agent/twin/desired-feed.js';
import { stringContaining } from '../support/matchers.js';

const made: DeviceFeatures[] = [];
afterEach(async () => {
  for (const features of made.splice(0)) await features.stop().catch(() => undefined);
});

/** The daemon's features on a board that is not connected, with its state in a temporary directory. */
async function features(): Promise<{ features: DeviceFeatures; config: AgentConfig; lines: string[]; restarts: number[] }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-features-'));
  const config: AgentConfig = { ...structuredClone(DEFAULTS), stateDir: path.join(dir, 'state'), runtimeDir: path.join(dir, 'run') };
  const lines: string[] = [];
  const restarts: number[] = [];
  const hooks: FeatureHooks = {
    config, log: new Logger({ journal: false, level: 'debug', write: (line) => lines.push(line) }), agentVersion: '9.9.9',
    identity: () => ({ registrationId: 'r1', deviceId: 'd1', assignedHub: 'hub.example', state: 'degraded', since: '2026-11-26T12:00:00.000Z' }),
    tpmFacts: () => Promise.resolve(undefined),
    tpm: () => undefined,
    endpoints: () => [],
    reprovision: () => Promise.resolve(),
    restart: () => restarts.push(Date.now()),
    hardeningSite: { root: path.join(dir, 'root'), backend: 'auto' },
    reboot: undefined,
    supportBundle: () => Promise.reject(new Error('not in this test')),
  };
  const created = await DeviceFeatures.create(hooks);
  made.push(created);
  return { features: created, config, lines, restarts };
}

describe('the device\'s features while offline', () => {
  it('serves every command of the registry', async () => {
    const { features: f } = await features();
    expect(f.registry.names()).toEqual(expect.arrayContaining(['ping', 'setTelemetryInterval', 'reprovision', 'applyHardening', 'uploadSupportBundle']));
  });

  it('queues a C2D command\'s result as a D2C message, and not a direct method\'s quick answer', async () => {
    const { features: f } = await features();
    const viaMethod = await f.registry.execute('setTelemetryInterval', { seconds: 30 }, { via: 'method' });
    expect(viaMethod.reply).toEqual({ status: 200, payload: { intervalSeconds: 30, previous: 60 } });
    expect(f.queueFacts()).toMatchObject({ depth: 0 });
    const viaC2d = await f.registry.execute('setTelemetryInterval', { seconds: 45 }, { via: 'c2d', id: 'env-1' });
    expect(viaC2d.reply.payload).toEqual({ intervalSeconds: 45, previous: 30 });
    await expect.poll(() => f.queueFacts().depth).toBe(1);
    expect(f.executedCount()).toBe(0);
  });

  it('takes a reloaded config\'s telemetry interval at once, and says a new queue limit waits for the next start', async () => {
    const { features: f, config, lines } = await features();
    f.onConfigReloaded({ ...config, telemetry: { intervalSeconds: 120, queueLimit: 500, maxMessagesPerSecond: 2 } });
    expect((await f.registry.execute('setTelemetryInterval', { seconds: 60 }, { via: 'method' })).reply.payload).toMatchObject({ previous: 120 });
    expect(lines.filter((l) => l.includes('event=config.reload_partial') && l.includes('key=telemetry.queueLimit'))).toHaveLength(1);
    f.onConfigReloaded({ ...config, telemetry: { intervalSeconds: 120, queueLimit: 500, maxMessagesPerSecond: 2 } });
    expect(lines.filter((l) => l.includes('event=config.reload_partial'))).toHaveLength(1);
    expect((await f.registry.execute('setTelemetryInterval', { seconds: 60 }, { via: 'method' })).reply.payload).toMatchObject({ previous: 60 });
  });

  it('restarts the agent a moment after answering restartAgent', async () => {
    const { features: f, restarts } = await features();
    const { reply } = await f.registry.execute('restartAgent', {}, { via: 'method' });
    expect(reply.status).toBeLessThan(300);
    expect(restarts).toEqual([]);
    await expect.poll(() => restarts.length, { timeout: 3_000 }).toBe(1);
  });

  it('refuses a support upload while not connected, and queues that final outcome', async () => {
    const { features: f } = await features();
    const { reply, final } = await f.registry.execute('uploadSupportBundle', {}, { via: 'method' });
    expect(reply.status).toBe(202);
    expect(await final).toMatchObject({ status: 503, payload: { message: stringContaining('not connected to the hub') } });
    await expect.poll(() => f.queueFacts().depth).toBe(1);
  });

  it('names each feature whose attach failed, and attaches the others all the same', async () => {
    const { features: f, lines } = await features();
    // A connection whose client, twin and desired feed are broken: the first three features trip over them.
    await f.onConnected({} as Client, {} as Twin, {} as DesiredFeed);
    expect(lines.filter((l) => l.includes('event=features.attach_failed')).map((l) => /feature=(\w+)/.exec(l)?.[1])).toEqual(['reported', 'desired', 'commands']);
    const { final } = await f.registry.execute('uploadSupportBundle', {}, { via: 'method' });
    expect(await final).toMatchObject({ status: 500, payload: { message: stringContaining('not in this test') } });
  });
});
