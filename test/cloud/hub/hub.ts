import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import type { HubDeviceRegistration, LinkedHub } from '../contracts.js';
import { JsonStore } from '../json-store.js';
import { ensureServerCredentials, listenerTlsOptions, type ServerCredentials } from '../tls.js';
import type { C2dMessage } from './c2d.js';
import type { D2cMessage } from './d2c-log.js';
import type { HubCounters } from './counters.js';
import type { FileUploads } from '../files/file-uploads.js';
import { HubCore, type HubBehaviour } from './hub-core.js';
import type { HubFaults } from './faults.js';
import { DeviceRegistry } from './registry.js';
import { serviceHandler } from './service-api.js';
import type { Port8883 } from './silent-listener.js';
import { packetStream } from './websocket-stream.js';
import { isJsonObject } from './twin.js';

/**
 * The local IoT Hub: MQTT over TLS on `address:8883` for devices, and on `address:443`
 * HTTPS for the service SDK and the admin API and MQTT over WebSockets for devices
 * (`wss://{hub}/$iothub/websocket`, subprotocol `mqtt`), state in `stateDir`.
 */
export const WEBSOCKET_PATH = '/$iothub/websocket';

export interface HubOptions {
  /** A loopback address of its own (see test/support/ports.ts randomLoopbackAddress). */
  address: string;
  stateDir: string;
  /**
   * The name devices and services use; defaults to `address` (the certificate carries an IP
   * SAN). A DNS name makes the hub require SNI for it, as IoT Hub does; clients then need a
   * hosts entry or resolver for the name (test/support/hosts.ts).
   */
  hostName?: string;
  /** Limits and knobs: D2C rate, backlog and daily quota, C2D time to live, re-enabling on registration. */
  behaviour?: HubBehaviour;
  /** The iothubowner policy key (base64); generated on first start and kept in stateDir otherwise. */
  policyKey?: string;
  /** Where the test CA and server certificate live; defaults to `<stateDir>/tls`. */
  tlsDir?: string;
  /** Certificates made elsewhere (one CA for the whole local cloud); made in tlsDir otherwise. */
  tls?: ServerCredentials;
  mqttPort?: number;
  httpsPort?: number;
  log?: (line: string) => void;
  /** Device file uploads into blob storage (files/); without it the hub has no storage linked. */
  files?: FileUploads;
  /** 8883 as the device's network leaves it (default open); WebSockets on 443 are served either way. */
  port8883?: Port8883;
}

export interface LocalHub extends LinkedHub {
  readonly hostName: string;
  readonly address: string;
  /** PEM of the test CA that clients must trust, and its file. */
  readonly ca: string;
  readonly caCertPath: string;
  readonly mqttPort: number;
  readonly httpsPort: number;
  readonly serviceConnectionString: string;
  /** A software-key device's connection string, for tests and simulated devices. */
  deviceConnectionString(deviceId: string): string;
  registerDevice(registration: HubDeviceRegistration): Promise<void>;
  d2c(filter?: { deviceId?: string; since?: number }): D2cMessage[];
  readonly counters: Readonly<HubCounters>;
  /** Twin throttling on demand. */
  readonly faults: HubFaults;
  /** Replaces the hub's limits and knobs. */
  configure(behaviour: HubBehaviour): void;
  sendC2d(deviceId: string, message: C2dMessage): Promise<string>;
  /** The hub down (8883 and WebSockets) and up again. */
  stopMqtt(): Promise<void>;
  startMqtt(): Promise<void>;
  /** 8883 alone: open, closed (connections refused) or silent (taken, never answered). */
  set8883(mode: Port8883): Promise<void>;
  /** TCP connections a silent 8883 took. */
  readonly silent8883Connections: number;
  /** Devices that connected over WebSockets on 443, in all. */
  readonly webSocketConnections: number;
  stop(): Promise<void>;
  /** The hub's internals, for the benchmark and tests that look inside. */
  readonly core: HubCore;
}

export const POLICY_NAME = 'iothubowner';

export async function startHub(options: HubOptions): Promise<LocalHub> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[hub] ${line}\n`));
  const hostName = options.hostName ?? options.address;
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  const tlsDir = options.tlsDir ?? path.join(options.stateDir, 'tls');
  const credentials = options.tls ?? await ensureServerCredentials(tlsDir, [hostName, options.address]);
  const policyKey = loadPolicyKey(options.stateDir, options.policyKey);
  const registry = DeviceRegistry.open(options.stateDir);
  const core = await HubCore.create(hostName, registry, log);
  core.configure(options.behaviour ?? {});

  const mqttPort = options.mqttPort ?? 8883;
  core.mqttEndpoint = { host: options.address, port: mqttPort, credentials };
  const httpsServer = https.createServer(listenerTlsOptions(credentials, hostName),
    serviceHandler(core, new Map([[POLICY_NAME, Buffer.from(policyKey, 'base64')]]), log, options.files));
  httpsServer.on('tlsClientError', () => undefined);
  const webSockets = serveWebSockets(httpsServer, core);
  try {
    await core.set8883(options.port8883 ?? 'open');
    await core.startMqtt();
    await listen(httpsServer, options.address, options.httpsPort ?? 443);
  } catch (err) {
    httpsServer.close();
    await core.close();
    throw err;
  }
  const httpsPort = (httpsServer.address() as AddressInfo).port;

  let stopped = false;
  return {
    hostName,
    address: options.address,
    ca: credentials.ca,
    caCertPath: credentials.caCertPath,
    mqttPort,
    httpsPort,
    serviceConnectionString: `HostName=${hostName};SharedAccessKeyName=${POLICY_NAME};SharedAccessKey=${policyKey}`,
    deviceConnectionString(deviceId) {
      const device = registry.require(deviceId);
      // A named hub needs SNI for its name: a device must resolve the name, not connect to the address.
      return `HostName=${hostName};DeviceId=${deviceId};SharedAccessKey=${device.primaryKey}`;
    },
    registerDevice: (registration) => core.registerDevice(registration),
    d2c: (filter) => core.d2c(filter),
    get counters() {
      return { ...core.counters };
    },
    faults: core.faults,
    configure: (behaviour) => core.configure(behaviour),
    sendC2d: (deviceId, message) => core.sendC2d(deviceId, message),
    stopMqtt: () => core.stopMqtt(),
    startMqtt: () => core.startMqtt(),
    set8883: (mode) => core.set8883(mode),
    get silent8883Connections() {
      return core.silentConnections;
    },
    get webSocketConnections() {
      return webSockets.accepted;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const closed = new Promise<void>((resolve) => httpsServer.close(() => resolve()));
      httpsServer.closeAllConnections();
      await Promise.all([closed, core.close()]);
    },
    core,
  };
}

/**
 * MQTT over WebSockets on the HTTPS listener: an upgrade to WEBSOCKET_PATH offering the
 * `mqtt` subprotocol becomes one more broker connection (Microsoft Learn, "Communicate with
 * an IoT hub using the MQTT protocol", Using the MQTT protocol directly: over WebSockets on
 * port 443 at `/$iothub/websocket`). Anything else is answered as a web server would.
 */
function serveWebSockets(server: https.Server, core: HubCore): { accepted: number } {
  const counts = { accepted: 0 };
  const wss = new WebSocketServer({ noServer: true, handleProtocols: () => 'mqtt' });
  server.on('upgrade', (req, socket, head) => {
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    socket.on('error', () => undefined);
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (new URL(req.url ?? '/', 'https://hub').pathname !== WEBSOCKET_PATH) return refuse('404 Not Found');
    if (!offered.includes('mqtt')) return refuse('400 Bad Request');
    if (!core.webSocketsUp) return refuse('503 Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) => {
      counts.accepted++;
      core.broker.handleWebSocket(packetStream(ws));
    });
  });
  return counts;
}

function listen(server: https.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The policy key survives restarts, so connection strings handed out stay valid. */
function loadPolicyKey(stateDir: string, given: string | undefined): string {
  const file = new JsonStore(path.join(stateDir, 'hub-policy.json'), (doc) => (isJsonObject(doc) ? doc : {}));
  const stored = file.load()?.primaryKey;
  const storedKey = typeof stored === 'string' ? stored : undefined;
  const key = given ?? storedKey ?? randomBytes(32).toString('base64');
  if (key !== storedKey) file.saveNow({ keyName: POLICY_NAME, primaryKey: key });
  return key;
}
