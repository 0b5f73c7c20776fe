import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Daemon } from '../agent/daemon/daemon.js';
import { loadConfig } from '../agent/config.js';
import { Logger } from '../agent/log/logger.js';
import { loadRootStore } from '../agent/lib/tls-context.js';
import { AGENT_VERSION } from '../agent/version.js';
import type { CloudDescription } from '../test/cloud/cloud.js';
import { provisioningServiceClient } from '../test/cloud/dps/sdk-clients.js';
import type { AgentFiles } from '../test/support/agent-process.js';
import { CloudProcess, firstLine } from '../test/support/cloud-process.js';
import { enrollBoard } from '../test/support/enroll-board.js';
import { randomLoopbackAddress } from '../test/support/ports.js';
import { SwtpmInstance } from '../test/support/swtpm.js';
import { CLI, FLAGS, rssOf, unitEnvironment } from './agent-under-test.js';
import { networkRows } from './agent-network.js';
import { median } from './stats.js';

/**
 * `npm run bench -- agent`: process start to ready for `iot-agent run`, warm (cached
 * assignment) and cold (full TPM attestation), next to the Azure SDK's plain sample flow
 * (provision on every start, then connect) on the same swtpm and local cloud; RSS at
 * ready; and the event loop's largest stall while the daemon provisions and connects.
 * Then the same device over MQTT on 8883 and over MQTT over WebSockets on 443 through an
 * authenticating proxy (tinyproxy), interleaved: warm start and method round trip (agent-network.ts).
 * BENCH_ROUNDS sets the rounds (default 7). The agent runs with the unit's node flags,
 * BENCH_FLAGS replaces them and BENCH_CLI runs another build of the CLI (the packaged
 * bundle): see agent-under-test.ts.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SAMPLE = fileURLToPath(new URL('./sdk-sample-flow.js', import.meta.url));

export async function run(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-bench-agent-'));
  const addresses = [randomLoopbackAddress(), randomLoopbackAddress()];
  const cloud = await CloudProcess.start(path.join(dir, 'cloud'), addresses);
  const swtpm = await SwtpmInstance.start();
  try {
    const { description } = cloud;
    // The cloud runs in another process: the enrollment goes through the provisioning service SDK.
    const dps = provisioningServiceClient(description.provisioningServiceConnectionString, readFileSync(description.caCertPath, 'utf8'));
    const board = await enrollBoard({
      idScope: description.idScope, host: description.provisioningHost, caCertPath: description.caCertPath,
      enroll: (enrollment) => dps.createOrUpdateIndividualEnrollment(enrollment as never),
    }, { deviceId: 'bench-device', transport: swtpm.transport });
    const files = board.writeConfig(path.join(dir, 'agent'));

    const sample: number[] = []; const sampleRss: number[] = [];
    const cold: number[] = []; const warm: number[] = []; const rss: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const s = await sampleFlow(swtpm.transport, description);
      sample.push(s.ms); sampleRss.push(s.rss);
      rmSync(path.join(files.stateDir, 'assignment.json'), { force: true });
      cold.push((await agentToReady(files)).ms);
      const w = await agentToReady(files);
      warm.push(w.ms); rss.push(w.rss);
    }
    const lag = await inProcessLag(files);
    const network = await networkRows(dir, files, description, Math.max(3, Math.ceil(ROUNDS / 2)), CLI);

    const m = { sample: median(sample), sampleRss: median(sampleRss), cold: median(cold), warm: median(warm), rss: median(rss) };
    const rows: [string, string, string, string, string][] = [
      ['SDK sample flow: start to connected (baseline)', ms(m.sample), '-', '-', 'info'],
      ['iot-agent run, warm start to ready', ms(m.warm), ratio(m.warm / m.sample), '<= 0.5x', verdict(m.warm / m.sample <= 0.5)],
      ['iot-agent run, cold start to ready (attestation)', ms(m.cold), ratio(m.cold / m.sample), '<= 1.1x', verdict(m.cold / m.sample <= 1.1)],
      ['RSS at ready (warm)', mb(m.rss), `sample ${mb(m.sampleRss)}`, '< 60 MB', verdict(m.rss < 60 * 2 ** 20)],
      ['largest event-loop lag, provisioning + connect', ms(lag.max), `p99 ${ms(lag.p99)}`, '< 20 ms', verdict(lag.max < 20)],
      ...network.rows,
    ];
    const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...rows.map((r) => r[i]!.length), 6));
    for (const row of [['measure', 'value', 'vs baseline', 'target', 'result'], ...rows]) {
      process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
    }
    process.stdout.write(`agent: ${CLI}${FLAGS.length ? ` with ${FLAGS.join(' ')}` : ' without node flags'}\n`);
    process.stdout.write(`medians of ${ROUNDS} interleaved rounds; lag from one cold start of the daemon in a process with the same node flags (perf_hooks, 1 ms resolution)\n`);
    process.stdout.write(`${JSON.stringify({ bench: 'agent', cli: CLI, flags: FLAGS, rounds: ROUNDS, sampleMs: m.sample, warmMs: m.warm, coldMs: m.cold,
      warmRatio: round(m.warm / m.sample), coldRatio: round(m.cold / m.sample), rssBytes: m.rss, sampleRssBytes: m.sampleRss,
      lagMaxMs: round(lag.max), lagP99Ms: round(lag.p99), samples: { sample, warm, cold }, network: network.json })}\n`);
  } finally {
    await cloud.stop();
    await swtpm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function sampleFlow(transport: string, d: CloudDescription): Promise<{ ms: number; rss: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [SAMPLE, transport, d.provisioningHost, d.idScope, d.caCertPath], { stdio: ['ignore', 'pipe', 'inherit'], env: unitEnvironment() });
  const line = await firstLine(child);
  const ms = performance.now() - t0;
  await new Promise((r) => child.once('exit', r));
  return { ms, rss: Number(line.split(' ')[1]) };
}

/** Spawns `iot-agent run`, waits for its state.changed to=ready line, reads its RSS, stops it. */
async function agentToReady(files: AgentFiles): Promise<{ ms: number; rss: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...FLAGS, CLI, '--config', files.configPath, 'run'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: unitEnvironment(),
  });
  const ms = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('agent not ready within 30 s')), 30_000);
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.includes('event=state.changed') && line.includes('to=ready')) { clearTimeout(timer); resolve(performance.now() - t0); }
    });
  });
  const rss = rssOf(child.pid!);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { ms, rss };
}

/**
 * The daemon (this build's modules, in a process of its own with BENCH_FLAGS, so that the
 * node flags under test apply), cold, with the loop's delay histogram running throughout.
 */
async function inProcessLag(files: AgentFiles): Promise<{ max: number; p99: number }> {
  rmSync(path.join(files.stateDir, 'assignment.json'), { force: true });
  const child = fork(fileURLToPath(import.meta.url), ['--lag', files.configPath], { execArgv: FLAGS, env: unitEnvironment(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (lag) => resolve(lag as { max: number; p99: number }));
    child.once('exit', (code) => reject(new Error(`the lag measurement exited with ${code}`)));
  });
}

async function measureLag(configPath: string): Promise<{ max: number; p99: number }> {
  const config = await loadConfig(configPath);
  const daemon = new Daemon({ config, configPath, log: new Logger({ level: 'error', write: () => undefined }), agentVersion: AGENT_VERSION, onRestartRequested: () => undefined, overrides: {} });
  // As `iot-agent run` does before it starts the daemon (agent/cli/run.ts).
  loadRootStore();
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  await daemon.start();
  const deadline = Date.now() + 30_000;
  while (daemon.status().state !== 'ready') {
    if (Date.now() > deadline) throw new Error(`in-process daemon not ready: ${JSON.stringify(daemon.status())}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  histogram.disable();
  await daemon.stop();
  // The histogram counts the 1 ms sampling interval itself; subtract it to get the stall.
  return { max: Math.max(0, histogram.max / 1e6 - 1), p99: Math.max(0, histogram.percentile(99) / 1e6 - 1) };
}

const round = (n: number) => Math.round(n * 1000) / 1000;
const ms = (n: number) => `${n.toFixed(1)} ms`;
const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;
const ratio = (n: number) => `${n.toFixed(2)}x`;
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

if (process.argv[2] === '--lag' && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.send!(await measureLag(process.argv[3]!));
  process.exit(0);
}
