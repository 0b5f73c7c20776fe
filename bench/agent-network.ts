import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { CloudDescription } from '../test/cloud/cloud.js';
import { serviceClients } from '../test/cloud/hub/service-sdk.js';
import type { AgentFiles } from '../test/support/agent-process.js';
import { invokeMethod } from '../test/support/direct-method.js';
import { TinyProxy } from '../test/support/tinyproxy.js';
import { FLAGS, unitEnvironment } from './agent-under-test.js';
import { median, percentiles } from './stats.js';

const USER = { name: 'bench', password: 'BenchPw1' };
const CALLS = Number(process.env.BENCH_CALLS ?? 100);
const WARMUP_CALLS = 10;

export type Row = [string, string, string, string, string];

/**
 * The same device two ways, in the same run, interleaved round by round: over MQTT on 8883,
 * and over MQTT over WebSockets on 443 through an authenticating proxy (a real tinyproxy):
 * warm start to ready (target ≤ 1.3x) and the direct-method round trip (p50 ≤ 1.3x).
 */
export async function networkRows(dir: string, files: AgentFiles, description: CloudDescription, rounds: number, cli: string): Promise<{ rows: Row[]; json: object }> {
  const proxy = await TinyProxy.start({ dir: path.join(dir, 'proxy'), user: USER });
  const base = readFileSync(files.configPath, 'utf8').replace('level: debug', 'level: info');
  const mqtt = { ...files, configPath: path.join(files.dir, 'config-mqtt.yaml') };
  const wss = { ...files, configPath: path.join(files.dir, 'config-wss.yaml') };
  const direct = { ...files, configPath: path.join(files.dir, 'config-wss-direct.yaml') };
  writeFileSync(mqtt.configPath, base);
  writeFileSync(direct.configPath, `${base}network:\n  hubProtocol: mqtt-ws\n`);
  writeFileSync(wss.configPath, `${base}network:\n  proxy: "${proxy.url(USER)}"\n`);
  const { client } = serviceClients(description.hubServiceConnectionString, readFileSync(description.caCertPath, 'utf8'));
  const invoke = async () => {
    const t0 = performance.now();
    const { status } = await invokeMethod(client, 'bench-device', { methodName: 'ping', payload: {}, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 });
    if (status !== 200) throw new Error(`ping answered ${status}`);
    return performance.now() - t0;
  };
  const starts = { mqtt: [] as number[], wss: [] as number[], direct: [] as number[] };
  const calls = { mqtt: [] as number[], wss: [] as number[], direct: [] as number[] };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [name, config] of [['mqtt', mqtt], ['wss', wss], ['direct', direct]] as const) {
        const agent = await startToReady(cli, config.configPath);
        starts[name].push(agent.ms);
        try {
          for (let i = 0; i < WARMUP_CALLS; i++) await invoke();
          for (let i = 0; i < CALLS; i++) calls[name].push(await invoke());
        } finally {
          await agent.stop();
        }
      }
    }
    const connects = proxy.connects();
    if (!connects.some((c) => c.endsWith(':443'))) throw new Error('the WebSocket agent did not go through the proxy');
  } finally {
    proxy.stop();
  }
  const warm = { mqtt: median(starts.mqtt), wss: median(starts.wss) };
  const rtt = { mqtt: percentiles(calls.mqtt), wss: percentiles(calls.wss), direct: percentiles(calls.direct) };
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const ratio = (n: number) => `${n.toFixed(2)}x`;
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const rows: Row[] = [
    ['warm start to ready over 8883 (baseline)', ms(warm.mqtt), '-', '-', 'info'],
    ['warm start to ready, WebSockets through the proxy', ms(warm.wss), ratio(warm.wss / warm.mqtt), '<= 1.3x', verdict(warm.wss / warm.mqtt <= 1.3)],
    ['method round trip p50 over 8883 (baseline)', ms(rtt.mqtt.p50), `p99 ${ms(rtt.mqtt.p99)}`, '-', 'info'],
    ['method round trip p50, WebSockets through the proxy', ms(rtt.wss.p50), ratio(rtt.wss.p50 / rtt.mqtt.p50), '<= 1.3x', verdict(rtt.wss.p50 / rtt.mqtt.p50 <= 1.3)],
    ['method round trip p50, WebSockets direct (no proxy)', ms(rtt.direct.p50), ratio(rtt.direct.p50 / rtt.mqtt.p50), '-', 'info'],
  ];
  return {
    rows,
    json: { warmMqttMs: warm.mqtt, warmWssMs: warm.wss, warmRatio: warm.wss / warm.mqtt, rttMqtt: rtt.mqtt, rttWss: rtt.wss, rttWssDirect: rtt.direct,
      rttP50Ratio: rtt.wss.p50 / rtt.mqtt.p50, calls: CALLS, rounds, samples: { starts } },
  };
}

/** `iot-agent run` to its state.changed to=ready line; the agent keeps running until stop(). */
async function startToReady(cli: string, configPath: string): Promise<{ ms: number; stop(): Promise<void> }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...FLAGS, cli, '--config', configPath, 'run'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: unitEnvironment(),
  });
  const lines: string[] = [];
  const ms = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`agent (${configPath}) not ready within 30 s:\n${lines.slice(-10).join('\n')}`));
    }, 30_000);
    createInterface({ input: child.stderr }).on('line', (line) => {
      lines.push(line);
      if (line.includes('event=state.changed') && line.includes('to=ready')) { clearTimeout(timer); resolve(performance.now() - t0); }
    });
  });
  return {
    ms,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
