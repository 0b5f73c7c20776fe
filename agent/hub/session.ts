import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import common from 'azure-iot-common';
import device, { type Twin } from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import securityTpm from 'azure-iot-security-tpm';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { Backoff, DEFAULT_BACKOFF, type BackoffPolicy } from '../retry/backoff.js';
import type { TpmClient } from '../tpm/tpm-client.js';

// CommonJS packages: Node's ESM loader cannot always see their named exports.
const { errors, NoRetry } = common;
const { Client } = device;
const { Mqtt } = deviceMqtt;
const { TpmAuthenticationProvider, TpmSecurityClient } = securityTpm;
type Client = InstanceType<typeof Client>;

// The SDK loads its MQTT library (some 80 modules, ~50 ms of synchronous work) when the
// first client is built: loading it now, with the importing code, moves that stall out of
// the middle of connecting. mqtt-packet would also fill a cache of 65,536 two-byte buffers
// on the first packet it writes: ~6 MB of heap held for good (and a ~20 ms stall) to spare
// a 2-byte allocation per packet id; a device sends a few packets a second, so it is off.
const fromMqttBase = createRequire(createRequire(import.meta.url).resolve('azure-iot-mqtt-base'));
const fromMqtt = createRequire(fromMqttBase.resolve('mqtt'));
fromMqttBase('mqtt');
(fromMqtt('mqtt-packet') as { writeToStream: { cacheNumbers: boolean } }).writeToStream.cacheNumbers = false;
type TpmSecurityClient = InstanceType<typeof TpmSecurityClient>;

export interface HubSessionOptions {
  tpm: TpmClient;
  registrationId: string;
  assignedHub: string;
  deviceId: string;
  /** PEM of a private CA to trust besides the system's. */
  ca?: string;
  log: Logger;
  /** MQTT keep-alive: a dead link is noticed within about 1.5 times this. */
  keepAliveSeconds?: number;
  /** SAS token lifetime and how long before expiry it is renewed (Azure: 3600 and 900). */
  tokenLifetimeSeconds?: number;
  tokenRenewalMarginSeconds?: number;
  backoff?: BackoffPolicy;
  /** Called after every (re)connect with the client and the full twin, before `connected` is emitted. */
  onConnected?: (client: Client, twin: Twin) => Promise<void> | void;
}

export interface HubSessionEvents {
  connected: [];
  /** The link dropped or a connect failed; the session is retrying. */
  disconnected: [reason: Error];
  /** The hub refused the device's credentials or does not know it: retrying will not help, re-provisioning may. */
  rejected: [reason: Error];
}

export const DEFAULT_KEEPALIVE_SECONDS = 60;

/**
 * The device's session with its IoT Hub over MQTT, authenticated by the TPM. It reconnects
 * forever with capped, jittered backoff (the SDK's own retry gives up after minutes, so it
 * is switched off), and fetches the whole twin after every connect so that desired
 * properties changed while offline are not missed.
 */
export class HubSession extends EventEmitter<HubSessionEvents> {
  private client: Client | undefined;
  private readonly security: TpmSecurityClient;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
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
      const twin = await client.getTwin();
      await this.options.onConnected?.(client, twin);
      if (this.stopped || this.client !== client) return;
      this.connecting = false;
      this.backoff.reset();
      this.emit('connected');
    } catch (err) {
      this.connecting = false;
      if (this.client !== client || this.stopped) return;
      this.onFailure(asError(err));
    }
  }

  private newClient(): Client {
    const { assignedHub, deviceId, log } = this.options;
    const auth = TpmAuthenticationProvider.fromTpmSecurityClient(deviceId, assignedHub, this.security);
    // The SDK exposes no setter for TPM token lifetimes; these are its documented defaults' fields.
    const lifetimes = auth as unknown as { _tokenValidTimeInSeconds: number; _tokenRenewalMarginInSeconds: number };
    if (this.options.tokenLifetimeSeconds) lifetimes._tokenValidTimeInSeconds = this.options.tokenLifetimeSeconds;
    if (this.options.tokenRenewalMarginSeconds) lifetimes._tokenRenewalMarginInSeconds = this.options.tokenRenewalMarginSeconds;
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
