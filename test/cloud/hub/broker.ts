import { Aedes, type Client, type PublishPacket } from 'aedes';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { listenerTlsOptions } from '../tls.js';
import { c2dExpired } from './c2d.js';
import type { Admission } from './d2c-throttle.js';
import { mayDeliverTo, mayDeviceSubscribe, parseDevicePublish, TopicError, type DeviceRequest } from './topics.js';
import type { DeviceAuthResult } from './device-auth.js';
import { closeServer } from './close-server.js';

/**
 * The MQTT side of the hub: an aedes broker behind a TLS listener on 8883 and behind the
 * WebSocket endpoint on 443 (hub.ts hands each WebSocket over as a stream). It owns
 * the wire (sessions, QoS, persistent subscriptions) and IoT Hub's access rules;
 * what requests mean is the hub's business, handed over through `onRequest`.
 */
export interface BrokerHooks {
  authenticate(clientId: string, username: string | undefined, password: Buffer | undefined): DeviceAuthResult;
  /** A reason to cut every new connection before CONNACK (a used-up daily quota), or undefined. */
  refuseConnections(): string | undefined;
  /** The D2C throttle's verdict on one device-to-cloud send of `bytes` on `connection`. */
  admitTelemetry(connection: object, bytes: number, verdict: (admission: Admission) => void): void;
  /** A connection closed: sends it has waiting in the throttle go with it. */
  onConnectionClosed(connection: object): void;
  onRequest(deviceId: string, request: DeviceRequest, payload: Buffer, flags: { retain: boolean }): void;
  onConnect(deviceId: string): void;
  onDisconnect(deviceId: string): void;
  onRefused(deviceId: string, reason: string): void;
  /** Called once a device's subscriptions changed, e.g. so waiting method calls can go. */
  onSubscribed(deviceId: string): void;
}

/** IoT Hub's cap on a device-to-cloud message, body and properties together (and so on any packet a device sends). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** "A device can only subscribe to five topics at a time" (Microsoft Learn, IoT Hub MQTT support). */
export const MAX_SUBSCRIPTIONS = 5;
/**
 * How long after refusing a send (429, a used-up quota) the hub closes the connection: time
 * for the PUBACKs of the sends it did accept to leave, so that none of those is sent twice.
 */
const CLOSE_AFTER_REFUSAL_MS = 50;
/** NOT_AUTHORIZED: what IoT Hub answers to every credential failure. */
const CONNACK_NOT_AUTHORIZED = 5;
/** setTimeout's ceiling; longer tokens are re-checked when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class HubBroker {
  private server: tls.Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** MQTT over WebSockets: the same broker, auth and topics, another way in. */
  private readonly webSockets = new Set<Duplex>();
  private readonly online = new Map<string, Client>();
  /** Per client id, as IoT Hub keeps them across reconnects with clean=false. */
  private readonly subscriptions = new Map<string, Set<string>>();
  private readonly expiries = new WeakMap<Client, number>();
  /** Connections the hub is closing after a refused send: nothing more they send is taken. */
  private readonly closing = new WeakSet<Client>();
  private readonly expiryTimers = new Map<Client, NodeJS.Timeout>();

  private constructor(private readonly aedes: Aedes, private readonly hooks: BrokerHooks) {}

  static async create(hooks: BrokerHooks): Promise<HubBroker> {
    const aedes = await Aedes.createBroker({ maxClientsIdLength: 128, heartbeatInterval: 60_000 });
    const broker = new HubBroker(aedes, hooks);
    broker.wire();
    return broker;
  }

  private wire(): void {
    const { aedes, hooks } = this;
    aedes.authenticate = (client, username, password, done) => {
      const cut = hooks.refuseConnections();
      if (cut !== undefined) {
        // What devices report: the connection is reset, no CONNACK says why.
        hooks.onRefused(client.id, cut);
        client.conn.destroy();
        return done(Object.assign(new Error(cut), { returnCode: 3 }), false);
      }
      const result = hooks.authenticate(client.id, username, password);
      if (result.ok) {
        this.expiries.set(client, result.expiry);
        done(null, true);
        return;
      }
      hooks.onRefused(client.id, result.reason);
      const error = Object.assign(new Error(result.reason), { returnCode: CONNACK_NOT_AUTHORIZED });
      done(error, false);
    };
    aedes.authorizePublish = (client, packet, done) => {
      if (!client) return done(null);
      if (this.closing.has(client)) return; // neither acknowledged nor kept: the device sends it again
      let request: DeviceRequest;
      try {
        if (packet.qos === 2) throw new TopicError('IoT Hub does not support QoS 2');
        request = parseDevicePublish(client.id, packet.topic);
        const bytes = packet.payload.length + (request.kind === 'telemetry' ? request.propertyBytes : 0);
        if (bytes > MAX_MESSAGE_BYTES) throw new TopicError(`message of ${bytes} bytes (body and properties) is over ${MAX_MESSAGE_BYTES}`);
      } catch (err) {
        // IoT Hub closes the connection of a device that publishes where it may not.
        hooks.onRefused(client.id, (err as Error).message);
        return done(err as Error);
      }
      // IoT Hub keeps no retained messages; it tells the back end with an mqtt-retain property instead.
      const flags = { retain: packet.retain };
      packet.retain = false;
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const handle = () => {
        try {
          hooks.onRequest(client.id, request, payload, flags);
        } catch (err) {
          hooks.onRefused(client.id, `request failed: ${(err as Error).message}`);
        }
        done(null);
      };
      if (request.kind !== 'telemetry') return handle();
      // Traffic shaping: a queued send is acknowledged (PUBACK) only once the hub admits it.
      hooks.admitTelemetry(client, payload.length + request.propertyBytes, (admission) => {
        if (this.closing.has(client)) return;
        if (admission === 'accepted') return handle();
        const reason = admission === 'quota' ? 'the daily message quota is used up (403002)' : 'throttled (429): the D2C backlog is full';
        hooks.onRefused(client.id, reason);
        // 429 and 403002 close an MQTT connection: MQTT has no way to refuse one message.
        this.closing.add(client);
        hooks.onConnectionClosed(client);
        setTimeout(() => client.close(), CLOSE_AFTER_REFUSAL_MS).unref();
      });
    };
    aedes.authorizeSubscribe = (client, subscription, done) => {
      if (!mayDeviceSubscribe(client.id, subscription.topic)) {
        hooks.onRefused(client.id, `may not subscribe to ${subscription.topic}`);
        return done(new Error(`device ${client.id} may not subscribe to ${subscription.topic}`));
      }
      const held = this.subscriptions.get(client.id);
      if (held && !held.has(subscription.topic) && held.size >= MAX_SUBSCRIPTIONS) {
        hooks.onRefused(client.id, `more than ${MAX_SUBSCRIPTIONS} subscriptions`);
        return done(new Error(`device ${client.id} may hold at most ${MAX_SUBSCRIPTIONS} subscriptions`));
      }
      // IoT Hub grants at most QoS 1.
      done(null, { ...subscription, qos: Math.min(subscription.qos, 1) as 0 | 1 });
    };
    // Also for messages a persistent session kept while the device was away: an expired C2D message is dropped.
    aedes.authorizeForward = (client, packet) => (mayDeliverTo(client.id, packet.topic) && !c2dExpired(packet.topic) ? packet : null);

    aedes.on('client', (client) => {
      if (client.clean) this.subscriptions.delete(client.id);
    });
    aedes.on('clientReady', (client) => {
      this.online.set(client.id, client);
      this.armExpiry(client);
      hooks.onConnect(client.id);
    });
    aedes.on('clientDisconnect', (client) => {
      this.disarmExpiry(client);
      hooks.onConnectionClosed(client);
      if (this.online.get(client.id) === client) {
        this.online.delete(client.id);
        hooks.onDisconnect(client.id);
      }
    });
    aedes.on('subscribe', (subs, client) => {
      const set = this.subscriptions.get(client.id) ?? new Set<string>();
      for (const sub of subs) set.add(sub.topic);
      this.subscriptions.set(client.id, set);
      hooks.onSubscribed(client.id);
    });
    aedes.on('unsubscribe', (topics, client) => {
      const set = this.subscriptions.get(client.id);
      for (const topic of topics) set?.delete(topic);
    });
  }

  /** IoT Hub drops a connection when the token it was opened with expires. */
  private armExpiry(client: Client): void {
    const expiry = this.expiries.get(client);
    if (expiry === undefined) return;
    const ms = expiry * 1000 - Date.now();
    const timer = setTimeout(() => {
      this.expiryTimers.delete(client);
      if (expiry * 1000 <= Date.now()) client.close();
      else this.armExpiry(client);
    }, Math.max(0, Math.min(ms, MAX_TIMER_MS)));
    timer.unref();
    this.expiryTimers.set(client, timer);
  }

  private disarmExpiry(client: Client): void {
    const timer = this.expiryTimers.get(client);
    if (timer) clearTimeout(timer);
    this.expiryTimers.delete(client);
  }

  /** Listens on host:port for devices that reach the hub as `hostName` (which they must name with SNI, unless it is an address). */
  async listen(host: string, port: number, credentials: { key: string; cert: string }, hostName: string): Promise<void> {
    if (this.server) return;
    const server = tls.createServer(listenerTlsOptions(credentials, hostName), (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      this.aedes.handle(socket);
    });
    // A client that fails the handshake (e.g. it does not trust the CA) is its own problem, not the hub's.
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** One device connection over WebSockets (its stream of MQTT bytes). */
  handleWebSocket(stream: Duplex): void {
    this.webSockets.add(stream);
    stream.once('close', () => this.webSockets.delete(stream));
    this.aedes.handle(stream);
  }

  /** Drops the device connections over WebSockets. */
  dropWebSockets(): void {
    for (const stream of this.webSockets) stream.destroy();
  }

  /** Stops accepting on 8883 and drops the connections that came that way (sessions stay, as on a hub outage). */
  async closeListener(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeServer(server, this.sockets);
  }

  get listening(): boolean {
    return this.server !== undefined;
  }

  isOnline(deviceId: string): boolean {
    return this.online.has(deviceId);
  }

  onlineCount(): number {
    return this.online.size;
  }

  isSubscribed(deviceId: string, filter: string): boolean {
    return this.subscriptions.get(deviceId)?.has(filter) ?? false;
  }

  /** Sends to one connected device only (the $iothub topics are shared names, so no broadcast). */
  sendToDevice(deviceId: string, topic: string, payload: Buffer | string): boolean {
    const client = this.online.get(deviceId);
    if (!client) return false;
    const packet: PublishPacket = { cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false };
    client.publish(packet, () => undefined);
    return true;
  }

  /** Drops a device's connection, e.g. when its identity was deleted. */
  disconnect(deviceId: string): void {
    this.online.get(deviceId)?.close();
  }

  /** QoS 1 through the broker, so a persistent session keeps it while the device is away. */
  publishQueued(topic: string, payload: Buffer): Promise<void> {
    const packet: PublishPacket = { cmd: 'publish', topic, payload, qos: 1, dup: false, retain: false };
    return new Promise((resolve, reject) => this.aedes.publish(packet, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {
    await this.closeListener();
    this.dropWebSockets();
    for (const timer of this.expiryTimers.values()) clearTimeout(timer);
    this.expiryTimers.clear();
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
  }
}
