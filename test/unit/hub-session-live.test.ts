import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLOSE_LIMIT_MS, HubConnectError, HubSession } from '../../agent/hub/session.js';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { ProxyError, ProxyTunnel } from '../../agent/network/proxy-agent.js';
import { startHub } from '../cloud/hub/hub.js';
import { FreezableProxy } from '../support/freezable-proxy.js';
import { freePort, randomLoopbackAddress } from '../support/ports.js';
import { keepAliveSeenByHub } from '../support/hub-broker.js';
import { bench, sessionFor, endBench, endTest } from './hub-session-bench.js';
import { capturingLogger } from './command-context.js';
import { connectProxy } from './loopback-proxy.js';

afterEach(endTest);
afterAll(endBench);

describe('a session before its first connect', () => {
  it('is not connected, has no client, and would go over MQTT on 8883', async () => {
    const { session } = await sessionFor();
    expect([session.connected, session.deviceClient, session.protocol]).toEqual([false, undefined, 'mqtt']);
  });
});

describe('a connect to a hub that lets the device in', () => {
  it('asks for the keep-alive it was given, and a minute without one', async () => {
    const { hub, session, deviceId } = await sessionFor({ keepAliveSeconds: 7 });
    await session.connect();
    expect(keepAliveSeenByHub(hub, deviceId)).toBe(10_501);
    const other = await sessionFor({ keepAliveSeconds: undefined });
    await other.session.connect();
    expect(keepAliveSeenByHub(hub, other.deviceId)).toBe(90_001);
  });

  it('connects once, hands the client, the twin and the desired feed over before resolving, and counts as connected', async () => {
    const handed: unknown[] = [];
    const { hub, session, deviceId, lines } = await sessionFor({
      onConnected: (client, twin, desired) => { handed.push(client, twin, desired); },
    });
    await hub.core.updateTwin(deviceId, { properties: { desired: { telemetryInterval: 42 } } }, undefined);
    const connects = hub.counters.connects;
    await session.connect();
    expect(session.connected).toBe(true);
    expect(session.protocol).toBe('mqtt');
    expect(session.deviceClient).toBe(handed[0]);
    expect((handed[1] as { properties: { desired: Record<string, unknown> } }).properties.desired.telemetryInterval).toBe(42);
    expect(hub.core.broker.isOnline(deviceId)).toBe(true);
    expect(lines).toContain(`level=info event=hub.connecting hub=${hub.hostName} deviceId=${deviceId} protocol=mqtt`);
    await new Promise((r) => setTimeout(r, 300));
    expect(hub.counters.connects).toBe(connects + 1);
  });
});

describe('a connect that fails', () => {
  it('reports a device the hub does not know as refused, with the hub\'s own refusal as the cause, and leaves nothing connected', async () => {
    const { hub, session, deviceId, lost } = await sessionFor({}, false);
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubConnectError);
    expect(err).toMatchObject({ kind: 'refused', hub: hub.hostName, protocol: 'mqtt', message: `the hub ${hub.hostName} refused the device` });
    expect(String((err as Error).cause)).toMatch(/Connection refused: Not authorized/);
    expect(session.connected).toBe(false);
    expect(session.deviceClient).toBeUndefined();
    expect(hub.core.broker.isOnline(deviceId)).toBe(false);
    expect(lost).toEqual([]);
  });

  it('signs its token against the corrected clock: two hours behind, the hub finds it expired', async () => {
    const { session, hub, deviceId } = await sessionFor({ clockCorrectionMs: () => -2 * 3_600_000 });
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'refused' });
    expect(hub.core.broker.isOnline(deviceId)).toBe(false);
    const { hubLines } = await bench();
    expect(hubLines).toContain(`refused ${deviceId}: token expired`);
  });

  it('reports a hub whose 8883 refuses the connection as unreachable over MQTT', async () => {
    const { hub, session, lost } = await sessionFor();
    await hub.set8883('closed');
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubConnectError);
    expect(err).toMatchObject({ kind: 'unreachable', message: `the hub ${hub.hostName} could not be reached over MQTT on 8883` });
    expect(session.connected).toBe(false);
    expect(lost).toEqual([]);
  });

  it('gives up on a hub that takes the connection and never answers once the route\'s time is up', async () => {
    const { hub, session } = await sessionFor();
    await hub.set8883('silent');
    const began = Date.now();
    const err = await session.connect({ protocol: 'mqtt', timeoutMs: 400 }).catch((e: unknown) => e);
    expect(Date.now() - began).toBeLessThan(5_000);
    expect(err).toMatchObject({ kind: 'unreachable', cause: { message: 'no connection over MQTT on 8883 within 0.4 s' } });
    expect(session.connected).toBe(false);
    expect(session.deviceClient).toBeUndefined();
  });
});

describe('a connection that was up', () => {
  it('reports its loss once, logs it, and forgets the client', async () => {
    const { hub, session, lost, lines } = await sessionFor();
    await session.connect();
    await hub.stopMqtt();
    await expect.poll(() => lost.length, { timeout: 10_000 }).toBe(1);
    expect(lost[0]?.message).toBe('the hub closed the connection');
    expect(session.connected).toBe(false);
    expect(session.deviceClient).toBeUndefined();
    expect(lines.filter((l) => l.startsWith(`level=warn event=hub.disconnected hub=${hub.hostName} `))).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(lost).toHaveLength(1);
  });

  it('reports nothing lost when it is stopped, and the hub sees the device leave', async () => {
    const { hub, session, deviceId, lost } = await sessionFor();
    await session.connect();
    await session.stop();
    expect(session.connected).toBe(false);
    expect(session.deviceClient).toBeUndefined();
    await expect.poll(() => hub.core.broker.isOnline(deviceId)).toBe(false);
    await hub.stopMqtt();
    await new Promise((r) => setTimeout(r, 200));
    expect(lost).toEqual([]);
  });

  it('stops within its close limit on a link gone silent, though mqtt.js waits for acks that never come', async () => {
    const { tpm, key } = await bench();
    // A hub of its own behind a relay on its 8883 that can go silent, as a dead NAT mapping does.
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-session-silent-'));
    const address = randomLoopbackAddress();
    const hub = await startHub({ address, stateDir: dir, httpsPort: 0, mqttPort: await freePort(address), log: () => undefined });
    const relay = await FreezableProxy.start({ host: address, port: 8883 }, { host: address, port: hub.mqttPort });
    try {
      await hub.registerDevice({ deviceId: 'board-silent', registrationId: 'board-silent', primaryKey: key });
      const { log, lines } = capturingLogger('debug');
      const session = new HubSession({ tpm, target: { assignedHub: address, deviceId: 'board-silent', registrationId: 'board-silent', identityKeyHandle: 0x81000100 },
        ca: hub.ca, log, keepAliveSeconds: 5 });
      await session.connect();
      relay.freezeOpenConnections();
      const began = Date.now();
      await session.stop();
      const took = Date.now() - began;
      expect(took).toBeGreaterThanOrEqual(CLOSE_LIMIT_MS - 50);
      expect(took).toBeLessThan(CLOSE_LIMIT_MS + 1_500);
      expect(lines).toContain(`level=debug event=hub.close_abandoned hub=${address} waitedMs=${CLOSE_LIMIT_MS}`);
      expect(session.connected).toBe(false);
    } finally {
      await relay.stop();
      await hub.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops the previous client on a new connect: its end is no loss', async () => {
    const { hub, session, deviceId, lost } = await sessionFor();
    await session.connect();
    const first = session.deviceClient;
    await session.connect();
    expect(session.deviceClient).not.toBe(first);
    expect(session.connected).toBe(true);
    expect(hub.core.broker.isOnline(deviceId)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(lost).toEqual([]);
  });

  it('feeds desired patches that arrive after the connect to whoever started the feed', async () => {
    const patches: Record<string, unknown>[] = [];
    const { hub, session, deviceId } = await sessionFor({
      onConnected: (_client, twin, desired) => desired.start(twin.properties.desired, { full: () => undefined, patch: (p) => patches.push(p) }),
    });
    await session.connect();
    await hub.core.updateTwin(deviceId, { properties: { desired: { telemetryInterval: 7 } } }, undefined);
    await expect.poll(() => patches.at(-1)?.telemetryInterval).toBe(7);
  });
});

describe('stopping while a connect is under way', () => {
  it('fails the connect when the session is stopped while the hub does not answer yet', async () => {
    const { session, hub } = await sessionFor();
    await hub.set8883('silent');
    const connecting = session.connect().catch((e: unknown) => e);
    await expect.poll(() => hub.silent8883Connections).toBeGreaterThan(0);
    await session.stop();
    expect(await connecting).toMatchObject({ kind: 'unreachable', cause: { message: 'the session was stopped while connecting' } });
    expect(session.connected).toBe(false);
  });

  it('fails the connect when the session is stopped while the twin is on its way', async () => {
    const handed: unknown[] = [];
    const { session, hub } = await sessionFor({ onConnected: (client) => { handed.push(client); } });
    hub.faults.onNextTwinGet(() => void session.stop());
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', cause: { message: 'the session was stopped while connecting' } });
    expect(handed).toEqual([]);
    expect(session.connected).toBe(false);
  });

  it('fails the connect when the session is stopped by the time the twin is handed over', async () => {
    const { session, hub, deviceId } = await sessionFor({ onConnected: () => session.stop() });
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', cause: { message: 'the session was stopped while connecting' } });
    expect(session.connected).toBe(false);
    await expect.poll(() => hub.core.broker.isOnline(deviceId)).toBe(false);
  });
});

describe('the twin GET after connecting', () => {
  it('is tried again on the same connection while the hub throttles it, up to five times', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.01);
    const { hub, session, lines } = await sessionFor();
    hub.faults.throttleTwin('get', 4);
    const connects = hub.counters.connects;
    await session.connect();
    expect(session.connected).toBe(true);
    expect(hub.counters.connects).toBe(connects + 1);
    expect(lines.filter((l) => l.startsWith('level=warn event=hub.twin_get_failed')).map((l) => /attempt=(\d+) retryInMs=(\d+)/.exec(l)?.slice(1)))
      .toEqual([['1', '10'], ['2', '20'], ['3', '40'], ['4', '80']]);
  });

  it('gives the connect up when the fifth GET is throttled too', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.01);
    const { hub, session, deviceId } = await sessionFor();
    hub.faults.throttleTwin('get', 5);
    const throttled = hub.counters.twinThrottled;
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', cause: { message: 'ThrottlingException: too many twin requests; back off and retry' } });
    expect(hub.counters.twinThrottled).toBe(throttled + 5);
    expect(session.connected).toBe(false);
    await expect.poll(() => hub.core.broker.isOnline(deviceId)).toBe(false);
  });

  it('is not tried again once the session was stopped', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { hub, session } = await sessionFor();
    hub.faults.throttleTwin('get', 1);
    const { twinGets, twinThrottled } = hub.counters;
    const connecting = session.connect().catch((e: unknown) => e);
    await expect.poll(() => hub.counters.twinThrottled).toBe(twinThrottled + 1);
    await session.stop();
    expect(await connecting).toMatchObject({ kind: 'unreachable' });
    await new Promise((r) => setTimeout(r, 800));
    expect(hub.counters).toMatchObject({ twinGets: twinGets + 1, twinThrottled: twinThrottled + 1 });
  });
});

describe('the route over WebSockets', () => {
  // Nothing listens on 443 of this file's loopback address (the hub's HTTPS is on a free port):
  // an attempt that went to 8883 instead would connect.
  it('goes to 443 when the route says so, and names that way in its failure', async () => {
    const { hub, session, lines } = await sessionFor();
    const err = await session.connect({ protocol: 'mqtt-ws', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', protocol: 'mqtt-ws', message: `the hub ${hub.hostName} could not be reached over MQTT over WebSockets on 443` });
    expect(session.protocol).toBe('mqtt-ws');
    expect(lines.find((l) => l.includes('event=hub.connecting'))).toMatch(/ protocol=mqtt-ws$/);
  });

  it('goes through the proxy, and blames the proxy when nothing answers there', async () => {
    const tunnel = new ProxyTunnel(parseProxyUrl(`http://127.0.0.1:${await freePort()}`, 'network.proxy'));
    const { session, lines } = await sessionFor({ tunnel });
    const err = await session.connect({ protocol: 'mqtt-ws', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', protocol: 'mqtt-ws' });
    expect((err as Error).cause).toBeInstanceOf(ProxyError);
    expect((err as Error).cause).toMatchObject({ message: `the proxy ${tunnel.proxy.display} (network.proxy) could not be reached (ECONNREFUSED)` });
    expect(lines.find((l) => l.includes('event=hub.connecting'))).toMatch(new RegExp(` protocol=mqtt-ws proxy=${tunnel.proxy.display.replace(/[.]/g, '\\.')}$`));
  });

  it('asks the proxy for a tunnel to the hub\'s 443, and names the proxy\'s refusal', async () => {
    const proxy = await connectProxy(1, 403);
    const tunnel = new ProxyTunnel(parseProxyUrl(proxy.url, 'network.proxy'));
    const { hub, session } = await sessionFor({ tunnel });
    const err = await session.connect({ protocol: 'mqtt-ws', timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(proxy.asked).toEqual([`${hub.hostName}:443`]);
    expect((err as Error).cause).toMatchObject({ statusCode: 403, message: `the proxy ${tunnel.proxy.display} (network.proxy) does not allow a tunnel to ${hub.hostName} (403)` });
  });

  it('leaves the proxy out of a route over 8883', async () => {
    const tunnel = new ProxyTunnel(parseProxyUrl(`http://127.0.0.1:${await freePort()}`, 'network.proxy'));
    const { hub, session, lines } = await sessionFor({ tunnel });
    await hub.set8883('closed');
    const err = await session.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unreachable', protocol: 'mqtt' });
    expect((err as Error).cause).not.toBeInstanceOf(ProxyError);
    expect(lines.find((l) => l.includes('event=hub.connecting'))).toMatch(/ protocol=mqtt$/);
  });
});
