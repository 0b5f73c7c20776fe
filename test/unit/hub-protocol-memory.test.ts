import { mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HUB_PROTOCOL_FILE, parseHubProtocolMemory, readHubProtocolMemory, writeHubProtocolMemory } from '../../agent/state/hub-protocol-memory.js';

const stateDir = () => path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-hub-protocol-')), 'state');
const since = Date.parse('2026-11-01T10:00:00.000Z');
const retryMqttAt = Date.parse('2026-11-02T09:00:00.000Z');

describe('the remembered hub protocol on disk', () => {
  it('writes WebSockets with the next 8883 try, readable by the owner only, in a state directory it creates', async () => {
    const dir = stateDir();
    await writeHubProtocolMemory(dir, { protocol: 'mqtt-ws', since, retryMqttAt });
    const file = path.join(dir, HUB_PROTOCOL_FILE);
    expect(readFileSync(file, 'utf8')).toBe('{"kind":"iot-agent/hub-protocol","version":1,"protocol":"mqtt-ws",'
      + '"since":"2026-11-01T10:00:00.000Z","retryMqttAfter":"2026-11-02T09:00:00.000Z"}\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(await readHubProtocolMemory(dir)).toEqual({ memory: { protocol: 'mqtt-ws', since, retryMqttAt } });
  });

  it('writes 8883 without a retry time, replacing what was there', async () => {
    const dir = stateDir();
    await writeHubProtocolMemory(dir, { protocol: 'mqtt-ws', since, retryMqttAt });
    await writeHubProtocolMemory(dir, { protocol: 'mqtt', since: retryMqttAt });
    expect(JSON.parse(readFileSync(path.join(dir, HUB_PROTOCOL_FILE), 'utf8'))).toEqual({
      kind: 'iot-agent/hub-protocol', version: 1, protocol: 'mqtt', since: '2026-11-02T09:00:00.000Z',
    });
    expect(await readHubProtocolMemory(dir)).toEqual({ memory: { protocol: 'mqtt', since: retryMqttAt } });
  });

  it('has no memory and no problem on a board that never learnt anything', async () => {
    expect(await readHubProtocolMemory(stateDir())).toEqual({ memory: undefined });
  });

  it('says why a file it cannot read is not used', async () => {
    const dir = stateDir();
    mkdirSync(path.join(dir, HUB_PROTOCOL_FILE), { recursive: true });
    expect(await readHubProtocolMemory(dir)).toEqual({ memory: undefined, problem: 'unreadable (EISDIR)' });
  });
});

describe('the remembered hub protocol: the time forms it takes', () => {
  const record = (time: string) => JSON.stringify({ kind: 'iot-agent/hub-protocol', version: 1, protocol: 'mqtt', since: time });

  it.each(['2026-11-01T10:00:00Z', '2026-11-01T10:00:00.5Z', '2026-11-01T10:00:00.123Z'])('takes %s', (time) => {
    expect(parseHubProtocolMemory(record(time))).toEqual({ memory: { protocol: 'mqtt', since: Date.parse(time) } });
  });

  it.each([' 2026-11-01T10:00:00Z', '2026-11-01T10:00:00Z ', '2026-11-01T10:00:00.1234Z', '2026-11-01T10:00:00+01:00', '2026-11-01 10:00:00Z'])(
    'refuses %j', (time) => {
      expect(parseHubProtocolMemory(record(time))).toEqual({ memory: undefined, problem: 'since is not an ISO 8601 time' });
    });

  it('reads a record of exactly 4096 bytes, and refuses one byte more', () => {
    const text = record('2026-11-01T10:00:00Z');
    const padded = `${text}${' '.repeat(4096 - text.length)}`;
    expect(parseHubProtocolMemory(padded).memory).toEqual({ protocol: 'mqtt', since: Date.parse('2026-11-01T10:00:00Z') });
    expect(parseHubProtocolMemory(`${padded} `)).toEqual({ memory: undefined, problem: 'larger than 4096 bytes' });
  });
});
