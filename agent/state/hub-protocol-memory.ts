import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { isMapping, NOT_JSON, parseJson } from '../lib/validate.js';
import type { ProtocolMemory } from '../retry/hub-protocol.js';

export const HUB_PROTOCOL_FILE = 'hub-protocol.json';
const KIND = 'iot-agent/hub-protocol';
const MAX_BYTES = 4096;

/**
 * What `network.hubProtocol: auto` learnt of this network, so that the next boot does not
 * wait out the 8883 timeout again:
 * `{"kind":"iot-agent/hub-protocol","version":1,"protocol":"mqtt-ws","since":ISO,"retryMqttAfter":ISO}`
 * (`retryMqttAfter` only with mqtt-ws). Anything else is no memory: 8883 is tried first,
 * which costs at most one probe. `problem` says why a file present was not used.
 */
export type StoredProtocol = { memory: ProtocolMemory | undefined; problem?: string };

export async function readHubProtocolMemory(stateDir: string): Promise<StoredProtocol> {
  let text: string;
  try {
    text = await readFile(path.join(stateDir, HUB_PROTOCOL_FILE), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { memory: undefined } : { memory: undefined, problem: `unreadable (${code ?? String(err)})` };
  }
  return parseHubProtocolMemory(text);
}

export function parseHubProtocolMemory(text: string): StoredProtocol {
  if (text.length > MAX_BYTES) return { memory: undefined, problem: `larger than ${MAX_BYTES} bytes` };
  const record = parseJson(text);
  if (record === NOT_JSON) return { memory: undefined, problem: 'not JSON' };
  if (!isMapping(record)) return { memory: undefined, problem: 'not a JSON object' };
  if (record.kind !== KIND || record.version !== 1) return { memory: undefined, problem: `not a ${KIND} version 1 record` };
  if (record.protocol !== 'mqtt' && record.protocol !== 'mqtt-ws') return { memory: undefined, problem: 'protocol is neither mqtt nor mqtt-ws' };
  const since = isoTime(record.since);
  if (since === undefined) return { memory: undefined, problem: 'since is not an ISO 8601 time' };
  if (record.protocol === 'mqtt') return { memory: { protocol: 'mqtt', since } };
  const retryMqttAt = isoTime(record.retryMqttAfter);
  if (retryMqttAt === undefined) return { memory: undefined, problem: 'retryMqttAfter is not an ISO 8601 time' };
  return { memory: { protocol: 'mqtt-ws', since, retryMqttAt } };
}

export async function writeHubProtocolMemory(stateDir: string, memory: ProtocolMemory): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const doc = {
    kind: KIND, version: 1, protocol: memory.protocol, since: new Date(memory.since).toISOString(),
    ...(memory.retryMqttAt === undefined ? {} : { retryMqttAfter: new Date(memory.retryMqttAt).toISOString() }),
  };
  await writeFileAtomic(path.join(stateDir, HUB_PROTOCOL_FILE), `${JSON.stringify(doc)}\n`, 0o600);
}

function isoTime(value: unknown): number | undefined {
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}
