import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import mqtt from 'mqtt';
import { Logger } from '../agent/log/logger.js';
import { DiskQueue } from '../agent/telemetry/disk-queue.js';
import { deviceToken, deviceUsername } from '../test/cloud/hub/raw-mqtt.js';
import { servernameFor } from '../test/cloud/tls.js';
import { TEST_TIMINGS, type AgentFiles } from '../test/support/agent-process.js';
import { DeviceCloud } from '../test/support/device-cloud.js';
import { invokeMethod } from '../test/support/direct-method.js';
import { withHosts } from '../test/support/hosts.js';
import { isObject, parseObject, stringFields } from '../test/support/json.js';
import { percentiles as stats } from './stats.js';

/**
 * The agent's command and telemetry paths on the local cloud, against floors measured in
 * the same run:
 * 1. Direct-method round trip (azure-iothub → hub → MQTT → agent → back) next to a bare
 *    mqtt.js responder (its own process) on the same hub, calls interleaved.
 *    Targets: p50 ≤ 1.2x, p99 ≤ 1.5x the bare responder.
 * 2. The agent's RSS at ready and after 10,000 method calls. Target: growth < 5 %.
 * 2b. The same round trip with the payload omitted (IoT Hub sends an empty body) next to
 *    `{}`, calls interleaved. Target: equal within noise (p50 ratio 0.9x to 1.1x).
 * 3. 10,000 messages in the agent's disk queue while the hub is down (written by the
 *    agent's own queue code while the agent was stopped), drained after the hub returns.
 *    Target: ≥ 500 messages/s, none lost. (The device's own rate cap is raised to 1000/s
 *    here, so this measures the drain; its default is 4/s.)
 * 4. 3,000 queued messages drained into a hub limited to 100 D2C sends/s (with a traffic-
 *    shaping backlog of 30, under the agent's first window of 50). Target: ≥ 90 % of the
 *    limit, none lost, no duplicate, at most one reconnect.
 * The hardening engine is pointed at a temporary root and a namespace that does not exist.
 */
const PAIRS = 1_000;
const WARMUP = 100;
const TOTAL_AGENT_CALLS = 10_000;
const QUEUED = 10_000;
const SETTLE_MS = 12_000;
const EMPTY_PAIRS = 500;
const THROTTLED = 3_000;
const HUB_LIMIT = 100;

export async function run(): Promise<void> {
  const dc = await DeviceCloud.start({ deviceId: 'bench-agent', telemetry: { intervalSeconds: 3600, queueLimit: 20_000, maxMessagesPerSecond: 1_000 } });
  let bare: ChildProcess | undefined;
  // As in production: log level info (the test config's debug level writes a line per call).
  writeFileSync(dc.files.configPath, readFileSync(dc.files.configPath, 'utf8').replace('level: debug', 'level: info'));
  try {
    let agent = startAgent(dc.files);
    await agent.waitForLog('to=ready');
    const bareId = 'bench-bare';
    const key = randomBytes(32);
    await dc.hub.registerDevice({ deviceId: bareId, registrationId: bareId, primaryKey: key });
    bare = fork(fileURLToPath(import.meta.url), ['--bare-responder', JSON.stringify({
      address: dc.hub.address, hostName: dc.hub.hostName, ca: dc.cloud.ca, deviceId: bareId, key: key.toString('base64'),
    })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => { bare!.once('message', () => resolve()); bare!.once('exit', (code) => reject(new Error(`bare responder exited with ${code}`))); });

    const invoke = async (deviceId: string, payload: unknown = {}) => {
      const { status } = await invokeMethod(dc.service.client, deviceId, { methodName: 'ping', payload, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 });
      if (status !== 200) throw new Error(`${deviceId} answered ${status}`);
    };
    const heapOf = async () => {
      const { payload } = await invokeMethod(dc.service.client, dc.deviceId, { methodName: 'getSystemInfo', payload: {}, responseTimeoutInSeconds: 10 });
      const heapUsedBytes = isObject(payload) && isObject(payload.agent) ? payload.agent.heapUsedBytes : undefined;
      if (typeof heapUsedBytes !== 'number') throw new Error(`getSystemInfo without agent.heapUsedBytes: ${JSON.stringify(payload)}`);
      return heapUsedBytes;
    };
    for (let i = 0; i < WARMUP; i++) { await invoke(dc.deviceId); await invoke(bareId); }
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rssReady = rssOf(agent.child.pid!);
    const bareReady = rssOf(bare.pid!);
    const heapReady = await heapOf();
    const agentTimes: number[] = [];
    const bareTimes: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      agentTimes.push(await timed(() => invoke(dc.deviceId)));
      bareTimes.push(await timed(() => invoke(bareId)));
    }
    for (let i = WARMUP + PAIRS; i < TOTAL_AGENT_CALLS; i++) await invoke(dc.deviceId);
    const rssRightAfter = rssOf(agent.child.pid!);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rssAfter = rssOf(agent.child.pid!);
    const bareAfter = rssOf(bare.pid!);
    const heapAfter = await heapOf();
    const a = stats(agentTimes);
    const b = stats(bareTimes);
    line(`bare mqtt.js responder        p50 ${ms(b.p50)}  p99 ${ms(b.p99)}  (${PAIRS} calls, interleaved)`);
    line(`agent (registry, validation)  p50 ${ms(a.p50)}  p99 ${ms(a.p99)}`);
    line(`ratio p50 ${(a.p50 / b.p50).toFixed(2)}x (target ≤ 1.2x) ${a.p50 / b.p50 <= 1.2 ? 'OK' : 'OVER'}; p99 ${(a.p99 / b.p99).toFixed(2)}x (target ≤ 1.5x) ${a.p99 / b.p99 <= 1.5 ? 'OK' : 'OVER'}`);
    const growth = (rssAfter - rssReady) / rssReady;
    line(`agent RSS ${mb(rssReady)} at ready (after ${WARMUP} warm-up calls), ${mb(rssAfter)} after ${TOTAL_AGENT_CALLS} calls: ${(growth * 100).toFixed(1)} % (target < 5 %) ${growth < 0.05 ? 'OK' : 'OVER'}`);
    line(`  for scale, the bare mqtt.js responder: ${mb(bareReady)} -> ${mb(bareAfter)} after ${PAIRS + WARMUP} calls (${((bareAfter - bareReady) / bareReady * 100).toFixed(1)} %)`);
    line(`  V8 heap in use ${mb(heapReady)} at ready, ${mb(heapAfter)} after (from getSystemInfo)`);

    line(`  both read ${SETTLE_MS / 1000} s after the calls stopped; right after the last call: ${mb(rssRightAfter)}`);
    // Growth that stops is V8 sizing its heap to the load; growth that goes on is a leak.
    for (let i = 0; i < TOTAL_AGENT_CALLS; i++) await invoke(dc.deviceId);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rssTwice = rssOf(agent.child.pid!);
    line(`  after another ${TOTAL_AGENT_CALLS} calls: ${mb(rssTwice)} (${((rssTwice - rssAfter) / rssAfter * 100).toFixed(1)} % over the first ${TOTAL_AGENT_CALLS}), V8 heap in use ${mb(await heapOf())}`);

    // 2b. Payload omitted (an empty body on the wire) next to {}.
    const emptyTimes: number[] = [];
    const objectTimes: number[] = [];
    for (let i = 0; i < EMPTY_PAIRS; i++) {
      emptyTimes.push(await timed(() => invoke(dc.deviceId, undefined)));
      objectTimes.push(await timed(() => invoke(dc.deviceId, {})));
    }
    const e = stats(emptyTimes);
    const o = stats(objectTimes);
    const emptyRatio = e.p50 / o.p50;
    line(`ping with the payload omitted (empty body)  p50 ${ms(e.p50)}  p99 ${ms(e.p99)}; with {}  p50 ${ms(o.p50)}  p99 ${ms(o.p99)}  (${EMPTY_PAIRS} each, interleaved)`);
    line(`  ratio p50 ${emptyRatio.toFixed(2)}x, p99 ${(e.p99 / o.p99).toFixed(2)}x (target: equal within noise, p50 0.9x to 1.1x) ${emptyRatio >= 0.9 && emptyRatio <= 1.1 ? 'OK' : 'OVER'}`);

    // 3. The outage: the hub goes away, 10,000 messages wait on disk, the hub comes back.
    await agent.stop();
    await dc.hub.stopMqtt();
    const t0 = performance.now();
    const mids = await fillQueue(dc.files.stateDir, QUEUED);
    const appendMs = performance.now() - t0;
    line(`queued ${QUEUED} messages on disk in ${appendMs.toFixed(0)} ms (${(QUEUED / appendMs * 1000).toFixed(0)} appends/s, each fdatasync'ed)`);
    agent = startAgent(dc.files);
    await agent.waitForLog('event=telemetry.queue_opened');
    const hubBack = performance.now();
    await dc.hub.startMqtt();
    const outage = await collect(dc, mids, 120_000);
    const rate = outage.received / (outage.ms / 1000);
    const lastAt = outage.firstAt + outage.ms;
    line(`drained ${outage.received}/${QUEUED} (lost ${QUEUED - outage.received}, duplicates ${outage.duplicates}) in ${outage.ms.toFixed(0)} ms after the first arrived: ${rate.toFixed(0)} msg/s (target ≥ 500) ${rate >= 500 && outage.received === QUEUED ? 'OK' : 'OVER'}`);
    line(`  from the hub's return: ${((lastAt - hubBack) / 1000).toFixed(2)} s including the reconnect (${(outage.received / ((lastAt - hubBack) / 1000)).toFixed(0)} msg/s)`);
    await agent.stop();

    // 4. A backlog drained into a hub that throttles D2C at 100 sends/s.
    const throttledMids = await fillQueue(dc.files.stateDir, THROTTLED);
    dc.hub.configure({ perSecond: HUB_LIMIT, backlog: 30 });
    const throttledBefore = dc.hub.counters.d2cThrottled;
    agent = startAgent(dc.files);
    const drain = await collect(dc, throttledMids, 180_000);
    const sessions = agent.lines().filter((l) => l.includes('event=hub.connecting')).length;
    const throttledRate = drain.received / (drain.ms / 1000);
    const ok = throttledRate >= 0.9 * HUB_LIMIT && drain.received === THROTTLED && drain.duplicates === 0 && sessions - 1 <= 1;
    line(`drained ${drain.received}/${THROTTLED} into a hub limited to ${HUB_LIMIT} sends/s (backlog 30): ${throttledRate.toFixed(1)} msg/s = ${(throttledRate / HUB_LIMIT * 100).toFixed(0)} % of the limit `
      + `(target ≥ 90 %), lost ${THROTTLED - drain.received}, duplicates ${drain.duplicates}, reconnects ${sessions - 1} (target ≤ 1), hub 429s ${dc.hub.counters.d2cThrottled - throttledBefore} ${ok ? 'OK' : 'OVER'}`);
    await agent.stop();
  } finally {
    bare?.kill();
    await dc.stop();
  }
}

/** Health-sized messages waiting on disk, written by the agent's own queue code while it is stopped. */
async function fillQueue(stateDir: string, count: number): Promise<Set<string>> {
  const queue = await DiskQueue.open(path.join(stateDir, 'telemetry'), 20_000, new Logger({ write: () => undefined }));
  const mids = new Set<string>();
  for (let i = 0; i < count; i++) {
    mids.add((await queue.append('health', { time: new Date().toISOString(), cpu: { percent: 12.5, loadAverage: [0.1, 0.2, 0.3] }, memory: { totalBytes: 1e9, availableBytes: 5e8 }, i })).mid);
  }
  await queue.close();
  return mids;
}

/** Waits until every one of `mids` reached the hub; the time from the first to the last arrival, and the duplicates. */
async function collect(dc: DeviceCloud, mids: Set<string>, timeoutMs: number): Promise<{ received: number; duplicates: number; ms: number; firstAt: number }> {
  let since = dc.hub.d2c({ deviceId: dc.deviceId }).at(-1)?.sequence ?? 0;
  const received = new Set<string>();
  let duplicates = 0;
  let first = 0;
  let last = 0;
  const deadline = Date.now() + timeoutMs;
  while (received.size < mids.size && Date.now() < deadline) {
    for (const m of dc.hub.d2c({ deviceId: dc.deviceId, since })) {
      since = m.sequence;
      const mid = m.systemProperties.mid ?? '';
      if (!mids.has(mid)) continue;
      if (received.has(mid)) duplicates++;
      received.add(mid);
      first ||= performance.now();
      last = performance.now();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { received: received.size, duplicates, ms: last - first, firstAt: first };
}

/** The built agent (`dist/agent/cli.js run`), as test/support's AgentProcess starts it from the sources' side. */
function startAgent(files: AgentFiles) {
  const argv = [fileURLToPath(new URL('../agent/cli.js', import.meta.url)), '--config', files.configPath, 'run'];
  const { command, args } = files.hostsFile ? withHosts(files.hostsFile, process.execPath, argv) : { command: process.execPath, args: argv };
  const child = spawn(command, args, {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, IOT_AGENT_TEST_TIMINGS: TEST_TIMINGS, IOT_AGENT_TPM: '', NOTIFY_SOCKET: '' },
  });
  const lines: string[] = [];
  let partial = '';
  child.stderr.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    child,
    lines: () => lines,
    async waitForLog(text: string, timeoutMs = 60_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!lines.some((l) => l.includes(text))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`agent: no ${text}:\n${lines.slice(-10).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

async function timed(op: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await op();
  return Number(process.hrtime.bigint() - start) / 1e6;
}


const ms = (v: number) => `${v.toFixed(2)} ms`;
const mb = (v: number) => `${(v / 2 ** 20).toFixed(1)} MiB`;
const line = (text: string) => process.stdout.write(`${text}\n`);

/** The floor: a device that is nothing but mqtt.js answering every method with a fixed small JSON. */
async function bareResponder(spec: { address: string; hostName: string; ca: string; deviceId: string; key: string }): Promise<void> {
  const client = await mqtt.connectAsync(`mqtts://${spec.address}:8883`, {
    ...servernameFor(spec.hostName),
    clientId: spec.deviceId, username: deviceUsername(spec, spec.deviceId), password: deviceToken(spec, spec.deviceId, Buffer.from(spec.key, 'base64'), Math.floor(Date.now() / 1000) + 7200),
    protocolVersion: 4, clean: false, ca: spec.ca, reconnectPeriod: 0, keepalive: 60,
  });
  client.on('message', (topic) => {
    const rid = /\$rid=([^&]+)/.exec(topic)?.[1];
    if (!rid) return;
    const payload = JSON.stringify({ pong: true, time: new Date().toISOString(), agentVersion: '0.1.0', node: process.versions.node, state: 'ready', uptimeSeconds: Math.round(process.uptime()) });
    client.publish(`$iothub/methods/res/200/?$rid=${rid}`, payload, { qos: 0 });
  });
  await client.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
  process.send?.('ready');
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === '--bare-responder' && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await bareResponder(stringFields(parseObject(process.argv[3] ?? '{}', 'the bare responder spec'), ['address', 'hostName', 'ca', 'deviceId', 'key']));
}
