import { EventEmitter } from 'node:events';
import common from 'azure-iot-common';
import device, { type Twin } from 'azure-iot-device';
import securityTpm from 'azure-iot-security-tpm';
import { enableDesiredUpdates, onDesiredPatch } from '../azure-sdk/desired-updates.js';
import { useIdentityKeyHandle } from '../azure-sdk/identity-key-handle.js';
import { hubTransport } from '../azure-sdk/hub-transport.js';
import { sdkMqttPacket } from '../azure-sdk/sdk-modules.js';
import { setHubTokenTiming } from '../azure-sdk/token-clock.js';
import { dropTokenEventsUntilLive } from '../azure-sdk/token-events.js';
import { sendWholePacketsOverWebSockets } from '../azure-sdk/websocket-packets.js';
import { AgentError, describeError } from '../lib/errors.js';
import { withDeadline } from '../lib/deadline.js';
import type { Logger } from '../log/logger.js';
import type { ProxyTunnel } from '../network/proxy-agent.js';
import type { HubProtocol } from '../retry/hub-protocol.js';
import { Backoff, DEFAULT_BACKOFF } from '../retry/backoff.js';
import type { TpmClient } from '../tpm/tpm-client.js';
import { DesiredFeed } from '../twin/desired-feed.js';

// CommonJS packages: Node's ESM loader cannot always see their named exports.
const { errors, NoRetry } = common;
const { Client } = device;
const { TpmAuthenticationProvider, TpmSecurityClient } = securityTpm;
type Client = InstanceType<typeof Client>;

// The SDK loads its MQTT library (some 80 modules, ~50 ms of synchronous work) when the
// first client is built: loading it now, with the importing code, moves that stall out of
// the middle of connecting. mqtt-packet would also fill a cache of 65,536 two-byte buffers
// on the first packet it writes: ~6 MB of heap held for good (and a ~20 ms stall) to spare
// a 2-byte allocation per packet id; a device sends a few packets a second, so it is off.
sdkMqttPacket().writeToStream.cacheNumbers = false;

/** Where the session goes and as whom: the cached assignment's part that the hub needs. */
export interface HubTarget {
  assignedHub: string;
  deviceId: string;
  registrationId: string;
  /** The TPM handle of the key DPS issued for this assignment. */
  identityKeyHandle: number;
}

export interface HubSessionOptions {
  tpm: TpmClient;
  target: HubTarget;
  /** The CAs to trust, in PEM (agent/check/trust.ts: the system's plus tls.extraCaFile); Node's default when absent. */
  ca?: string;
  log: Logger;
  /** MQTT keep-alive: a dead link is noticed within about 1.5 times this. */
  keepAliveSeconds?: number;
  /** SAS token lifetime and how long before expiry it is renewed (Azure: 3600 and 900). */
  tokenLifetimeSeconds?: number;
  tokenRenewalMarginSeconds?: number;
  /** The proxy the hub is reached through (WebSockets only), when one applies. */
  tunnel?: ProxyTunnel;
  /** Milliseconds to add to the local clock when computing token expiry (the service clock's correction). */
  clockCorrectionMs?: () => number;
  /**
   * Called after every connect with the client, the full twin and the desired-property
   * feed (subscribed before the twin was fetched), before connect() resolves.
   */
  onConnected?: (client: Client, twin: Twin, desired: DesiredFeed) => Promise<void> | void;
}

export interface HubSessionEvents {
  /** A connection that had been established dropped (or its token could not be renewed). */
  lost: [reason: Error];
}

/** How one connect attempt travels: MQTT over TLS on 8883, or over WebSockets on 443; and how long it may take. */
export interface HubRoute {
  protocol: HubProtocol;
  /** undefined: the SDK's own limit (60 s). */
  timeoutMs?: number | undefined;
}

/** A connect attempt failed: refused by the hub (credentials, unknown or disabled device) or the hub was not reached. */
export class HubConnectError extends AgentError {
  static override readonly errorName: string = 'HubConnectError';

  constructor(readonly kind: 'refused' | 'unreachable', readonly hub: string, cause: unknown, readonly protocol: HubProtocol = 'mqtt') {
    super(kind === 'refused' ? `the hub ${hub} refused the device` : `the hub ${hub} could not be reached ${PROTOCOL_WORDS[protocol]}`, { cause });
  }
}

export const PROTOCOL_WORDS: Record<HubProtocol, string> = { mqtt: 'over MQTT on 8883', 'mqtt-ws': 'over MQTT over WebSockets on 443' };

export const DEFAULT_KEEPALIVE_SECONDS = 60;
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 3_600;
export const DEFAULT_TOKEN_RENEWAL_MARGIN_SECONDS = 900;
/** Twin GETs tried on one connection before it is given up (IoT Hub answers 429 when its twin reads throttle). */
const TWIN_GET_ATTEMPTS = 5;
/**
 * How long a dropped client gets to close. mqtt.js disconnects only once what is in flight
 * is acknowledged (the unsubscribes the SDK sends when its listeners go, a telemetry
 * message); on a link that has just died the acks never come and close() never settles.
 * The client is left to finish on its own: it cannot reconnect (NoRetry, no reconnect period).
 */
export const CLOSE_LIMIT_MS = 2_000;

/**
 * The device's session with its IoT Hub over MQTT, authenticated by the TPM. One connect
 * attempt at a time, each with a fresh client and a freshly signed token; whoever owns the
 * session decides when to try again (agent/retry/connection-policy.ts): the SDK's own
 * retry gives up after minutes and knows nothing of DPS, so it is switched off. Each
 * connect follows IoT Hub's reconnection flow: subscribe to desired-property updates, then
 * fetch the whole twin (retried on the same connection when throttled), so that nothing
 * changed while offline or in between is missed.
 */
export class HubSession extends EventEmitter<HubSessionEvents> {
  private client: Client | undefined;
  private readonly security: InstanceType<typeof TpmSecurityClient>;
  private auth: InstanceType<typeof TpmAuthenticationProvider> | undefined;
  private live = false;
  private route: HubRoute = { protocol: 'mqtt' };
  /** Fails the connect under way with why its client was dropped. */
  private abandon: ((reason: Error) => void) | undefined;

  constructor(private readonly options: HubSessionOptions) {
    super();
    this.security = new TpmSecurityClient(options.target.registrationId, options.tpm.sdkTpm());
  }

  get target(): HubTarget {
    return this.options.target;
  }

  get connected(): boolean {
    return this.live;
  }

  /** The protocol of the last connect attempt (the live one, while connected). */
  get protocol(): HubProtocol {
    return this.route.protocol;
  }

  /** The live SDK client, when connected. */
  get deviceClient(): Client | undefined {
    return this.live ? this.client : undefined;
  }

  /**
   * One attempt: open, fetch the twin, hand both to onConnected. Rejects with HubConnectError;
   * an attempt that has not connected within `route.timeoutMs` is given up as unreachable.
   */
  async connect(route: HubRoute = { protocol: 'mqtt' }): Promise<void> {
    const { log, target, tunnel } = this.options;
    this.route = route;
    await this.dropClient();
    useIdentityKeyHandle(target.identityKeyHandle);
    const client = this.newClient();
    this.client = client;
    // The SDK leaves an open() or a twin GET of a client closed meanwhile pending for good: a
    // stop (or the next connect) ends the attempt itself.
    const dropped = new Promise<never>((_, reject) => {
      this.abandon = reject;
    });
    dropped.catch(() => undefined);
    try {
      log.info('hub.connecting', { hub: target.assignedHub, deviceId: target.deviceId, protocol: route.protocol,
        ...(tunnel && route.protocol === 'mqtt-ws' ? { proxy: tunnel.proxy.display } : {}) });
      const { twin, desired } = await Promise.race([this.establish(client, route), dropped]);
      await this.options.onConnected?.(client, twin, desired);
      // Dropped while onConnected ran: fails with the reason it was dropped for.
      if (this.client !== client) await dropped;
      this.live = true;
    } catch (err) {
      if (this.client === client) await this.dropClient();
      const refused = isRefusal(err);
      const viaProxy = !refused && route.protocol === 'mqtt-ws' ? tunnel?.explain(err) : undefined;
      throw new HubConnectError(refused ? 'refused' : 'unreachable', target.assignedHub, viaProxy ?? err, route.protocol);
    }
  }

  /** Open, subscribe to desired-property updates, then fetch the whole twin. */
  private async establish(client: Client, route: HubRoute): Promise<{ twin: Twin; desired: DesiredFeed }> {
    await this.setOptions(client);
    await withTimeout(client.open(), route.timeoutMs, `no connection ${PROTOCOL_WORDS[route.protocol]} within ${(route.timeoutMs ?? 0) / 1000} s`);
    const desired = new DesiredFeed();
    onDesiredPatch(client, (patch) => desired.push(patch));
    await enableDesiredUpdates(client);
    return { twin: await this.fetchTwin(client), desired };
  }

  async stop(): Promise<void> {
    await this.dropClient();
  }

  /** The whole twin; a GET the hub refuses (429, a server error) is tried again on the same connection. */
  private async fetchTwin(client: Client): Promise<Twin> {
    const backoff = new Backoff(DEFAULT_BACKOFF);
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.getTwin();
      } catch (err) {
        // A stop or a newer connect has dropped this client.
        if (attempt >= TWIN_GET_ATTEMPTS || this.client !== client) throw err;
        const delay = backoff.next();
        this.options.log.warn('hub.twin_get_failed', { err, attempt, retryInMs: delay });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private newClient(): Client {
    const { target, log } = this.options;
    const auth = TpmAuthenticationProvider.fromTpmSecurityClient(target.deviceId, target.assignedHub, this.security);
    const webSockets = this.route.protocol === 'mqtt-ws';
    if (webSockets) sendWholePacketsOverWebSockets();
    // MqttWs: wss://{hub}:443/$iothub/websocket, subprotocol mqtt, the same CONNECT and SAS token as over 8883.
    const client = Client.fromAuthenticationProvider(auth, hubTransport(webSockets, this.options.ca));
    dropTokenEventsUntilLive(auth, () => this.client === client && this.live);
    setHubTokenTiming(auth, this.options.tokenLifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS,
      this.options.tokenRenewalMarginSeconds ?? DEFAULT_TOKEN_RENEWAL_MARGIN_SECONDS, this.options.clockCorrectionMs?.() ?? 0);
    // A failed renewal is emitted as 'error': without a listener it would end the process.
    auth.on('error', (err: Error) => {
      log.warn('hub.token_renewal_failed', { err });
      this.onLost(client, err);
    });
    this.auth = auth;
    client.setRetryPolicy(new NoRetry());
    client.on('error', (err: Error) => this.onLost(client, err));
    // The SDK emits a results.Disconnected, whose reason is the transport's error if there was one.
    client.on('disconnect', (result: { reason?: Error }) => this.onLost(client, result.reason ?? new Error('the hub closed the connection')));
    return client;
  }

  /**
   * Awaited before open(): the SDK may apply options after a round on the thread pool (a
   * `ca` option is first tried as a file name there), and an open() that did not wait
   * connected without them under load ("unable to verify the first certificate" when the CA
   * still travelled this way; the CAs now travel with the transport, hubTransport).
   */
  private async setOptions(client: Client): Promise<void> {
    await client.setOptions({
      keepalive: this.options.keepAliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
      // The SDK's documented option: mqtt.js hands it to the WebSocket as wsOptions.agent,
      // so a route over 8883 never goes through it.
      ...(this.options.tunnel ? { mqtt: { webSocketAgent: this.options.tunnel.agent } } : {}),
    });
  }

  /**
   * Only the current client's loss counts (a stop drops the client first), once. Before the
   * connection was up it fails the connect under way: the SDK would leave a twin GET on a
   * connection that dropped pending for good.
   */
  private onLost(client: Client, err: Error): void {
    if (this.client !== client) return;
    const wasLive = this.live;
    if (wasLive) this.options.log.warn('hub.disconnected', { hub: this.options.target.assignedHub, err });
    void this.dropClient(err);
    if (wasLive) this.emit('lost', err);
  }

  private async dropClient(reason = new Error('the session was stopped while connecting')): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.live = false;
    this.abandon?.(reason);
    this.abandon = undefined;
    if (!client) return;
    client.removeAllListeners();
    client.on('error', () => undefined);
    // Its provider's renewal timer would otherwise go on signing tokens with the TPM.
    this.auth?.stop();
    this.auth = undefined;
    const closed = await withDeadline(client.close().then(() => true, () => true), CLOSE_LIMIT_MS, () => false);
    if (!closed) this.options.log.debug('hub.close_abandoned', { hub: this.options.target.assignedHub, waitedMs: CLOSE_LIMIT_MS });
  }
}

/** `work`, or a rejection with `message` once `ms` have passed (no limit when undefined). */
function withTimeout<T>(work: Promise<T>, ms: number | undefined, message: string): Promise<T> {
  return ms === undefined ? work : withDeadline(work, ms, () => {
    throw new Error(message);
  });
}

/**
 * A CONNACK refusal: bad credentials (the key in the TPM is not the hub's, an expired
 * token) or an unknown or disabled device. The SDK labels every failed first connection
 * "Not authorized", even a refused TCP connection, so the broker's own words (mqtt.js:
 * "Connection refused: <reason>") decide.
 */
export function isRefusal(err: unknown): boolean {
  if (err instanceof errors.DeviceNotFoundError) return true;
  return /Connection refused: (Not authorized|Bad username or password|Identifier rejected)/.test(describeError(err));
}
