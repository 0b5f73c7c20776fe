import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MQTT_PROBE_MS } from '../../agent/retry/hub-protocol.js';
import { HUB_PROTOCOL_FILE } from '../../agent/state/hub-protocol-memory.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { stringMatching } from '../support/matchers.js';

/**
 * network.hubProtocol auto on a network that drops 8883 (the local hub's 8883 takes the
 * connection and never answers, as a firewall that drops packets looks to the device).
 */
describe('network.hubProtocol auto where 8883 is blocked', () => {
  let dc: DeviceCloud;
  const memoryFile = () => path.join(dc.files.stateDir, HUB_PROTOCOL_FILE);
  const memory = () => JSON.parse(readFileSync(memoryFile(), 'utf8')) as Record<string, unknown>;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-auto' });
    await dc.hub.set8883('silent');
  }, 60_000);
  afterEach(async () => {
    await dc.stopAgents();
  });
  afterAll(async () => {
    await dc?.stop();
  });

  it('falls back to WebSockets on 443 once 8883 has not answered within the probe time, and remembers it', async () => {
    const t0 = Date.now();
    const agent = dc.startAgent();
    const status = await agent.waitForState('ready', 60_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(MQTT_PROBE_MS);
    expect(status).toMatchObject({ hubProtocol: 'mqtt-ws', proxy: null });
    expect(dc.hub.silent8883Connections).toBeGreaterThanOrEqual(1);
    expect(await agent.waitForLog('event=hub.protocol_fallback')).toContain('to=mqtt-ws');
    expect(memory()).toMatchObject({ kind: 'iot-agent/hub-protocol', version: 1, protocol: 'mqtt-ws' });
    const retryIn = Date.parse(String(memory().retryMqttAfter)) - Date.now();
    expect(retryIn).toBeGreaterThan(0.74 * 86_400_000);
    expect(retryIn).toBeLessThan(1.26 * 86_400_000);
    expect(await dc.invoke('ping')).toMatchObject({ status: 200 });
  }, 90_000);

  it('goes straight to WebSockets after a restart, without waiting for 8883', async () => {
    const silentBefore = dc.hub.silent8883Connections;
    const t0 = Date.now();
    const agent = dc.startAgent();
    const status = await agent.waitForState('ready', 30_000);
    const ms = Date.now() - t0;
    expect(status).toMatchObject({ hubProtocol: 'mqtt-ws', hubProtocolReason: stringMatching(/^8883 was unreachable .*8883 is tried again after/) });
    expect(dc.hub.silent8883Connections).toBe(silentBefore);
    expect(ms).toBeLessThan(MQTT_PROBE_MS);
    process.stderr.write(`restart to ready over WebSockets: ${ms} ms (8883 probe time ${MQTT_PROBE_MS} ms)\n`);
  }, 60_000);

  it('ignores a malformed memory file with a log line and learns again', async () => {
    writeFileSync(memoryFile(), '{"kind":"iot-agent/hub-protocol","version":1,"protocol":"carrier-pigeon"}');
    const agent = dc.startAgent('hubProbe=2');
    await agent.waitForState('ready', 45_000);
    expect(await agent.waitForLog('event=state.hub_protocol_ignored')).toContain('protocol is neither mqtt nor mqtt-ws');
    expect(memory()).toMatchObject({ protocol: 'mqtt-ws' });
  }, 60_000);

  it('tries 8883 again when the retry is due, and keeps it once it answers', async () => {
    await dc.hub.set8883('open');
    writeFileSync(memoryFile(), JSON.stringify({ kind: 'iot-agent/hub-protocol', version: 1, protocol: 'mqtt-ws',
      since: '2026-01-01T00:00:00.000Z', retryMqttAfter: new Date(Date.now() - 1000).toISOString() }));
    const overWebSockets = dc.hub.webSocketConnections;
    const agent = dc.startAgent();
    const status = await agent.waitForState('ready', 30_000);
    expect(status).toMatchObject({ hubProtocol: 'mqtt', hubProtocolReason: stringMatching(/^trying 8883 again/) });
    expect(dc.hub.webSocketConnections).toBe(overWebSockets);
    expect(memory()).toMatchObject({ protocol: 'mqtt' });
    expect(existsSync(memoryFile())).toBe(true);
  }, 60_000);
});
