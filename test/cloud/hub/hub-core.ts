import { randomBytes } from 'node:crypto';
import type { HubDeviceRegistration } from '../contracts.js';
import { HubBroker } from './broker.js';
import { C2dQueues, c2dPacket, DEFAULT_C2D_TTL_SECONDS, MAX_C2D_BYTES, type C2dMessage } from './c2d.js';
import { authenticateDevice } from './device-auth.js';
import { newCounters, type HubCounters } from './counters.js';
import { D2cLog, type D2cMessage } from './d2c-log.js';
import { D2cThrottle, type D2cLimits } from './d2c-throttle.js';
import { handleDeviceRequest, type DeviceRequestContext } from './device-requests.js';
import { HubFaults } from './faults.js';
import { SilentListener, type Port8883 } from './silent-listener.js';
import { hubErrors } from '../errors.js';
import type { IdentityChange } from './identity-update.js';
import { MethodTimeoutError, PendingMethods } from './methods.js';
import { MAX_METHOD_PAYLOAD_BYTES, type MethodRequest } from './method-request.js';
import { DeviceRegistry, RegistryError } from './registry.js';
import { deviceView, twinView, type Presence } from './service-views.js';
import { desiredSubscription, methodsSubscription } from './topics.js';
import { isJsonObject, patchDesired, patchTags, twinEtag, TwinPatchError, type Json, type JsonObject } from './twin.js';

/** Limits and knobs of one hub (see test/cloud/README.md for where each comes from). */
export interface HubBehaviour extends D2cLimits {
  /** Whether DPS registering a disabled device again enables it (real behaviour unverified). */
  registrationReenables?: boolean;
  /** Time to live of a C2D message sent without an expiry (IoT Hub: 1 hour by default, at most 48). */
  c2dDefaultTtlSeconds?: number;
}

/**
 * IoT Hub's behaviour, apart from its two wire protocols: devices, twins, direct
 * methods, C2D and D2C. The MQTT broker feeds it device requests; the service REST
 * API and the admin API call its methods.
 */
export class HubCore {
  readonly counters: HubCounters = newCounters();
  readonly d2cLog = new D2cLog();
  readonly faults = new HubFaults();
  readonly d2cThrottle = new D2cThrottle();
  private behaviour: HubBehaviour = {};
  private readonly methods = new PendingMethods();
  private readonly c2d = new C2dQueues();
  private readonly presence = new Map<string, { since: string; lastActivity: string }>();
  private readonly subscribeWaiters = new Map<string, Set<() => void>>();
  /** Set once by create(): the broker needs the core's callbacks and the core sends through the broker. */
  broker!: HubBroker;

  private constructor(readonly hostName: string, readonly registry: DeviceRegistry) {}

  private get requestContext(): DeviceRequestContext {
    return { registry: this.registry, broker: this.broker, d2cLog: this.d2cLog, counters: this.counters, methods: this.methods, faults: this.faults };
  }

  /** Changes the hub's limits and knobs (D2C rate, backlog, daily quota, ...); what is not given goes back to its default. */
  configure(behaviour: HubBehaviour): void {
    this.behaviour = { ...behaviour };
    this.d2cThrottle.configure(behaviour);
  }

  get settings(): Readonly<HubBehaviour> {
    return this.behaviour;
  }

  static async create(hostName: string, registry: DeviceRegistry, log: (line: string) => void): Promise<HubCore> {
    const core = new HubCore(hostName, registry);
    const broker = await HubBroker.create({
      authenticate: (clientId, username, password) => authenticateDevice(hostName, clientId, username, password, (id) => registry.get(id)),
      refuseConnections: () => {
        if (!core.d2cThrottle.quotaExhausted()) return undefined;
        core.counters.quotaRefusals++;
        return 'the daily message quota is used up (403002): connection reset';
      },
      admitTelemetry: (connection, bytes, verdict) => core.d2cThrottle.admit(connection, bytes, (admission) => {
        if (admission === 'throttled') core.counters.d2cThrottled++;
        if (admission === 'quota') core.counters.quotaRefusals++;
        verdict(admission);
      }),
      onConnectionClosed: (connection) => core.d2cThrottle.forget(connection),
      onRequest: (deviceId, request, payload, flags) => {
        core.touch(deviceId);
        handleDeviceRequest(core.requestContext, deviceId, request, payload, flags);
      },
      onConnect: (deviceId) => {
        core.counters.connects++;
        core.touch(deviceId, true);
        // A SUBSCRIBE can be handled before the broker calls the client ready; look again now.
        core.onReady(deviceId);
      },
      onDisconnect: (deviceId) => {
        core.counters.disconnects++;
        core.touch(deviceId, true);
      },
      onRefused: (deviceId, reason) => {
        core.counters.refused++;
        log(`refused ${deviceId || '(no client id)'}: ${reason}`);
      },
      onSubscribed: (deviceId) => core.onSubscribed(deviceId),
    });
    core.broker = broker;
    return core;
  }

  async registerDevice(registration: HubDeviceRegistration): Promise<void> {
    try {
      await this.registry.register(registration, this.behaviour.registrationReenables === true);
    } catch (err) {
      if (err instanceof RegistryError) throw hubErrors.argumentInvalid(err.message);
      throw err;
    }
    this.counters.registrations++;
  }

  private device(deviceId: string) {
    const device = this.registry.get(deviceId);
    if (!device) throw hubErrors.deviceNotFound(deviceId);
    return device;
  }

  private presenceOf(deviceId: string): Presence {
    const seen = this.presence.get(deviceId);
    const never = '0001-01-01T00:00:00Z';
    return {
      connected: this.broker.isOnline(deviceId),
      since: seen?.since ?? never,
      lastActivityTime: seen?.lastActivity ?? never,
      c2dPending: this.c2d.count(deviceId),
    };
  }

  private touch(deviceId: string, stateChanged = false): void {
    const now = new Date().toISOString();
    const seen = this.presence.get(deviceId);
    this.presence.set(deviceId, { since: stateChanged || !seen ? now : seen.since, lastActivity: now });
  }

  getDevice(deviceId: string): JsonObject {
    return deviceView(this.device(deviceId), this.presenceOf(deviceId));
  }

  getTwin(deviceId: string): JsonObject {
    return twinView(this.device(deviceId), this.presenceOf(deviceId));
  }

  async deleteDevice(deviceId: string, ifMatch: string | undefined): Promise<void> {
    const device = this.device(deviceId);
    const etag = deviceView(device, this.presenceOf(deviceId)).etag;
    if (!etagMatches(ifMatch, etag as string)) throw hubErrors.preconditionFailed('The device identity etag does not match If-Match');
    await this.registry.remove(deviceId);
    this.c2d.drop(deviceId);
    this.broker.disconnect(deviceId);
  }

  /**
   * `PUT /devices/{id}` (Registry.create without If-Match, Registry.update with it): a new
   * identity, or a change of status and keys. A device disabled while connected is cut off.
   */
  async putDevice(deviceId: string, change: IdentityChange, ifMatch: string | undefined): Promise<JsonObject> {
    const existing = this.registry.get(deviceId);
    if (ifMatch === undefined) {
      if (existing) throw hubErrors.deviceAlreadyExists(deviceId);
      await this.registerDevice({ deviceId, registrationId: deviceId, primaryKey: Buffer.from(change.primaryKey ?? randomBytes(32).toString('base64'), 'base64') });
    } else {
      const device = this.device(deviceId);
      if (!etagMatches(ifMatch, deviceView(device, this.presenceOf(deviceId)).etag as string)) {
        throw hubErrors.preconditionFailed('The device identity etag does not match If-Match');
      }
    }
    const updated = await this.registry.updateIdentity(deviceId, change);
    if (updated.status === 'disabled') this.broker.disconnect(deviceId);
    return this.getDevice(deviceId);
  }

  /** `PATCH /twins/{id}`: tags and desired properties; desired changes go to the device. */
  async updateTwin(deviceId: string, body: unknown, ifMatch: string | undefined): Promise<JsonObject> {
    const device = this.device(deviceId);
    if (!isJsonObject(body)) throw hubErrors.argumentInvalid('Twin patch must be a JSON object');
    if (!etagMatches(ifMatch, twinEtag(device.twin))) throw hubErrors.preconditionFailed('The twin etag does not match If-Match');
    const properties = body.properties;
    if (properties !== undefined && !isJsonObject(properties)) throw hubErrors.argumentInvalid('properties must be an object');
    if (properties && properties.reported !== undefined) throw hubErrors.argumentInvalid('Reported properties can only be changed by the device');
    let twin = device.twin;
    const desired = properties?.desired;
    try {
      if (body.tags !== undefined) twin = patchTags(twin, body.tags as JsonObject);
      if (desired !== undefined) twin = patchDesired(twin, desired as JsonObject);
    } catch (err) {
      if (err instanceof TwinPatchError) throw hubErrors.argumentInvalid(err.message);
      throw err;
    }
    // The registry takes the new twin at once and writes it to disk after; the notification
    // goes to whoever is subscribed at the moment of the change (IoT Hub keeps none for later).
    const saved = this.registry.updateTwin(deviceId, twin);
    if (desired !== undefined) {
      this.counters.desiredPatches++;
      if (this.broker.isSubscribed(deviceId, desiredSubscription)) {
        const push = { ...(desired as JsonObject), $version: twin.desiredVersion };
        this.broker.sendToDevice(deviceId, `$iothub/twin/PATCH/properties/desired/?$version=${twin.desiredVersion}`, JSON.stringify(push));
      }
    }
    await saved;
    return this.getTwin(deviceId);
  }

  /** A direct method: to the device over MQTT, back with its status and payload, or a hub error. */
  async invokeMethod(deviceId: string, request: MethodRequest): Promise<{ status: number; payload: Json }> {
    this.device(deviceId);
    this.counters.methodCalls++;
    if (!this.methodsReady(deviceId)) {
      if (request.connectTimeoutInSeconds === 0) throw hubErrors.deviceNotOnline(deviceId);
      await this.waitForMethods(deviceId, request.connectTimeoutInSeconds * 1000);
    }
    const rid = this.methods.newRid();
    const answer = this.methods.wait(deviceId, rid, request.responseTimeoutInSeconds * 1000);
    // A null or omitted payload reaches the device as an empty body, as IoT Hub sends it
    // (azure-iot-sdk-c PR #2097 special-cases size 0 for this; the MQTT article: "either a valid JSON or an empty body").
    const body = request.payload === null ? '' : JSON.stringify(request.payload);
    this.broker.sendToDevice(deviceId, `$iothub/methods/POST/${request.methodName}/?$rid=${rid}`, body);
    try {
      const result = await answer;
      if (result.payload.length > MAX_METHOD_PAYLOAD_BYTES) {
        this.counters.refused++;
        throw hubErrors.argumentInvalid(`The device's response payload is over ${MAX_METHOD_PAYLOAD_BYTES} bytes`);
      }
      return { status: result.status, payload: parsePayload(result.payload) };
    } catch (err) {
      if (err instanceof MethodTimeoutError) {
        this.counters.methodTimeouts++;
        throw hubErrors.gatewayTimeout();
      }
      throw err;
    }
  }

  private methodsReady(deviceId: string): boolean {
    return this.broker.isOnline(deviceId) && this.broker.isSubscribed(deviceId, methodsSubscription);
  }

  private waitForMethods(deviceId: string, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiters = this.subscribeWaiters.get(deviceId) ?? new Set<() => void>();
      const check = () => {
        if (!this.methodsReady(deviceId)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(hubErrors.deviceNotOnline(deviceId));
      }, ms);
      waiters.add(check);
      this.subscribeWaiters.set(deviceId, waiters);
    });
  }

  private onSubscribed(deviceId: string): void {
    this.counters.subscribes++;
    this.onReady(deviceId);
  }

  /** Lets waiting method calls go and queued C2D out, once the device is connected and subscribed. */
  private onReady(deviceId: string): void {
    for (const check of [...(this.subscribeWaiters.get(deviceId) ?? [])]) check();
    if (this.broker.isSubscribed(deviceId, `devices/${deviceId}/messages/devicebound/#`)) {
      for (const packet of this.c2d.take(deviceId)) {
        // Should the broker refuse it (it is closing), the message waits for the next subscription.
        this.broker.publishQueued(packet.topic, packet.payload).catch(() => this.c2d.hold(deviceId, packet));
      }
    }
  }

  async sendC2d(deviceId: string, message: C2dMessage): Promise<string> {
    this.device(deviceId);
    const packet = c2dPacket(deviceId, message, this.behaviour.c2dDefaultTtlSeconds ?? DEFAULT_C2D_TTL_SECONDS);
    if (packet.payload.length > MAX_C2D_BYTES) throw hubErrors.tooLarge(MAX_C2D_BYTES);
    this.counters.c2dMessages++;
    // A session that subscribed keeps QoS 1 messages in the broker while the device is away.
    if (this.broker.isSubscribed(deviceId, `devices/${deviceId}/messages/devicebound/#`)) {
      await this.broker.publishQueued(packet.topic, packet.payload);
    } else if (!this.c2d.hold(deviceId, packet)) {
      throw hubErrors.queueFull(deviceId);
    }
    return packet.messageId;
  }

  d2c(filter: { deviceId?: string; since?: number } = {}): D2cMessage[] {
    return this.d2cLog.list(filter);
  }

  /** Where the MQTT listener goes; set by startHub before the first startMqtt(). */
  mqttEndpoint: { host: string; port: number; credentials: { key: string; cert: string } } | undefined;
  /** 8883 as a network between device and hub leaves it: open, closed (refused) or silent (a firewall that drops). */
  private port8883: Port8883 = 'open';
  private readonly silent = new SilentListener();
  private down = false;

  /** Whether MQTT over WebSockets on 443 is served now (not while the hub is down). */
  get webSocketsUp(): boolean {
    return !this.down;
  }

  async startMqtt(): Promise<void> {
    if (!this.mqttEndpoint) throw hubErrors.unavailable('MQTT endpoint not configured');
    this.down = false;
    await this.apply8883();
  }

  /** "The hub is down": no new connections on 8883 or WebSockets, current ones dropped; sessions and state stay. */
  async stopMqtt(): Promise<void> {
    this.down = true;
    this.broker.dropWebSockets();
    await this.broker.closeListener();
  }

  /** Closes, silences or opens 8883 alone: WebSockets on 443 go on as they are. */
  async set8883(mode: Port8883): Promise<void> {
    this.port8883 = mode;
    if (!this.down) await this.apply8883();
  }

  get mode8883(): Port8883 {
    return this.port8883;
  }

  /** TCP connections the silent 8883 took (and never answered). */
  get silentConnections(): number {
    return this.silent.accepted;
  }

  private async apply8883(): Promise<void> {
    const { host, port, credentials } = this.mqttEndpoint!;
    if (this.port8883 === 'open') {
      await this.silent.close();
      await this.broker.listen(host, port, credentials, this.hostName);
      return;
    }
    await this.broker.closeListener();
    if (this.port8883 === 'silent') await this.silent.listen(host, port);
    else await this.silent.close();
  }

  async close(): Promise<void> {
    await this.silent.close();
    this.methods.cancelAll();
    this.d2cThrottle.close();
    await this.broker.close();
    await this.registry.flush();
  }
}

/** `If-Match`: absent or `*` matches anything; the SDK sends etags in double quotes. */
export function etagMatches(ifMatch: string | undefined, etag: string): boolean {
  if (ifMatch === undefined) return true;
  const value = ifMatch.trim().replace(/^"(.*)"$/, '$1');
  return value === '*' || value === etag;
}

function parsePayload(payload: Buffer): Json {
  if (payload.length === 0) return null;
  try {
    return JSON.parse(payload.toString('utf8')) as Json;
  } catch {
    // A device that answers with something other than JSON gets its text passed on.
    return payload.toString('utf8');
  }
}

