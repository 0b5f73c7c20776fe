import { createRequire } from 'node:module';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { useIdentityKeyHandle } from '../../agent/azure-sdk/identity-key-handle.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';
import { sessionFor, endBench, endTest } from './hub-session-bench.js';

afterEach(endTest);
afterAll(endBench);

describe('the token', () => {
  it('renews its token before the hub ends the connection at the token\'s expiry, and reports nothing lost', async () => {
    const { hub, session, lost } = await sessionFor({ tokenLifetimeSeconds: 4, tokenRenewalMarginSeconds: 2 });
    const connects = hub.counters.connects;
    await session.connect();
    await new Promise((r) => setTimeout(r, 5_000));
    expect(lost).toEqual([]);
    expect(session.connected).toBe(true);
    expect(hub.counters.connects).toBeGreaterThanOrEqual(connects + 2);
  });

  it('reports the connection lost, once, when its token cannot be renewed', async () => {
    const { hub, session, deviceId, lost, lines } = await sessionFor({ tokenLifetimeSeconds: 4, tokenRenewalMarginSeconds: 2 });
    await session.connect();
    // The SDK signs each renewal with the key it is pointed at when renewing: here an empty slot of this TPM.
    useIdentityKeyHandle(IDENTITY_KEY_SLOTS[1]);
    try {
      await expect.poll(() => lost.length, { timeout: 15_000 }).toBe(1);
    } finally {
      useIdentityKeyHandle(IDENTITY_KEY_SLOTS[0]);
    }
    expect(session.connected).toBe(false);
    expect(session.deviceClient).toBeUndefined();
    expect(lines.filter((l) => l.startsWith('level=warn event=hub.token_renewal_failed '))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith(`level=warn event=hub.disconnected hub=${hub.hostName} `))).toHaveLength(1);
    await expect.poll(() => hub.core.broker.isOnline(deviceId), { timeout: 10_000 }).toBe(false);
  });
});

describe('a connect that a newer one overtook', () => {
  it('fails on its own, leaving the newer connection up', async () => {
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => { release = resolve; });
    let handovers = 0;
    const { hub, session, deviceId, lost } = await sessionFor({ onConnected: () => (++handovers === 1 ? held : undefined) });
    const first = session.connect().catch((e: unknown) => e);
    await expect.poll(() => handovers, { timeout: 10_000 }).toBe(1);
    await session.connect();
    release();
    expect(await first).toMatchObject({ kind: 'unreachable', cause: { message: 'the session was stopped while connecting' } });
    expect(session.connected).toBe(true);
    expect(hub.core.broker.isOnline(deviceId)).toBe(true);
    expect(lost).toEqual([]);
  });
});

describe('a connection that drops before it was up', () => {
  it('fails the connect when the hub goes while the twin is on its way, and reports nothing lost', async () => {
    const { hub, session, lost } = await sessionFor();
    hub.faults.onNextTwinGet(() => void hub.stopMqtt());
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', cause: { message: 'the hub closed the connection' } });
    expect(session.connected).toBe(false);
    expect(lost).toEqual([]);
  });

  it('fails the connect when the hub goes while the twin is handed over', async () => {
    const { hub, session, deviceId, lost, lines } = await sessionFor({
      onConnected: (client) => new Promise<void>((resolve) => {
        client.once('disconnect', () => resolve());
        void hub.stopMqtt();
      }),
    });
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', cause: { message: 'the hub closed the connection' } });
    expect([session.connected, session.deviceClient]).toEqual([false, undefined]);
    expect(hub.core.broker.isOnline(deviceId)).toBe(false);
    expect(lost).toEqual([]);
    expect(lines.filter((l) => l.includes('event=hub.disconnected'))).toEqual([]);
  });
});

describe('the MQTT packets a session writes', () => {
  it('leave mqtt-packet\'s cache of 65,536 packet-id buffers unfilled', async () => {
    const { session } = await sessionFor();
    await session.connect();
    expect(Object.keys(sdkMqttPacketNumbers().cache)).toEqual([]);
  });
});

/** The number buffers of the mqtt-packet copy the device SDK writes with, found independently of the agent. */
function sdkMqttPacketNumbers(): { cache: Record<number, Buffer> } {
  let from = createRequire(import.meta.url).resolve('azure-iot-device-mqtt');
  for (const id of ['azure-iot-mqtt-base', 'mqtt', 'mqtt-packet']) from = createRequire(from).resolve(id);
  return createRequire(from)('./numbers.js') as { cache: Record<number, Buffer> };
}
