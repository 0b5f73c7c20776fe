import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Twin } from 'azure-iot-device';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { DeviceFeatures, type FeatureHooks } from '../../agent/daemon/device-features.js';
import { HubSession } from '../../agent/hub/session.js';
import { Logger } from '../../agent/log/logger.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import type { D2cMessage } from '../cloud/hub/d2c-log.js';
import type { LocalHub } from '../cloud/hub/hub.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { invokeMethod, type MethodAnswer } from './direct-method.js';
import { isObject, parseObject } from './json.js';
import { randomLoopbackAddress } from './ports.js';
import { SwtpmInstance } from './swtpm.js';
import { activateHubKey, clientFor } from './tpm.js';

/**
 * DeviceFeatures on a live hub session, in the test process: the local cloud (DPS and one
 * hub, each on a loopback address of its own with Azure's ports 443 and 8883: root), a real
 * swtpm holding a hub key as DPS would hand it over (activateHubKey: DPS itself would cost
 * three seconds of polling per file, and Stryker starts each file again for every mutant),
 * and the unmodified azure-iothub clients as the caller. Every board is a device of its own
 * on that hub, registered with that key.
 */
interface Bench {
  cloud: LocalCloud;
  swtpm: SwtpmInstance;
  tpm: TpmClient;
  key: Buffer;
  service: ReturnType<typeof serviceClients>;
  dir: string;
}

let started: Promise<Bench> | undefined;
const boards: ConnectedBoard[] = [];
const stateDirs = new Set<string>();

function bench(): Promise<Bench> {
  started ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-features-cloud-'));
    const [cloud, swtpm] = await Promise.all([
      startCloud({ dir, dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()], allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    const tpm = clientFor(swtpm.transport);
    const hub = cloud.hubs[0]!;
    const key = await activateHubKey(tpm);
    return { cloud, swtpm, tpm, key, service: serviceClients(hub.serviceConnectionString, cloud.ca), dir };
  })();
  return started;
}

/** The file's TPM client, provisioned with the hub's identity key. */
export async function benchTpm(): Promise<TpmClient> {
  return (await bench()).tpm;
}

/** Ends every board of the test: its features and its session. For afterEach. */
export async function stopBoards(): Promise<void> {
  for (const board of boards.splice(0)) await board.stop();
  for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
  stateDirs.clear();
  if (started) {
    const { cloud } = await started;
    cloud.hubs[0]!.faults.clear();
    await cloud.hubs[0]!.startMqtt();
  }
}

/** Ends the file's cloud and swtpm. For afterAll. */
export async function stopBench(): Promise<void> {
  if (!started) return;
  const { cloud, swtpm, tpm, dir } = await started;
  started = undefined;
  await tpm.close();
  await cloud.stop();
  await swtpm.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** A directory for a board's state (or a test's files), removed after the test. */
export function scratchDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-features-state-'));
  stateDirs.add(dir);
  return dir;
}

export interface BoardOptions {
  /** Changes to the agent config (defaults with state in a temporary directory). */
  config?: (config: AgentConfig) => void;
  /** Hooks the test replaces. */
  hooks?: Partial<FeatureHooks>;
  /** The state directory of an earlier board: the same device after a restart. */
  stateDir?: string;
  /** The device id of an earlier board. */
  deviceId?: string;
}

/**
 * One device's features as the daemon runs them: created and started, attached to a hub
 * session at every connect and detached when the session reports the link lost.
 */
export class ConnectedBoard {
  readonly restarts: number[] = [];
  readonly reprovisions: number[] = [];
  /** The SDK's twin of the latest connect. */
  twin: Twin | undefined;
  private constructor(
    readonly features: DeviceFeatures,
    readonly session: HubSession,
    readonly deviceId: string,
    readonly config: AgentConfig,
    readonly lines: string[],
    readonly hub: LocalHub,
    private readonly service: Bench['service'],
  ) {}

  /** A board, started but not connected yet (see connect). */
  static async create(options: BoardOptions = {}): Promise<ConnectedBoard> {
    const { cloud, tpm, key, service } = await bench();
    const hub = cloud.hubs[0]!;
    const deviceId = options.deviceId ?? `features-${randomBytes(4).toString('hex')}`;
    if (!options.deviceId) await hub.registerDevice({ deviceId, registrationId: deviceId, primaryKey: key });
    const stateDir = options.stateDir ?? scratchDir();
    const config: AgentConfig = { ...structuredClone(DEFAULTS), stateDir, runtimeDir: path.join(stateDir, 'run') };
    options.config?.(config);
    const lines: string[] = [];
    const log = new Logger({ journal: false, level: config.log.level, write: (line) => lines.push(line.replace(/^time=\S+ /, '').trimEnd()) });
    const made: { board?: ConnectedBoard } = {};
    const features = await DeviceFeatures.create({
      config, log, agentVersion: '9.9.9',
      identity: () => ({ registrationId: deviceId, deviceId, assignedHub: hub.hostName, state: 'ready', since: '2026-12-01T08:00:00.000Z' }),
      tpmFacts: () => Promise.resolve({ manufacturer: 'IBM', firmware: '1.2' }),
      tpm: () => tpm,
      endpoints: () => [{ host: hub.address, port: 8883 }],
      reprovision: () => { made.board?.reprovisions.push(Date.now()); return Promise.resolve(); },
      restart: () => made.board?.restarts.push(Date.now()),
      hardeningSite: { root: path.join(stateDir, 'hardening-root'), netns: 'iotagent-test-nonexistent', backend: 'nft' },
      reboot: undefined,
      supportBundle: () => Promise.reject(new Error('no support bundle in these tests')),
      ...options.hooks,
    });
    const target = { assignedHub: hub.hostName, deviceId, registrationId: deviceId, identityKeyHandle: 0x81000100 };
    const session = new HubSession({
      tpm, target, ca: cloud.ca, log: log.child({ component: 'hub' }), keepAliveSeconds: 5,
      onConnected: (client, twin, desired) => {
        if (made.board) made.board.twin = twin;
        return features.onConnected(client, twin, desired);
      },
    });
    session.on('lost', () => features.detach());
    const board = new ConnectedBoard(features, session, deviceId, config, lines, hub, service);
    made.board = board;
    boards.push(board);
    features.start();
    return board;
  }

  /** A board that is connected to the hub, every feature attached. */
  static async connected(options: BoardOptions = {}): Promise<ConnectedBoard> {
    const board = await ConnectedBoard.create(options);
    await board.session.connect();
    return board;
  }

  /** What the daemon does after a link loss: every feature detached, then a new connect. */
  async reconnect(): Promise<void> {
    this.features.detach();
    await this.session.connect();
  }

  /** A direct method through azure-iothub's Client.invokeDeviceMethod. */
  invoke(methodName: string, payload?: unknown): Promise<MethodAnswer> {
    return invokeMethod(this.service.client, this.deviceId, { methodName, payload, responseTimeoutInSeconds: 15, connectTimeoutInSeconds: 10 });
  }

  /** A C2D message with a JSON envelope (or any other body). */
  sendC2d(data: string | object, messageId?: string): Promise<string> {
    const body = typeof data === 'string' ? data : JSON.stringify(data);
    return this.hub.sendC2d(this.deviceId, { data: body, ...(messageId ? { messageId } : {}) });
  }

  /** D2C messages the hub received from this device, of one kind (iot-agent-message) or all. */
  d2c(kind?: string): D2cMessage[] {
    return this.hub.d2c({ deviceId: this.deviceId }).filter((m) => kind === undefined || m.properties['iot-agent-message'] === kind);
  }

  /** The bodies of the command-result messages for one correlation id. */
  results(correlationId: string): Record<string, unknown>[] {
    return this.d2c('command-result').filter((m) => m.systemProperties.cid === correlationId).map((m) => parseObject(m.body.toString('utf8'), 'a command result'));
  }

  /** The twin's reported properties, through the service registry. */
  async reported(): Promise<Record<string, unknown>> {
    const { responseBody } = await this.service.registry.getTwin(this.deviceId);
    const reported = (responseBody as unknown as { properties: { reported: unknown } }).properties.reported;
    if (!isObject(reported)) throw new Error(`a twin without reported properties: ${JSON.stringify(responseBody)}`);
    return reported;
  }

  /** One reported property once `ready` says it is there as wanted (polled through the service registry). */
  async reportedWhen(key: string, ready: (value: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      last = (await this.reported())[key];
      if (isObject(last) && ready(last)) return last;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    throw new Error(`reported ${key} not as wanted within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
  }

  /** A desired-properties patch through the service registry. */
  async setDesired(desired: Record<string, unknown>): Promise<void> {
    const { responseBody } = await this.service.registry.getTwin(this.deviceId);
    await this.service.registry.updateTwin(this.deviceId, { properties: { desired } }, (responseBody as unknown as { etag: string }).etag);
  }

  /** Log lines with this event. */
  events(event: string): string[] {
    return this.lines.filter((l) => l.includes(` event=${event}`) || l.startsWith(`event=${event}`));
  }

  async stop(): Promise<void> {
    await this.session.stop();
    await this.features.stop();
  }
}
