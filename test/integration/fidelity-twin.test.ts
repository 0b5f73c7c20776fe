import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../support/agent-process.js';
import { DeviceCloud } from '../support/device-cloud.js';

interface Ack { value: unknown; ac: number; av: number; ad: string }

/**
 * Hub sessions the agent opened (its own reconnects). The hub counts more MQTT connections:
 * the SDK reconnects once right after connecting, to use the TPM provider's first renewed token.
 */
const sessions = (agent: AgentProcess) => agent.lines.filter((l) => l.includes('event=hub.connecting')).length;

/**
 * The twin against a hub that throttles twin requests with 429, sends desired updates only
 * to subscribed devices, and keeps a writable property's acknowledgement as reported.
 */
describe('the twin against IoT Hub\'s behaviour', () => {
  let dc: DeviceCloud;
  let agent: AgentProcess;

  const setDesired = async (desired: Record<string, unknown>): Promise<number> => {
    const { responseBody } = await dc.service.registry.updateTwin(dc.deviceId, { properties: { desired } }, '*');
    return (responseBody as unknown as { properties: { desired: { $version: number } } }).properties.desired.$version;
  };
  const ackOf = (key: string, version: number) => dc.waitFor(`ack of ${key} at version ${version}`, async () => {
    const ack = (await dc.reported())[key] as Ack | undefined;
    return ack && typeof ack === 'object' && ack.av >= version ? ack : undefined;
  });

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-twin-fidelity' });
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it('subscribes to desired updates before it fetches the twin: an update made right after the GET is applied without a reconnect', async () => {
    let version = 0;
    // A fresh device: no session, so no subscription the hub kept from before. The change is
    // made the moment the hub has answered the GET, before the device can send anything else.
    dc.hub.faults.onNextTwinGet(() => {
      void dc.hub.core.updateTwin(dc.deviceId, { properties: { desired: { telemetryIntervalSeconds: 45 } } }, undefined)
        .then((twin) => { version = (twin as { properties: { desired: { $version: number } } }).properties.desired.$version; });
    });
    agent = dc.startAgent();
    await agent.waitForState('ready');
    await dc.waitFor('the update was made', () => version > 0);
    expect(await ackOf('telemetryIntervalSeconds', version)).toMatchObject({ value: 45, ac: 200 });
    expect(sessions(agent)).toBe(1);
  });

  it('reports a writable property it has no desired value for as its acknowledgement with ac 203 and av 0', async () => {
    expect((await dc.reported()).logLevel).toEqual({ value: 'debug', ac: 203, av: 0, ad: 'no desired value: the device\'s own value is in force' });
  });

  it('keeps logLevel reported as its acknowledgement after a reconnect, never as a plain string', async () => {
    const version = await setDesired({ logLevel: 'info' });
    expect(await ackOf('logLevel', version)).toEqual({ value: 'info', ac: 200, av: version, ad: 'applied' });
    const connects = dc.hub.counters.connects;
    await dc.hub.stopMqtt();
    await agent.waitForState('degraded');
    await dc.hub.startMqtt();
    await agent.waitForState('ready', 30_000);
    await dc.waitFor('reconnected', () => dc.hub.counters.connects > connects);
    await new Promise((r) => setTimeout(r, 1_500)); // the static report after a connect
    expect((await dc.reported()).logLevel).toEqual({ value: 'info', ac: 200, av: version, ad: 'applied' });
  }, 60_000);

  it('converges its reported state on its own after three 429s, with no further change and no reconnect', async () => {
    const connects = dc.hub.counters.connects;
    const throttled = dc.hub.counters.twinThrottled;
    dc.hub.faults.throttleTwin('patch', 3);
    expect((await dc.invoke('setTelemetryInterval', { seconds: 77 })).status).toBe(200);
    await dc.waitFor('reported interval 77', async () => ((await dc.reported()).telemetry as { intervalSeconds: number }).intervalSeconds === 77, 30_000);
    expect(dc.hub.counters.twinThrottled - throttled).toBe(3);
    expect(dc.hub.counters.connects).toBe(connects);
  }, 60_000);

  it('fetches the twin again when its GET is throttled, without reconnecting for it', async () => {
    await dc.stopAgents();
    dc.hub.faults.throttleTwin('get', 2);
    agent = dc.startAgent();
    await agent.waitForState('ready');
    expect(sessions(agent)).toBe(1);
    expect(agent.lines.filter((l) => l.includes('event=hub.twin_get_failed'))).toHaveLength(2);
  }, 60_000);

  it('never sends a reported patch the hub refuses for its limits', () => {
    expect(dc.hub.counters.reportedRefused).toBe(0);
  });
});
