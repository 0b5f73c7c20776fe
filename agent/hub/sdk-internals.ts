import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import device from 'azure-iot-device';
import securityTpm from 'azure-iot-security-tpm';
import { provisioningCommon } from '../azure-sdk/token-clock.js';
import type { Logger } from '../log/logger.js';
import { sanitizeTwinDocument } from '../twin/sdk-guard.js';

/**
 * Every place where the agent reaches past azure-iot-device's public API, in one file.
 * Each seam names the SDK member it relies on; `sdkContractProblems()` checks that they
 * still exist, and a unit test fails the build when an SDK update removes one.
 *
 * - `Client._transport` (the MQTT transport, an EventEmitter): method requests arrive as
 *   `method_<name>` events carrying `{ requestId, methods: { methodName }, body }`, and
 *   desired-property patches as `twinDesiredPropertiesUpdate`; its
 *   `enableTwinDesiredPropertiesUpdates(cb)` subscribes to desired updates.
 * - `Twin.prototype._mergePatch` and `_onDesiredPropertiesUpdate`: the lodash merge of
 *   twin documents.
 * - The TPM authentication provider's `_tokenValidTimeInSeconds` and
 *   `_tokenRenewalMarginInSeconds`: token lifetimes have no setter (agent/azure-sdk/token-clock.ts).
 * - Also checked here, used in agent/azure-sdk/: `TpmSecurityClient._idKeyPersistentHandle`,
 *   the provisioning SDK's own azure-iot-common `anHourFromNow`, and the provider's `emit`.
 * - The `ws` module that the SDK's mqtt.js loads: its `createWebSocketStream`, which mqtt.js
 *   calls for every MqttWs connection (sendWholePacketsOverWebSockets below).
 */
type Client = InstanceType<typeof device.Client>;
const { DeviceMethodResponse } = device;

// The copy of ws that the SDK's mqtt.js uses (azure-iot-mqtt-base bundles its own mqtt.js).
const fromMqttBase = createRequire(createRequire(import.meta.url).resolve('azure-iot-mqtt-base'));
const fromMqtt = createRequire(fromMqttBase.resolve('mqtt'));

interface WsModule {
  createWebSocketStream(socket: unknown, options?: object): Duplex;
}

function sdkWs(): WsModule {
  return fromMqtt('ws') as WsModule;
}

let wholePackets = false;

/**
 * One WebSocket message per MQTT packet. mqtt.js writes a packet in pieces between a cork
 * and an uncork (mqtt-packet), but the stream ws makes has no `_writev`, so each piece goes
 * out as a frame of its own, the next only once the last was written. Through a proxy with
 * Nagle's algorithm on its side (tinyproxy, and Node-based proxies), every piece after the
 * first then waits for a delayed ACK: some 40 ms on each method answer. With `_writev` the
 * pieces of a packet leave as one frame. Installed once per process, before the first MqttWs
 * client connects; mqtt.js looks the function up on each connection.
 */
export function sendWholePacketsOverWebSockets(): void {
  if (wholePackets) return;
  wholePackets = true;
  const ws = sdkWs();
  const create = ws.createWebSocketStream.bind(ws);
  ws.createWebSocketStream = (socket, options) => {
    const duplex = create(socket, options);
    duplex._writev = function writeWhole(chunks, done) {
      this._write(Buffer.concat(chunks.map((c) => (Buffer.isBuffer(c.chunk) ? c.chunk : Buffer.from(c.chunk as string, c.encoding)))), 'buffer' as BufferEncoding, done);
    };
    return duplex;
  };
}

/** What the MQTT transport hands to method listeners (azure-iot-device's MethodMessage). */
interface MethodMessage {
  requestId: string;
  methods: { methodName: string };
  body?: Buffer;
}

interface MqttTransport extends EventEmitter {
  enableTwinDesiredPropertiesUpdates(done: (err?: Error) => void): void;
}

function transportOf(client: Client): MqttTransport {
  return (client as unknown as { _transport: MqttTransport })._transport;
}

export const DESIRED_PATCH_EVENT = 'twinDesiredPropertiesUpdate';

/**
 * Direct methods as IoT Hub sends them. A method invoked with a null or omitted payload
 * arrives with an empty body (azure-iot-sdk-c PR #2097; Microsoft Learn, MQTT support:
 * requests carry "either a valid JSON or an empty body"); the SDK's DeviceMethodRequest
 * would JSON.parse('') it and answer 400 itself, so an empty body becomes `null` before
 * the SDK sees it. A method nobody registered goes to `onUnknown`, which answers it
 * through `answer` (the SDK would drop it and leave the caller to time out).
 */
export function interceptMethodRequests(client: Client, onUnknown: (methodName: string, answer: (status: number, payload: unknown) => Promise<void>) => void): void {
  const transport = transportOf(client);
  const emit = transport.emit.bind(transport);
  transport.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (typeof event !== 'string' || !event.startsWith('method_')) return emit(event, ...args);
    const message = args[0] as MethodMessage;
    if (Buffer.isBuffer(message.body) && message.body.length === 0) message.body = Buffer.from('null');
    if (transport.listenerCount(event) > 0) return emit(event, message, ...args.slice(1));
    onUnknown(message.methods.methodName, (status, payload) => new Promise<void>((resolve, reject) => {
      new DeviceMethodResponse(message.requestId, transport as never).send(status, payload, (err?: Error) => (err ? reject(err) : resolve()));
    }));
    return true;
  };
}

/** Subscribes to desired-property updates now (before the twin is fetched, as the reconnection flow requires). */
export function enableDesiredUpdates(client: Client): Promise<void> {
  const transport = transportOf(client);
  return new Promise((resolve, reject) => transport.enableTwinDesiredPropertiesUpdates((err) => (err ? reject(err) : resolve())));
}

/** Every desired-property patch the transport receives, sanitised; returns the function that stops listening. */
export function onDesiredPatch(client: Client, listener: (patch: Record<string, unknown>) => void): () => void {
  const transport = transportOf(client);
  const handler = (patch: unknown) => {
    const clean = sanitizeTwinDocument(patch);
    if (typeof clean === 'object' && clean !== null && !Array.isArray(clean)) listener(clean as Record<string, unknown>);
  };
  transport.on(DESIRED_PATCH_EVENT, handler);
  return () => transport.off(DESIRED_PATCH_EVENT, handler);
}

interface TwinInternals {
  _mergePatch(dest: unknown, patch: unknown): void;
  _onDesiredPropertiesUpdate(patch: unknown): void;
}

let twinGuarded = false;

/**
 * Makes azure-iot-device's Twin merge only sanitised documents and never throw out of its
 * MQTT callbacks. Installed once per process, before the first client fetches a twin; the
 * Twin binds `_onDesiredPropertiesUpdate` when it is constructed, so the prototype is the seam.
 */
export function guardTwinMerges(log: Logger): void {
  if (twinGuarded) return;
  twinGuarded = true;
  const proto = device.Twin.prototype as unknown as TwinInternals;
  const merge = proto._mergePatch;
  const onDesired = proto._onDesiredPropertiesUpdate;
  proto._mergePatch = function guardedMerge(this: TwinInternals, dest, patch) {
    try {
      merge.call(this, dest, sanitizeTwinDocument(patch));
    } catch (err) {
      log.warn('twin.merge_refused', { err });
    }
  };
  proto._onDesiredPropertiesUpdate = function guardedDesired(this: TwinInternals, patch) {
    try {
      onDesired.call(this, sanitizeTwinDocument(patch));
    } catch (err) {
      log.warn('twin.desired_patch_refused', { err });
    }
  };
}

/**
 * The SDK members the seams above rely on that are missing from `client` (an MQTT client
 * built by the SDK) and `provider` (a TPM authentication provider): empty while the SDK
 * still has them all.
 */
export function sdkContractProblems(client: Client, provider: object): string[] {
  const problems: string[] = [];
  const transport = (client as unknown as { _transport?: Partial<MqttTransport> })._transport;
  if (!transport || typeof transport.emit !== 'function' || typeof transport.on !== 'function') problems.push('Client._transport is no EventEmitter');
  else if (typeof transport.enableTwinDesiredPropertiesUpdates !== 'function') problems.push('Client._transport.enableTwinDesiredPropertiesUpdates is gone');
  const proto = device.Twin.prototype as unknown as Partial<TwinInternals>;
  if (typeof proto._mergePatch !== 'function') problems.push('Twin.prototype._mergePatch is gone');
  if (typeof proto._onDesiredPropertiesUpdate !== 'function') problems.push('Twin.prototype._onDesiredPropertiesUpdate is gone');
  for (const field of ['_tokenValidTimeInSeconds', '_tokenRenewalMarginInSeconds']) {
    if (typeof (provider as Record<string, unknown>)[field] !== 'number') problems.push(`TpmAuthenticationProvider.${field} is gone`);
  }
  // agent/azure-sdk/: the identity key's handle, the DPS token's expiry, the first token's event.
  if (typeof (securityTpm.TpmSecurityClient as unknown as { _idKeyPersistentHandle?: { handle?: unknown } })._idKeyPersistentHandle?.handle !== 'number') {
    problems.push('TpmSecurityClient._idKeyPersistentHandle is gone');
  }
  if (typeof provisioningCommon().anHourFromNow !== 'function') problems.push('azure-iot-common.anHourFromNow (as the provisioning SDK loads it) is gone');
  if (typeof (provider as { emit?: unknown }).emit !== 'function') problems.push('TpmAuthenticationProvider is no EventEmitter');
  if (typeof sdkWs().createWebSocketStream !== 'function') problems.push('ws.createWebSocketStream (as the SDK\'s mqtt.js loads it) is gone');
  return problems;
}
