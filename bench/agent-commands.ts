import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import mqtt from 'mqtt';
import { Logger } from '../agent/log/logger.js';
import { DiskQueue } from '../agent/telemetry/disk-queue.js';
import { deviceToken, deviceUsername } from '../test/cloud/hub/raw-mqtt.js';
import { servernameFor } from '../test/cloud/tls.js';
import { TEST_TIMINGS } from '../test/support/agent-process.js';
import { DeviceCloud } from '../test/support/device-cloud.js';
import { invokeMethod } from '../test/support/direct-method.js';
import { isObject, parseObject, stringFields } from '../test/support/json.js';
import { CLI, FLAGS, rssByKind, rssOf, startAgent } from './agent-under-test.js';
import { growth, largest, SNAPSHOT_FLAG, summarize, takeSnapshot, type HeapSummary } from './heap-snapshot.js';
import { percentiles as stats } from './stats.js';

/**
 * The agent's command and telemetry paths on the local cloud, against floors measured in
 * the same run:
 * 1. Direct-method round trip (azure-iothub → hub → MQTT → agent → back) next to a bare
 *    mqtt.js responder (its own process) on the same hub, calls interleaved.
 *    Targets: p50 ≤ 1.2x, p99 ≤ 1.5x the bare responder.
 * 2. The agent's RSS at ready (after 100 warm-up calls), after 10,000 method calls and
 *    after 10,000 more. Targets: ≤ 5 % over the first 10,000, ≤ 1 % over the next.
 * 2b. The same round trip with the payload omitted (IoT Hub sends an empty body) next to
 *    `{}`, calls interleaved. Target: equal within noise (p50 ratio 0.9x to 1.1x).
 * 3. 10,000 messages in the agent's disk queue while the hub is down (written by the
 *    agent's own queue code while the agent was stopped), drained after the hub returns.
 *    Target: ≥ 500 messages/s, none lost. (The device's own rate cap is raised to 1000/s
 *    here, so this measures the drain; its default is 4/s.)
 * 4. 3,000 queued messages drained into a hub limited to 100 D2C sends/s (with a traffic-
 *    shaping backlog of 30, under the agent's first window of 50). Target: ≥ 90 % of the
 *    limit, none lost, no duplicate, at most one reconnect.
 * 5. What the agent's heap holds (heap snapshots: live objects only) at ready, after 10,000
 *    calls, after 10,000 more and after 5 hub outages, with health telemetry every second,
 *    and what grew: a leak shows here, V8 sizing its heap to the load does not.
 *    BENCH_SNAPSHOTS=0 skips it.
 * BENCH_CLI and BENCH_FLAGS pick the build and node flags (see agent-under-test.ts).
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
const RECONNECTS = 5;

export async function run(): Promise<void> {
  const figures: Record<string, number> = {};
  const dc = await DeviceCloud.start({ deviceId: 'bench-agent', telemetry: { intervalSeconds: 3600, queueLimit: 20_000, maxMessagesPerSecond: 1_000 } });
  let bare: ChildProcess | undefined;
  // As in production: log level info (the test config's debug level writes a line per call).
  writeFileSync(dc.files.configPath, readFileSync(dc.files.configPath, 'utf8').replace('level: debug', 'level: info'));
  try {
    line(`agent: ${CLI}${FLAGS.length ? ` with ${FLAGS.join(' ')}` : ''}`);
    let agent = startAgent(dc.files, { timings: TEST_TIMINGS });
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
    const kindsReady = rssByKind(agent.child.pid!);
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
    const kindsAfter = rssByKind(agent.child.pid!);
    const bareAfter = rssOf(bare.pid!);
    const heapAfter = await heapOf();
    const a = stats(agentTimes);
    const b = stats(bareTimes);
    line(`bare mqtt.js responder        p50 ${ms(b.p50)}  p99 ${ms(b.p99)}  (${PAIRS} calls, interleaved)`);
    line(`agent (registry, validation)  p50 ${ms(a.p50)}  p99 ${ms(a.p99)}`);
    line(`ratio p50 ${(a.p50 / b.p50).toFixed(2)}x (target ≤ 1.2x) ${a.p50 / b.p50 <= 1.2 ? 'OK' : 'OVER'}; p99 ${(a.p99 / b.p99).toFixed(2)}x (target ≤ 1.5x) ${a.p99 / b.p99 <= 1.5 ? 'OK' : 'OVER'}`);
    const firstGrowth = (rssAfter - rssReady) / rssReady;
    line(`agent RSS ${mb(rssReady)} at ready (after ${WARMUP} warm-up calls), ${mb(rssAfter)} after ${TOTAL_AGENT_CALLS} calls: ${pct(firstGrowth)} (target ≤ 5 %) ${firstGrowth <= 0.05 ? 'OK' : 'OVER'}`);
    line(`  for scale, the bare mqtt.js responder: ${mb(bareReady)} -> ${mb(bareAfter)} after ${PAIRS + WARMUP} calls (${pct((bareAfter - bareReady) / bareReady)})`);
    line(`  V8 heap in use ${mb(heapReady)} at ready, ${mb(heapAfter)} after (from getSystemInfo)`);

    line(`  both read ${SETTLE_MS / 1000} s after the calls stopped; right after the last call: ${mb(rssRightAfter)}`);
    line(`  where: ${kinds(kindsReady)} at ready; ${kinds(kindsAfter)} after`);
    // Growth that stops is V8 sizing its heap to the load; growth that goes on is a leak.
    for (let i = 0; i < TOTAL_AGENT_CALLS; i++) await invoke(dc.deviceId);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rssTwice = rssOf(agent.child.pid!);
    line(`  where: ${kinds(rssByKind(agent.child.pid!))} after another ${TOTAL_AGENT_CALLS}`);
    const secondGrowth = (rssTwice - rssAfter) / rssAfter;
    line(`agent RSS ${mb(rssTwice)} after another ${TOTAL_AGENT_CALLS} calls: ${pct(secondGrowth)} over the first ${TOTAL_AGENT_CALLS} (target ≤ 1 %) ${secondGrowth <= 0.01 ? 'OK' : 'OVER'}; V8 heap in use ${mb(await heapOf())}`);
    figures.rssReadyBytes = rssReady;
    figures.rssAfterBytes = rssAfter;
    figures.rssAfterTwiceBytes = rssTwice;
    figures.growthFirst = round(firstGrowth);
    figures.growthSecond = round(secondGrowth);
    figures.p50Ratio = round(a.p50 / b.p50);
    figures.p99Ratio = round(a.p99 / b.p99);
    figures.agentP50Ms = round(a.p50);
    figures.bareP50Ms = round(b.p50);

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
    agent = startAgent(dc.files, { timings: TEST_TIMINGS });
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
    agent = startAgent(dc.files, { timings: TEST_TIMINGS });
    const drain = await collect(dc, throttledMids, 180_000);
    const sessions = agent.lines.filter((l) => l.includes('event=hub.connecting')).length;
    const throttledRate = drain.received / (drain.ms / 1000);
    const ok = throttledRate >= 0.9 * HUB_LIMIT && drain.received === THROTTLED && drain.duplicates === 0 && sessions - 1 <= 1;
    line(`drained ${drain.received}/${THROTTLED} into a hub limited to ${HUB_LIMIT} sends/s (backlog 30): ${throttledRate.toFixed(1)} msg/s = ${(throttledRate / HUB_LIMIT * 100).toFixed(0)} % of the limit `
      + `(target ≥ 90 %), lost ${THROTTLED - drain.received}, duplicates ${drain.duplicates}, reconnects ${sessions - 1} (target ≤ 1), hub 429s ${dc.hub.counters.d2cThrottled - throttledBefore} ${ok ? 'OK' : 'OVER'}`);
    await agent.stop();
    figures.drainPerSecond = Math.round(rate);

    // 5. What the heap holds and what grows, from snapshots (live objects only).
    if (process.env.BENCH_SNAPSHOTS !== '0') await heapSnapshots(dc, invoke);
    line(JSON.stringify({ bench: 'agent-commands', cli: CLI, flags: FLAGS, loadAverage1m: round(loadavg()[0]!), ...figures }));
  } finally {
    bare?.kill();
    await dc.stop();
  }
}

/** Snapshots of the agent's heap at ready, after 10,000 calls and after 10,000 more, and what grew between them. */
async function heapSnapshots(dc: DeviceCloud, invoke: (deviceId: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-bench-heap-'));
  // Health telemetry every second this time (10 of the test timings' 100 ms seconds), so that what it leaves behind shows too.
  writeFileSync(dc.files.configPath, readFileSync(dc.files.configPath, 'utf8').replace(/intervalSeconds: \d+/, 'intervalSeconds: 10'));
  const agent = startAgent(dc.files, { extraFlags: [SNAPSHOT_FLAG], cwd: dir, timings: TEST_TIMINGS });
  try {
    await agent.waitForLog('to=ready');
    const summaries: [string, HeapSummary][] = [];
    const snap = async (label: string) => {
      const file = await takeSnapshot(agent.child.pid!, dir);
      summaries.push([label, summarize(file)]);
      rmSync(file);
    };
    for (let i = 0; i < WARMUP; i++) await invoke(dc.deviceId);
    await snap('at ready');
    for (let i = 0; i < TOTAL_AGENT_CALLS; i++) await invoke(dc.deviceId);
    await snap(`after ${TOTAL_AGENT_CALLS} calls`);
    for (let i = 0; i < TOTAL_AGENT_CALLS; i++) await invoke(dc.deviceId);
    await snap(`after ${2 * TOTAL_AGENT_CALLS} calls`);
    // Each reconnect makes a new SDK client: what the old one left behind shows here.
    for (let i = 0; i < RECONNECTS; i++) {
      await dc.hub.stopMqtt();
      await new Promise((r) => setTimeout(r, 1_000));
      await dc.hub.startMqtt();
      await waitFor(() => invoke(dc.deviceId));
    }
    for (let i = 0; i < WARMUP; i++) await invoke(dc.deviceId);
    await snap(`after ${RECONNECTS} reconnects`);
    line(`heap held (snapshots, live objects only): ${summaries.map(([label, s]) => `${mb(s.total)} ${label}`).join(', ')}`);
    line(`  largest at ready: ${largest(summaries[0]![1], 6).map((g) => `${g.key} ${kb(g.bytes)}`).join('; ')}`);
    for (let i = 1; i < summaries.length; i++) {
      const rows = growth(summaries[i - 1]![1], summaries[i]![1], 6).filter((g) => g.bytes !== 0);
      line(`  grew ${summaries[i - 1]![0]} -> ${summaries[i]![0]}: ${rows.map((g) => `${g.key} ${kb(g.bytes, true)} (${g.count >= 0 ? '+' : ''}${g.count})`).join('; ') || 'nothing'}`);
    }
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
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

/** Retries `op` until it succeeds (the agent reconnecting after a hub outage), for up to a minute. */
async function waitFor(op: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function timed(op: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await op();
  return Number(process.hrtime.bigint() - start) / 1e6;
}


const ms = (v: number) => `${v.toFixed(2)} ms`;
const mb = (v: number) => `${(v / 2 ** 20).toFixed(1)} MiB`;
const kb = (v: number, signed = false) => `${signed && v >= 0 ? '+' : ''}${(v / 1024).toFixed(0)} KiB`;
const pct = (v: number) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)} %`;
const kinds = (k: { file: number; brk: number; anon: number }) => `files ${mb(k.file)}, brk heap ${mb(k.brk)}, anonymous ${mb(k.anon)}`;
const round = (v: number) => Math.round(v * 1000) / 1000;
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
