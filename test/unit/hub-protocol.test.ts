import { describe, expect, it } from 'vitest';
import { HubProtocolChoice, MQTT_RETRY_MS, type ProtocolMemory, type ProtocolSettings } from '../../agent/retry/hub-protocol.js';
import { parseHubProtocolMemory } from '../../agent/state/hub-protocol-memory.js';
import { stringMatching } from '../support/matchers.js';

const DAY = 86_400_000;

/** A choice on a clock the test moves, with a fixed "random" draw (0.5: the retry exactly a period later). */
function choiceAt(start: number, settings: Partial<ProtocolSettings> = {}, memory?: ProtocolMemory, random = 0.5) {
  const clock = { t: start, now: () => clock.t, random: () => random };
  const choice = new HubProtocolChoice({ setting: 'auto', proxied: false, probeMs: 10_000, ...settings }, memory, clock);
  return { choice, clock };
}

describe('hub protocol: auto without a proxy', () => {
  it('tries 8883 first, within the probe time, and WebSockets at once when 8883 is unreachable', () => {
    const { choice } = choiceAt(0);
    const first = choice.plan();
    expect(first).toMatchObject({ protocol: 'mqtt', timeoutMs: 10_000, reason: 'auto: 8883 first' });
    const second = choice.failed(first, 'unreachable');
    expect(second).toMatchObject({ protocol: 'mqtt-ws', reason: '8883 could not be reached within 10 s: WebSockets on 443' });
    // Both failed: the round is over, the connection policy's backoff decides when again.
    expect(choice.failed(second!, 'unreachable')).toBeUndefined();
    expect(choice.takeChange()).toBeUndefined();
  });

  it('never changes protocol for a refusal (CONNACK 5): the other way would be refused too', () => {
    const { choice } = choiceAt(0);
    expect(choice.failed(choice.plan(), 'refused')).toBeUndefined();
    const ws = choiceAt(0, {}, { protocol: 'mqtt-ws', since: 0, retryMqttAt: DAY }).choice;
    expect(ws.failed(ws.plan(), 'refused')).toBeUndefined();
    expect(ws.memory()).toEqual({ protocol: 'mqtt-ws', since: 0, retryMqttAt: DAY });
  });

  it('remembers WebSockets once they worked, with 8883 tried again a day later (±25 %)', () => {
    for (const [random, after] of [[0, 0.75 * DAY], [0.5, DAY], [0.999, 1.2495 * DAY]] as const) {
      const { choice } = choiceAt(1_000, {}, undefined, random);
      choice.failed(choice.plan(), 'unreachable');
      choice.connected('mqtt-ws');
      const change = choice.takeChange();
      expect(change).toEqual({ protocol: 'mqtt-ws', since: 1_000, retryMqttAt: 1_000 + Math.floor(MQTT_RETRY_MS * (0.75 + random / 2)) });
      expect(change!.retryMqttAt! - 1_000).toBeCloseTo(after, -3);
      expect(choice.takeChange()).toBeUndefined();
    }
  });

  it('starts with WebSockets while the retry is not due, and with 8883 once it is', () => {
    const memory: ProtocolMemory = { protocol: 'mqtt-ws', since: 0, retryMqttAt: DAY };
    const { choice, clock } = choiceAt(DAY - 1, {}, memory);
    expect(choice.plan()).toMatchObject({ protocol: 'mqtt-ws', timeoutMs: undefined, reason: stringMatching(/^8883 was unreachable/) });
    clock.t = DAY;
    expect(choice.plan()).toMatchObject({ protocol: 'mqtt', timeoutMs: 10_000, reason: stringMatching(/^trying 8883 again/) });
  });

  it('after a failed retry of 8883, goes back to WebSockets at once and moves the next retry a period on', () => {
    const { choice, clock } = choiceAt(0, {}, { protocol: 'mqtt-ws', since: 0, retryMqttAt: DAY });
    clock.t = DAY + 5;
    const retry = choice.plan();
    expect(choice.failed(retry, 'unreachable')).toMatchObject({ protocol: 'mqtt-ws' });
    expect(choice.takeChange()).toEqual({ protocol: 'mqtt-ws', since: 0, retryMqttAt: DAY + 5 + DAY });
    choice.connected('mqtt-ws');
    expect(choice.takeChange()).toBeUndefined();
    expect(choice.plan().protocol).toBe('mqtt-ws');
  });

  it('keeps 8883 once a retry works, and forgets WebSockets', () => {
    const { choice, clock } = choiceAt(0, {}, { protocol: 'mqtt-ws', since: 0, retryMqttAt: DAY });
    clock.t = 2 * DAY;
    choice.connected(choice.plan().protocol);
    expect(choice.takeChange()).toEqual({ protocol: 'mqtt', since: 2 * DAY });
    expect(choice.plan()).toMatchObject({ protocol: 'mqtt', reason: 'auto: 8883 first' });
  });

  it('tries 8883 at once when remembered WebSockets cannot reach the hub (the network changed)', () => {
    const { choice } = choiceAt(0, {}, { protocol: 'mqtt-ws', since: 0, retryMqttAt: DAY });
    const first = choice.plan();
    expect(choice.failed(first, 'unreachable')).toMatchObject({ protocol: 'mqtt', timeoutMs: 10_000 });
  });

  it('takes a retry time more than a period ahead (the wall clock went back) as due now', () => {
    const { choice } = choiceAt(0, {}, { protocol: 'mqtt-ws', since: 0, retryMqttAt: 10 * DAY });
    expect(choice.plan().protocol).toBe('mqtt');
  });
});

describe('hub protocol: rounds, reasons and the retry window', () => {
  it('offers the other protocol again in every new round', () => {
    const { choice } = choiceAt(0);
    for (let round = 0; round < 2; round += 1) {
      const first = choice.plan();
      expect(first.protocol).toBe('mqtt');
      const second = choice.failed(first, 'unreachable');
      expect(second).toEqual({ protocol: 'mqtt-ws', timeoutMs: undefined, reason: '8883 could not be reached within 10 s: WebSockets on 443' });
      expect(choice.failed(second!, 'unreachable')).toBeUndefined();
    }
  });

  it('says when WebSockets were chosen and when 8883 is tried again, and why 8883 comes after WebSockets failed', () => {
    const memory: ProtocolMemory = { protocol: 'mqtt-ws', since: Date.parse('2026-11-01T10:00:00Z'), retryMqttAt: Date.parse('2026-11-02T09:00:00Z') };
    const { choice } = choiceAt(Date.parse('2026-11-01T12:00:00Z'), {}, memory);
    const first = choice.plan();
    expect(first).toEqual({ protocol: 'mqtt-ws', timeoutMs: undefined,
      reason: '8883 was unreachable (2026-11-01T10:00:00.000Z); 8883 is tried again after 2026-11-02T09:00:00.000Z' });
    expect(choice.failed(first, 'unreachable')).toEqual({ protocol: 'mqtt', timeoutMs: 10_000, reason: 'WebSockets on 443 could not be reached: 8883' });
    const { choice: due } = choiceAt(Date.parse('2026-11-02T09:00:00Z'), {}, memory);
    expect(due.plan()).toEqual({ protocol: 'mqtt', timeoutMs: 10_000, reason: 'trying 8883 again (WebSockets since 2026-11-01T10:00:00.000Z)' });
  });

  it('keeps WebSockets for a retry up to a period and a quarter ahead, and takes one further ahead as due', () => {
    const at = (retryMqttAt: number) => choiceAt(DAY, {}, { protocol: 'mqtt-ws', since: 0, retryMqttAt }).choice.plan().protocol;
    expect(at(DAY + 1.25 * MQTT_RETRY_MS)).toBe('mqtt-ws');
    expect(at(DAY + 1.25 * MQTT_RETRY_MS + 1)).toBe('mqtt');
    expect(at(DAY + 1)).toBe('mqtt-ws');
  });

  it('tries 8883 at once for remembered WebSockets without a retry time', () => {
    const { choice } = choiceAt(DAY, {}, { protocol: 'mqtt-ws', since: 0 });
    expect(choice.plan()).toMatchObject({ protocol: 'mqtt', timeoutMs: 10_000 });
  });

  it('writes nothing when 8883 works and 8883 was already remembered', () => {
    const { choice } = choiceAt(DAY, {}, { protocol: 'mqtt', since: 0 });
    choice.connected(choice.plan().protocol);
    expect(choice.takeChange()).toBeUndefined();
    expect(choice.memory()).toEqual({ protocol: 'mqtt', since: 0 });
  });

  it('follows new settings (a proxy set, then removed) and keeps what it learnt', () => {
    const memory: ProtocolMemory = { protocol: 'mqtt-ws', since: 0, retryMqttAt: 2 * DAY };
    const { choice } = choiceAt(DAY, {}, memory);
    choice.update({ setting: 'auto', proxied: true, probeMs: 5_000 });
    expect(choice.plan()).toEqual({ protocol: 'mqtt-ws', timeoutMs: undefined, reason: 'through the proxy, which tunnels 443 only' });
    choice.connected('mqtt-ws');
    expect(choice.memory()).toEqual(memory);
    choice.update({ setting: 'auto', proxied: false, probeMs: 5_000 });
    const plan = choice.plan();
    expect(plan.protocol).toBe('mqtt-ws');
    expect(choice.failed(plan, 'unreachable')).toMatchObject({ protocol: 'mqtt', timeoutMs: 5_000 });
  });
});

describe('hub protocol: fixed by the setting or a proxy', () => {
  it.each([
    [{ setting: 'mqtt' }, 'mqtt', 'network.hubProtocol is mqtt'],
    [{ setting: 'mqtt', proxied: true }, 'mqtt', 'network.hubProtocol is mqtt'],
    [{ setting: 'mqtt-ws' }, 'mqtt-ws', 'network.hubProtocol is mqtt-ws'],
    [{ setting: 'auto', proxied: true }, 'mqtt-ws', 'through the proxy, which tunnels 443 only'],
  ] as const)('%j: %s only, nothing learnt', (settings, protocol, reason) => {
    const { choice } = choiceAt(0, settings, { protocol: 'mqtt', since: 0 });
    const plan = choice.plan();
    expect(plan).toEqual({ protocol, timeoutMs: undefined, reason });
    expect(choice.failed(plan, 'unreachable')).toBeUndefined();
    choice.connected(protocol);
    expect(choice.takeChange()).toBeUndefined();
  });
});

describe('the remembered protocol file', () => {
  const good = { kind: 'iot-agent/hub-protocol', version: 1, protocol: 'mqtt-ws', since: '2026-11-01T10:00:00.000Z', retryMqttAfter: '2026-11-02T09:00:00.000Z' };

  it('reads a valid record', () => {
    expect(parseHubProtocolMemory(JSON.stringify(good))).toEqual({
      memory: { protocol: 'mqtt-ws', since: Date.parse(good.since), retryMqttAt: Date.parse(good.retryMqttAfter) },
    });
    expect(parseHubProtocolMemory(JSON.stringify({ ...good, protocol: 'mqtt', retryMqttAfter: undefined })).memory).toEqual({ protocol: 'mqtt', since: Date.parse(good.since) });
  });

  it.each([
    ['', 'not JSON'],
    ['{"kind":', 'not JSON'],
    ['[1,2]', 'not a JSON object'],
    ['null', 'not a JSON object'],
    ['"mqtt-ws"', 'not a JSON object'],
    [JSON.stringify({ ...good, kind: 'iot-agent/assignment' }), 'not a iot-agent/hub-protocol version 1 record'],
    [JSON.stringify({ ...good, version: 2 }), 'not a iot-agent/hub-protocol version 1 record'],
    [JSON.stringify({ ...good, protocol: 'amqp' }), 'protocol is neither mqtt nor mqtt-ws'],
    [JSON.stringify({ ...good, protocol: ['mqtt'] }), 'protocol is neither mqtt nor mqtt-ws'],
    [JSON.stringify({ ...good, since: 'yesterday' }), 'since is not an ISO 8601 time'],
    [JSON.stringify({ ...good, since: 1764000000000 }), 'since is not an ISO 8601 time'],
    [JSON.stringify({ ...good, since: '2026-13-45T99:00:00Z' }), 'since is not an ISO 8601 time'],
    [JSON.stringify({ ...good, retryMqttAfter: undefined }), 'retryMqttAfter is not an ISO 8601 time'],
    [JSON.stringify({ ...good, retryMqttAfter: '' }), 'retryMqttAfter is not an ISO 8601 time'],
    [`${JSON.stringify(good)}${' '.repeat(5000)}`, 'larger than 4096 bytes'],
  ])('ignores %j: %s', (text, problem) => {
    expect(parseHubProtocolMemory(text)).toEqual({ memory: undefined, problem });
  });
});
