import type { ServerResponse } from 'node:http';
import { hubErrors } from '../errors.js';
import { sendJson } from '../http.js';
import { MAX_C2D_TTL_SECONDS, type C2dMessage } from './c2d.js';
import type { HubBehaviour, HubCore } from './hub-core.js';
import { isJsonObject, type JsonObject } from './twin.js';

/**
 * The local cloud's admin API (not an IoT Hub API; see README.md here): what
 * azure-iothub would do over AMQP (C2D), what tests need to observe (D2C, counters),
 * and fault injection (stop / start the MQTT listener). Same auth as the service API.
 */
export async function handleAdmin(core: HubCore, method: string, path: string[], url: URL,
  body: () => Promise<unknown>, res: ServerResponse): Promise<void> {
  const [first, second, third] = path;
  if (method === 'GET' && first === 'counters' && path.length === 1) return sendJson(res, 200, core.counters);
  if (method === 'GET' && first === 'd2c' && path.length === 1) {
    const since = url.searchParams.get('since');
    if (since !== null && !/^\d{1,15}$/.test(since)) throw hubErrors.argumentInvalid('since must be a sequence number');
    const deviceId = url.searchParams.get('deviceId') ?? undefined;
    const messages = core.d2c({ deviceId, since: since === null ? undefined : Number(since) });
    return sendJson(res, 200, messages.map((m) => ({ ...m, body: m.body.toString('base64') })));
  }
  if (method === 'POST' && first === 'devices' && second && third === 'messages' && path.length === 3) {
    const messageId = await core.sendC2d(second, parseC2dBody(await body()));
    return sendJson(res, 202, { messageId });
  }
  if (method === 'PUT' && first === 'devices' && second && path.length === 2) {
    const input = await body();
    if (!isJsonObject(input) || typeof input.primaryKey !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(input.primaryKey)) {
      throw hubErrors.argumentInvalid('body must be {"primaryKey": "<base64>", "registrationId"?: "..."}');
    }
    await core.registerDevice({
      deviceId: second,
      registrationId: typeof input.registrationId === 'string' ? input.registrationId : second,
      primaryKey: Buffer.from(input.primaryKey, 'base64'),
    });
    return sendJson(res, 200, core.getDevice(second));
  }
  if (method === 'PUT' && first === 'behaviour' && path.length === 1) {
    core.configure(parseBehaviour(await body()));
    return sendJson(res, 200, core.settings);
  }
  if (method === 'POST' && first === 'faults' && second === 'twin' && path.length === 2) {
    const input = await body();
    if (!isJsonObject(input) || (input.operation !== 'get' && input.operation !== 'patch') || !isCount(input.count)) {
      throw hubErrors.argumentInvalid('body must be {"operation": "get" | "patch", "count": 1..1000}');
    }
    core.faults.throttleTwin(input.operation, input.count);
    return sendJson(res, 200, { operation: input.operation, count: input.count });
  }
  if (method === 'POST' && first === 'quota' && second === 'reset' && path.length === 2) {
    core.d2cThrottle.resetQuota();
    return sendJson(res, 200, { used: core.d2cThrottle.used });
  }
  if (method === 'POST' && first === 'mqtt' && (second === 'stop' || second === 'start') && path.length === 2) {
    if (second === 'stop') await core.stopMqtt();
    else await core.startMqtt();
    return sendJson(res, 200, { listening: core.broker.listening });
  }
  throw hubErrors.notFound(`${method} /admin/${path.join('/')}`);
}

export function parseC2dBody(input: unknown): C2dMessage {
  if (!isJsonObject(input)) throw hubErrors.argumentInvalid('C2D body must be a JSON object');
  const { data, dataBase64, properties } = input;
  if ((typeof data === 'string') === (typeof dataBase64 === 'string')) throw hubErrors.argumentInvalid('give exactly one of data (text) or dataBase64');
  if (typeof dataBase64 === 'string' && !/^[A-Za-z0-9+/]*={0,2}$/.test(dataBase64)) throw hubErrors.argumentInvalid('dataBase64 is not base64');
  if (properties !== undefined && (!isJsonObject(properties) || !Object.values(properties).every((v) => typeof v === 'string'))) {
    throw hubErrors.argumentInvalid('properties must be an object of strings');
  }
  const text = (name: string): string | undefined => {
    const value = input[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.length > 128) throw hubErrors.argumentInvalid(`${name} must be a string of at most 128 characters`);
    return value;
  };
  const expiry = expiryOf(input.expiryTimeUtc, input.ttlSeconds);
  return {
    data: typeof data === 'string' ? data : Buffer.from(dataBase64 as string, 'base64'),
    ...(expiry ? { expiryTimeUtc: expiry } : {}),
    messageId: text('messageId'),
    correlationId: text('correlationId'),
    contentType: text('contentType'),
    contentEncoding: text('contentEncoding'),
    properties: properties as JsonObject as Record<string, string> | undefined,
  };
}

/** `expiryTimeUtc` (ISO 8601) or `ttlSeconds` (1 to 48 hours' worth), as a date; neither: the hub's default. */
function expiryOf(expiryTimeUtc: unknown, ttlSeconds: unknown): Date | undefined {
  if (expiryTimeUtc !== undefined && ttlSeconds !== undefined) throw hubErrors.argumentInvalid('give expiryTimeUtc or ttlSeconds, not both');
  if (expiryTimeUtc !== undefined) {
    const at = typeof expiryTimeUtc === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(expiryTimeUtc) ? Date.parse(expiryTimeUtc) : NaN;
    if (!Number.isFinite(at)) throw hubErrors.argumentInvalid('expiryTimeUtc must be an ISO 8601 time');
    return new Date(at);
  }
  if (ttlSeconds === undefined) return undefined;
  if (typeof ttlSeconds !== 'number' || !Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_C2D_TTL_SECONDS) {
    throw hubErrors.argumentInvalid(`ttlSeconds must be a whole number from 1 to ${MAX_C2D_TTL_SECONDS}`);
  }
  return new Date(Date.now() + ttlSeconds * 1000);
}

/** `PUT /admin/behaviour`: every field optional, each a positive whole number or (registrationReenables) a boolean. */
export function parseBehaviour(input: unknown): HubBehaviour {
  if (!isJsonObject(input)) throw hubErrors.argumentInvalid('behaviour must be a JSON object');
  const out: HubBehaviour = {};
  for (const [key, value] of Object.entries(input)) {
    if (key === 'registrationReenables') {
      if (typeof value !== 'boolean') throw hubErrors.argumentInvalid('registrationReenables must be true or false');
      out.registrationReenables = value;
    } else if (key === 'perSecond' || key === 'backlog' || key === 'dailyQuota' || key === 'quotaChunkBytes' || key === 'c2dDefaultTtlSeconds') {
      if (!isCount(value, 100_000_000) || (key === 'c2dDefaultTtlSeconds' && value > MAX_C2D_TTL_SECONDS)) throw hubErrors.argumentInvalid(`${key} must be a positive whole number`);
      out[key] = value;
    } else {
      throw hubErrors.argumentInvalid(`unknown behaviour ${JSON.stringify(key.slice(0, 40))}`);
    }
  }
  return out;
}

function isCount(value: unknown, max = 1000): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max;
}
