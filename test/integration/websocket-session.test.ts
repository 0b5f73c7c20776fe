import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../support/agent-process.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { ofType } from '../support/matchers.js';

/**
 * The daemon's hub session over MQTT over WebSockets on 443 (network.hubProtocol: mqtt-ws),
 * with 8883 closed: token renewal, C2D, the twin and telemetry, as over 8883 (the same
 * behaviours over 8883: daemon.test.ts, commands-lifecycle, twin-desired, telemetry-outage).
 */
describe('the hub session over WebSockets on 443', () => {
  let dc: DeviceCloud;
  let agent: AgentProcess;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-wss', network: '  hubProtocol: mqtt-ws', telemetry: { intervalSeconds: 10 } });
    await dc.hub.set8883('closed');
    agent = dc.startAgent('tokenLifetime=4,renewalMargin=2');
    expect(await agent.waitForState('ready', 45_000)).toMatchObject({ hubProtocol: 'mqtt-ws', hubProtocolReason: 'network.hubProtocol is mqtt-ws' });
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it('stays ready through token renewals, each a new CONNECT over WebSockets', async () => {
    const connects = dc.hub.counters.connects;
    const overWebSockets = dc.hub.webSocketConnections;
    await new Promise((r) => setTimeout(r, 7_000));
    expect(dc.hub.counters.connects).toBeGreaterThanOrEqual(connects + 2);
    expect(dc.hub.webSocketConnections).toBeGreaterThanOrEqual(overWebSockets + 2);
    expect((await agent.statusObject()).state).toBe('ready');
  }, 30_000);

  it('runs a C2D command envelope and answers a direct method', async () => {
    await dc.sendC2d({ command: 'ping', id: 'wss-c2d-1', args: {} }, 'wss-c2d-1');
    const result = await dc.waitFor('the C2D result', () => dc.results('wss-c2d-1').find((r) => r.phase === 'done' || r.status === 200));
    expect(result).toMatchObject({ command: 'ping', status: 200 });
    // A token lives 4 s here, so the SDK reconnects every 2 s: a method whose request meets a
    // closing connection times out, as it would on IoT Hub during a renewal, and is asked again.
    let answer: unknown;
    for (let attempt = 1; answer === undefined; attempt++) {
      answer = await dc.invoke('ping', undefined, 5).catch((err: unknown) => {
        if (attempt === 3 || !(err instanceof Error) || err.name !== 'GatewayTimeoutError') throw err;
        return undefined;
      });
    }
    expect(answer).toMatchObject({ status: 200 });
  }, 30_000);

  it('takes a desired property and acknowledges it in the reported twin', async () => {
    const { responseBody } = await dc.service.registry.updateTwin(dc.deviceId, { properties: { desired: { telemetryIntervalSeconds: 60 } } }, '*');
    const version = (responseBody as unknown as { properties: { desired: { $version: number } } }).properties.desired.$version;
    const ack = await dc.waitFor('the acknowledgement', async () => {
      const reported = (await dc.reported()).telemetryIntervalSeconds as { av: number; ac: number; value: number } | undefined;
      return reported && reported.av >= version ? reported : undefined;
    });
    expect(ack).toMatchObject({ value: 60, ac: 200, av: version });
  }, 30_000);

  it('sends health telemetry', async () => {
    const [message] = await dc.waitFor('a health message', () => {
      const list = dc.d2c('health');
      return list.length ? list : undefined;
    });
    expect(JSON.parse(message!.body.toString('utf8'))).toMatchObject({ connection: { state: ofType(String) } });
  }, 30_000);
});
