import { Aedes, type AuthenticateError, type Client, type PublishPacket } from 'aedes';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { mayDeliverTo, mayDeviceSubscribe, parseDevicePublish, TopicError, type DeviceRequest } from './topics.js';
import type { DeviceAuthResult } from './device-auth.js';

/**
 * The MQTT side of the hub: an aedes broker behind a TLS listener on 8883. It owns
 * the wire (sessions, QoS, persistent subscriptions) and IoT Hub's access rules;
 * what requests mean is the hub's business, handed over through `onRequest`.
 */
export interface BrokerHooks {
  authenticate(clientId: string, username: string | undefined, password: Buffer | undefined): DeviceAuthResult;
  onRequest(deviceId: string, request: DeviceRequest, payload: Buffer): void;
  onConnect(deviceId: string): void;
  onDisconnect(deviceId: string): void;
  onRefused(deviceId: string, reason: string): void;
  /** Called once a device's subscriptions changed, e.g. so waiting method calls can go. */
  onSubscribed(deviceId: string): void;
}

/** IoT Hub's cap on a device-to-cloud message (and so on any packet a device sends). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** NOT_AUTHORIZED: what IoT Hub answers to every credential failure. */
const CONNACK_NOT_AUTHORIZED = 5;
/** setTimeout's ceiling; longer tokens are re-checked when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class HubBroker {
  private server: tls.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly online = new Map<string, Client>();
  /** Per client id, as IoT Hub keeps them across reconnects with clean=false. */
  private readonly subscriptions = new Map<string, Set<string>>();
  private readonly expiries = new WeakMap<Client, number>();
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
      const result = hooks.authenticate(client.id, username, password);
      if (result.ok) {
        this.expiries.set(client, result.expiry);
        done(null, true);
        return;
      }
      hooks.onRefused(client.id, result.reason);
      const error = Object.assign(new Error(result.reason), { returnCode: CONNACK_NOT_AUTHORIZED }) as AuthenticateError;
      done(error, false);
    };
    aedes.authorizePublish = (client, packet, done) => {
      if (!client) return done(null);
      let request: DeviceRequest;
      try {
        if (packet.qos === 2) throw new TopicError('IoT Hub does not support QoS 2');
        if (packet.payload.length > MAX_MESSAGE_BYTES) throw new TopicError(`message of ${packet.payload.length} bytes is over ${MAX_MESSAGE_BYTES}`);
        request = parseDevicePublish(client.id, packet.topic);
      } catch (err) {
        // IoT Hub closes the connection of a device that publishes where it may not.
        hooks.onRefused(client.id, (err as Error).message);
        return done(err as Error);
      }
      packet.retain = false; // IoT Hub has no retained messages
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      try {
        hooks.onRequest(client.id, request, payload);
      } catch (err) {
        hooks.onRefused(client.id, `request failed: ${(err as Error).message}`);
      }
      done(null);
    };
    aedes.authorizeSubscribe = (client, subscription, done) => {
      if (!mayDeviceSubscribe(client.id, subscription.topic)) {
        hooks.onRefused(client.id, `may not subscribe to ${subscription.topic}`);
        return done(new Error(`device ${client.id} may not subscribe to ${subscription.topic}`));
      }
      // IoT Hub grants at most QoS 1.
      done(null, { ...subscription, qos: Math.min(subscription.qos, 1) as 0 | 1 });
    };
    aedes.authorizeForward = (client, packet) => (mayDeliverTo(client.id, packet.topic) ? packet : null);

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

  async listen(host: string, port: number, credentials: { key: string; cert: string }): Promise<void> {
    if (this.server) return;
    const server = tls.createServer({ key: credentials.key, cert: credentials.cert, minVersion: 'TLSv1.2' }, (socket) => {
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

  /** Stops accepting and drops every device connection (sessions stay, as on a hub outage). */
  async closeListener(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
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
    for (const timer of this.expiryTimers.values()) clearTimeout(timer);
    this.expiryTimers.clear();
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
  }
}
