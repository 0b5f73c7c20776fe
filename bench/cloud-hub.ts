import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Aedes } from 'aedes';
import tls from 'node:tls';
import mqtt from 'mqtt';
import { openDevice } from '../test/cloud/hub/device-sdk.js';
import { startHub } from '../test/cloud/hub/hub.js';
import { deviceToken, deviceUsername } from '../test/cloud/hub/raw-mqtt.js';
import { serviceClients } from '../test/cloud/hub/service-sdk.js';
import { invokeMethod } from '../test/support/direct-method.js';
import { randomLoopbackAddress } from '../test/support/ports.js';

/**
 * The local IoT Hub under load, with the cloud in a process of its own (as in QA):
 * 1. direct-method round trip (azure-iothub REST → hub → MQTT → azure-iot-device → back),
 *    against a floor measured alongside: a bare MQTT request/response through a plain
 *    aedes broker over TLS plus a bare HTTPS request, in the same kind of child process.
 *    Target: p50 ≤ 2 × floor.
 * 2. 1,000 simulated devices (software keys, mqtt.js speaking IoT Hub's topics) connected
 *    at once, then one method to each: all answered, p99 < 50 ms, the cloud's RSS.
 */
const ROUND_TRIPS = 300;
const WARMUP = 30;
const DEVICES = 1_000;

interface Ready { hostName: string; ca: string; caCertPath: string; serviceConnectionString: string; floorMqttPort: number; floorHttpsPort: number }

export async function run(): Promise<void> {
  const address = randomLoopbackAddress();
  const stateDir = mkdtempSync(path.join(tmpdir(), 'bench-cloud-hub-'));
  const child = fork(fileURLToPath(import.meta.url), ['--serve-hub', address, stateDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const ready = await request<Ready>(child, { type: 'hello' });
    const target = { address, ...ready };
    const floor = await measureFloor(target);
    const cloud = await measureMethodRoundTrip(child, target);
    const ratio = cloud.p50 / (floor.mqtt.p50 + floor.https.p50);
    line(`bare MQTT request/response over TLS   p50 ${ms(floor.mqtt.p50)}  p99 ${ms(floor.mqtt.p99)}`);
    line(`bare HTTPS request (keep-alive)       p50 ${ms(floor.https.p50)}  p99 ${ms(floor.https.p99)}`);
    line(`direct method through the cloud       p50 ${ms(cloud.p50)}  p99 ${ms(cloud.p99)}  (${ROUND_TRIPS} calls)`);
    line(`ratio p50 / (MQTT + HTTPS floor)      ${ratio.toFixed(2)}x  (target ≤ 2x) ${ratio <= 2 ? 'OK' : 'OVER'}`);
    await measureScale(child, target);
  } finally {
    child.kill();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function measureFloor(target: Ready & { address: string }): Promise<{ mqtt: Stats; https: Stats }> {
  const connect = (clientId: string) => mqtt.connectAsync(`mqtts://${target.address}:${target.floorMqttPort}`,
    { clientId, protocolVersion: 4, ca: target.ca, reconnectPeriod: 0 });
  const requester = await connect('floor-requester');
  const responder = await connect('floor-responder');
  await responder.subscribeAsync('req/#', { qos: 0 });
  await requester.subscribeAsync('res/#', { qos: 0 });
  responder.on('message', (topic, payload) => void responder.publish(`res/${topic.slice(4)}`, payload, { qos: 0 }));
  const pending = new Map<string, () => void>();
  requester.on('message', (topic) => pending.get(topic.slice(4))?.());
  const mqttTimes = await time(WARMUP + ROUND_TRIPS, (i) => new Promise<void>((resolve) => {
    pending.set(String(i), resolve);
    requester.publish(`req/${i}`, '{"x":1}', { qos: 0 });
  }));
  await requester.endAsync();
  await responder.endAsync();

  const agent = new https.Agent({ keepAlive: true, ca: target.ca });
  const httpsTimes = await time(WARMUP + ROUND_TRIPS, () => new Promise<void>((resolve, reject) => {
    const req = https.request({ host: target.address, port: target.floorHttpsPort, method: 'POST', path: '/', agent, ca: target.ca }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end('{"methodName":"x"}');
  }));
  agent.destroy();
  return { mqtt: stats(mqttTimes.slice(WARMUP)), https: stats(httpsTimes.slice(WARMUP)) };
}

async function measureMethodRoundTrip(child: ChildProcess, target: Ready & { address: string }): Promise<Stats> {
  const { connectionString } = await registerOne(child, 'bench-device');
  const device = await openDevice({ deviceConnectionString: () => connectionString, caCertPath: target.caCertPath }, 'bench-device');
  device.onDeviceMethod('echo', (req, res) => void res.send(200, req.payload));
  const { client } = serviceClients(target.serviceConnectionString, target.ca);
  const times = await time(WARMUP + ROUND_TRIPS, async (i) => {
    const { status } = await invokeMethod(client, 'bench-device',
      { methodName: 'echo', payload: { i }, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: i === 0 ? 5 : 0 });
    if (status !== 200) throw new Error('method failed');
  });
  await device.close();
  return stats(times.slice(WARMUP));
}

async function measureScale(child: ChildProcess, target: Ready & { address: string }): Promise<void> {
  const rssBefore = await request<number>(child, { type: 'rss' });
  const keys = await request<string[]>(child, { type: 'register-many', count: DEVICES });
  const started = Date.now();
  const devices: mqtt.MqttClient[] = [];
  for (let batch = 0; batch < DEVICES; batch += 100) {
    devices.push(...await Promise.all(keys.slice(batch, batch + 100).map(async (key, j) => {
      const id = `sim-${batch + j}`;
      const client = await mqtt.connectAsync(`mqtts://${target.address}:8883`, {
        clientId: id, username: deviceUsername(target, id), password: deviceToken(target, id, Buffer.from(key, 'base64')),
        protocolVersion: 4, clean: false, ca: target.ca, reconnectPeriod: 0, keepalive: 180,
      });
      await client.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
      client.on('message', (topic, payload) => {
        const rid = /\$rid=([^&]+)/.exec(topic)?.[1];
        if (rid) client.publish(`$iothub/methods/res/200/?$rid=${rid}`, payload, { qos: 0 });
      });
      return client;
    })));
  }
  const connectMs = Date.now() - started;
  const rssConnected = await request<number>(child, { type: 'rss' });
  const { client } = serviceClients(target.serviceConnectionString, target.ca);
  let answered = 0;
  const times = await time(DEVICES, async (i) => {
    const { payload } = await invokeMethod(client, `sim-${i}`, { methodName: 'ping', payload: i, responseTimeoutInSeconds: 5 });
    if (payload === i) answered++;
  });
  const s = stats(times);
  const rssAfter = await request<number>(child, { type: 'rss' });
  line(`${DEVICES} devices connected in ${connectMs} ms; methods answered ${answered}/${DEVICES}; p50 ${ms(s.p50)}  p99 ${ms(s.p99)} (target < 50 ms) ${s.p99 < 50 && answered === DEVICES ? 'OK' : 'OVER'}`);
  line(`cloud RSS: ${mb(rssBefore)} idle, ${mb(rssConnected)} with ${DEVICES} devices, ${mb(rssAfter)} after the methods`);
  await Promise.all(devices.map((d) => d.endAsync()));
}

async function registerOne(child: ChildProcess, deviceId: string): Promise<{ primaryKey: string; connectionString: string }> {
  return request(child, { type: 'register', deviceId });
}

interface Stats { p50: number; p99: number }

async function time(count: number, op: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await op(i);
    out.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return out;
}

function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99) };
}

const ms = (v: number) => `${v.toFixed(2)} ms`;
const mb = (v: number) => `${(v / 2 ** 20).toFixed(0)} MiB`;
const line = (text: string) => process.stdout.write(`${text}\n`);

// --- IPC between the bench and the cloud's process -------------------------------------------

let nextId = 1;
function request<T>(child: ChildProcess, message: Record<string, unknown>): Promise<T> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMessage = (reply: { id: number; result?: T; error?: string }) => {
      if (reply.id !== id) return;
      child.off('message', onMessage);
      if (reply.error) reject(new Error(reply.error));
      else resolve(reply.result as T);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`cloud process exited with ${code}`)));
    child.send({ ...message, id });
  });
}

/** The child side: the hub plus the floor servers (bare aedes over TLS, bare HTTPS). */
async function serveHub(address: string, stateDir: string): Promise<void> {
  const hub = await startHub({ address, stateDir, log: () => undefined });
  const creds = await import('../test/cloud/tls.js').then((m) => m.ensureServerCredentials(path.join(stateDir, 'tls'), [hub.hostName, address]));
  const bare = await Aedes.createBroker();
  const floorMqtt = tls.createServer({ key: creds.key, cert: creds.cert }, (socket) => bare.handle(socket));
  await new Promise<void>((resolve) => floorMqtt.listen(0, address, resolve));
  const floorHttps = https.createServer({ key: creds.key, cert: creds.cert }, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":200,"payload":null}'));
  });
  await new Promise<void>((resolve) => floorHttps.listen(0, address, resolve));
  const port = (server: tls.Server) => (server.address() as { port: number }).port;

  process.on('message', (message: { id: number; type: string; deviceId?: string; count?: number }) => {
    const reply = (result: unknown) => process.send?.({ id: message.id, result });
    const fail = (err: Error) => process.send?.({ id: message.id, error: err.message });
    switch (message.type) {
      case 'hello':
        return reply({ hostName: hub.hostName, ca: hub.ca, caCertPath: hub.caCertPath, serviceConnectionString: hub.serviceConnectionString,
          floorMqttPort: port(floorMqtt), floorHttpsPort: port(floorHttps) });
      case 'rss':
        return reply(process.memoryUsage().rss);
      case 'register': {
        const key = randomBytes(32);
        const deviceId = message.deviceId ?? 'device';
        hub.registerDevice({ deviceId, registrationId: deviceId, primaryKey: key })
          .then(() => reply({ primaryKey: key.toString('base64'), connectionString: hub.deviceConnectionString(deviceId) }), fail);
        return;
      }
      case 'register-many': {
        const keys = Array.from({ length: message.count ?? 0 }, () => randomBytes(32));
        Promise.all(keys.map((key, i) => hub.registerDevice({ deviceId: `sim-${i}`, registrationId: `sim-${i}`, primaryKey: key })))
          .then(() => reply(keys.map((k) => k.toString('base64'))), fail);
        return;
      }
    }
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === '--serve-hub' && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await serveHub(process.argv[3] ?? '127.0.0.1', process.argv[4] ?? tmpdir());
}
