import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import common from 'azure-iot-common';
import device, { type Twin } from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import securityTpm from 'azure-iot-security-tpm';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { Backoff, DEFAULT_BACKOFF, type BackoffPolicy } from '../retry/backoff.js';
import type { TpmClient } from '../tpm/tpm-client.js';
import { DesiredFeed } from '../twin/desired-feed.js';
import { enableDesiredUpdates, onDesiredPatch, setTokenLifetimes } from './sdk-internals.js';

// CommonJS packages: Node's ESM loader cannot always see their named exports.
const { errors, NoRetry } = common;
const { Client } = device;
const { Mqtt } = deviceMqtt;
const { TpmAuthenticationProvider, TpmSecurityClient } = securityTpm;
type Client = InstanceType<typeof Client>;

// The SDK loads its MQTT library (some 80 modules, ~50 ms of synchronous work) when the
// first client is built, and mqtt-packet fills a cache of 65,536 buffers on the first
// packet it writes (~20 ms and a GC): both would stall the event loop in the middle of
// connecting. Doing both now, with the importing code, moves the cost to start-up.
const fromMqttBase = createRequire(createRequire(import.meta.url).resolve('azure-iot-mqtt-base'));
const fromMqtt = createRequire(fromMqttBase.resolve('mqtt'));
fromMqttBase('mqtt');
(fromMqtt('mqtt-packet') as { writeToStream(packet: object, stream: Writable): boolean })
  .writeToStream({ cmd: 'pingreq' }, new Writable({ write: (_chunk, _encoding, done) => done() }));
type TpmSecurityClient = InstanceType<typeof TpmSecurityClient>;

export interface HubSessionOptions {
  tpm: TpmClient;
  registrationId: string;
  assignedHub: string;
  deviceId: string;
  /** The CAs to trust, in PEM (agent/check/trust.ts: the system's plus tls.extraCaFile); Node's default when absent. */
  ca?: string;
  log: Logger;
  /** MQTT keep-alive: a dead link is noticed within about 1.5 times this. */
  keepAliveSeconds?: number;
  /** SAS token lifetime and how long before expiry it is renewed (Azure: 3600 and 900). */
  tokenLifetimeSeconds?: number;
  tokenRenewalMarginSeconds?: number;
  backoff?: BackoffPolicy;
  /** How long a connection must last before the reconnect backoff starts over (a hub that drops each new connection meets a growing delay). */
  stableAfterMs?: number;
  /**
   * Called after every (re)connect with the client, the full twin and the desired-property
   * feed (subscribed before the twin was fetched), before `connected` is emitted.
   */
  onConnected?: (client: Client, twin: Twin, desired: DesiredFeed) => Promise<void> | void;
}

export interface HubSessionEvents {
  connected: [];
  /** The link dropped or a connect failed; the session is retrying. */
  disconnected: [reason: Error];
  /** The hub refused the device's credentials or does not know it: retrying will not help, re-provisioning may. */
  rejected: [reason: Error];
}

export const DEFAULT_KEEPALIVE_SECONDS = 60;
export const DEFAULT_STABLE_AFTER_MS = 60_000;
/** Twin GETs tried on one connection before it is given up (IoT Hub answers 429 when its twin reads throttle). */
const TWIN_GET_ATTEMPTS = 5;

/**
 * The device's session with its IoT Hub over MQTT, authenticated by the TPM. It reconnects
 * forever with capped, jittered backoff (the SDK's own retry gives up after minutes, so it
 * is switched off); the backoff starts over only once a connection has lasted, so a hub
 * that closes every new connection (throttling, a used-up quota) is not stormed. After
 * every connect it follows IoT Hub's reconnection flow: subscribe to desired-property
 * updates, then fetch the whole twin (retried with backoff when throttled), so that
 * nothing changed while offline or in between is missed.
 */
export class HubSession extends EventEmitter<HubSessionEvents> {
  private client: Client | undefined;
  private readonly security: TpmSecurityClient;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private connecting = false;
  /** The current client's token provider, stopped with it. */
  private auth: InstanceType<typeof TpmAuthenticationProvider> | undefined;

  constructor(private readonly options: HubSessionOptions) {
    super();
    this.security = new TpmSecurityClient(options.registrationId, options.tpm.tpm);
    this.backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF);
  }

  get connected(): boolean {
    return this.client !== undefined && !this.connecting;
  }

  /** The live SDK client, when connected. */
  get deviceClient(): Client | undefined {
    return this.connected ? this.client : undefined;
  }

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.stableTimer);
    await this.dropClient();
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    const { log } = this.options;
    await this.dropClient();
    const client = this.newClient();
    this.client = client;
    try {
      log.info('hub.connecting', { hub: this.options.assignedHub, deviceId: this.options.deviceId });
      await client.open();
      const desired = new DesiredFeed();
      onDesiredPatch(client, (patch) => desired.push(patch));
      await enableDesiredUpdates(client);
      const twin = await this.fetchTwin(client);
      await this.options.onConnected?.(client, twin, desired);
      if (this.stopped || this.client !== client) return;
      this.connecting = false;
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => this.backoff.reset(), this.options.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS);
      this.stableTimer.unref();
      this.emit('connected');
    } catch (err) {
      this.connecting = false;
      if (this.client !== client || this.stopped) return;
      this.onFailure(asError(err));
    }
  }

  /** The whole twin; a GET the hub refuses (429, a server error) is tried again on the same connection. */
  private async fetchTwin(client: Client): Promise<Twin> {
    const backoff = new Backoff(this.options.backoff ?? DEFAULT_BACKOFF);
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.getTwin();
      } catch (err) {
        if (attempt >= TWIN_GET_ATTEMPTS || this.stopped || this.client !== client) throw err;
        const delay = backoff.next();
        this.options.log.warn('hub.twin_get_failed', { err, attempt, retryInMs: delay });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private newClient(): Client {
    const { assignedHub, deviceId, log } = this.options;
    const auth = TpmAuthenticationProvider.fromTpmSecurityClient(deviceId, assignedHub, this.security);
    setTokenLifetimes(auth, this.options.tokenLifetimeSeconds, this.options.tokenRenewalMarginSeconds);
    const client = Client.fromAuthenticationProvider(auth, Mqtt);
    // A failed renewal is emitted as 'error': without a listener it would end the process.
    // Only the current client's provider may start a reconnect.
    auth.on('error', (err: Error) => {
      log.warn('hub.token_renewal_failed', { err });
      if (this.client === client) this.onFailure(err);
    });
    this.auth = auth;
    client.setRetryPolicy(new NoRetry());
    void client.setOptions({
      keepalive: this.options.keepAliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
      ...(this.options.ca ? { ca: this.options.ca } : {}),
    });
    client.on('error', (err: Error) => this.onFailure(err));
    client.on('disconnect', (result?: { reason?: Error }) => {
      if (this.client === client && !this.connecting) this.onFailure(result?.reason ?? new Error('the hub closed the connection'));
    });
    return client;
  }

  private onFailure(err: Error): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    clearTimeout(this.stableTimer);
    if (isRejection(err)) {
      this.options.log.warn('hub.rejected', { hub: this.options.assignedHub, err });
      void this.dropClient();
      this.emit('rejected', err);
      return;
    }
    const delay = this.backoff.next();
    this.options.log.warn('hub.disconnected', { hub: this.options.assignedHub, err, retryInMs: delay });
    this.emit('disconnected', err);
    void this.dropClient();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, delay);
  }

  private async dropClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    client.removeAllListeners();
    client.on('error', () => undefined);
    // Its provider's renewal timer would otherwise go on signing tokens with the TPM.
    this.auth?.stop();
    this.auth = undefined;
    await client.close().catch(() => undefined);
  }
}

/**
 * A CONNACK refusal: bad credentials (the key in the TPM is not the hub's) or an unknown
 * device. The SDK labels every failed first connection "Not authorized", even a refused TCP
 * connection, so the broker's own words (mqtt.js: "Connection refused: <reason>") decide.
 */
function isRejection(err: Error): boolean {
  if (err instanceof errors.DeviceNotFoundError) return true;
  return /Connection refused: (Not authorized|Bad username or password|Identifier rejected)/.test(describeError(err));
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
