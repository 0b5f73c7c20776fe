import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { formatLine } from '../agent/log/logger.js';
import { MAX_JOURNAL_BYTES } from '../agent/support/collect-logs.js';

/**
 * `npm run bench -- support-bundle`: how big a support bundle of a day's logs is. The real
 * CLI builds bundles (daemon stopped, TPM and endpoints on loopback ports where nothing
 * listens) while a stand-in `journalctl` first on PATH prints a synthetic day of the agent's
 * journal in `short-iso`, made of the agent's own log events at realistic rates:
 *  - quiet: a healthy day at info (start, hardening at boot, twin and connect lines);
 *  - flapping: the hub link drops every 2 minutes all day (disconnect, degraded, connect, ready);
 *  - debug: log.level debug with a monitor calling `ping` every 10 s, on top of flapping.
 * The baseline is the same bundle with an empty journal; ratios are to it and to the raw text.
 */
const CLI = fileURLToPath(new URL('../agent/cli.js', import.meta.url));
const pexec = promisify(execFile);
const DAY_S = 86_400;

type Scenario = 'empty' | 'quiet' | 'flapping' | 'debug';

export async function run(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench does)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-bench-bundle-'));
  try {
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    // The collector asks for --reverse: the stand-in prints the day newest first, as journalctl would.
    writeFileSync(path.join(bin, 'journalctl'), '#!/bin/sh\nexec tac "$IOT_AGENT_BENCH_JOURNAL"\n');
    chmodSync(path.join(bin, 'journalctl'), 0o755);
    const config = path.join(dir, 'config.yaml');
    writeFileSync(config, [
      'provisioning:', '  idScope: 0ne00BENCH1', '  globalEndpoint: 127.0.0.1',
      'tpm:', '  transport: swtpm:host=127.0.0.1,port=9', `stateDir: ${path.join(dir, 'state')}`, `runtimeDir: ${path.join(dir, 'run')}`, '',
    ].join('\n'));
    const rows: string[][] = [['day', 'journal lines', 'journal raw', 'bundle', 'bundle / baseline', 'raw / bundle', 'took']];
    let baseline = 0;
    for (const scenario of ['empty', 'quiet', 'flapping', 'debug'] as Scenario[]) {
      const lines = journalDay(scenario);
      const journal = path.join(dir, `${scenario}.log`);
      writeFileSync(journal, lines.length ? `${lines.join('\n')}\n` : '');
      const raw = statSync(journal).size;
      const out = path.join(dir, `out-${scenario}`);
      const t0 = performance.now();
      const { stdout } = await pexec(process.execPath, [CLI, '--config', config, 'support-bundle', '--output', out, '--json'], {
        env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, IOT_AGENT_BENCH_JOURNAL: journal, IOT_AGENT_TPM: '' },
        timeout: 60_000,
      });
      const took = performance.now() - t0;
      const { bytes } = JSON.parse(stdout) as { bytes: number };
      if (scenario === 'empty') baseline = bytes;
      rows.push([scenario, String(lines.length), kib(raw), kib(bytes), `${(bytes / baseline).toFixed(1)}x`, raw ? `${(raw / bytes).toFixed(1)}x` : '-', `${(took / 1000).toFixed(1)} s`]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
    process.stdout.write(`journal cap ${kib(MAX_JOURNAL_BYTES)} raw; the daemon's memory ring adds at most 1000 lines\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

/** A day of the agent's journal, oldest first, as `journalctl -o short-iso` prints it. */
function journalDay(scenario: Scenario): string[] {
  if (scenario === 'empty') return [];
  const start = Date.parse('2026-11-25T00:00:00Z');
  const lines: string[] = [];
  const line = (atS: number, unit: string, level: string, event: string, fields: Record<string, unknown> = {}) => {
    const at = new Date(start + atS * 1000);
    const iso = at.toISOString().replace(/\.\d{3}Z$/, '+0000');
    lines.push(`${iso} board-17 ${unit}: ${formatLine({ time: at.toISOString(), level, event, ...fields })}`);
  };
  const hub = 'contoso-hub-weu.azure-devices.net';
  const agent = 'iot-agent[812]';
  // Boot: hardening, then the daemon's start.
  line(3, 'iot-agent-hardening[301]', 'info', 'harden.applied', { profile: 'strict', changed: false, durationMs: 412 });
  line(5, agent, 'info', 'telemetry.queue_opened', { component: 'telemetry', dir: '/var/lib/iot-agent/telemetry', depth: 0, dropped: 0, nextSeq: 48211 });
  line(5, agent, 'info', 'daemon.started', { pid: 812, config: 'default' });
  line(5, agent, 'info', 'provisioning.cached', { hub, deviceId: 'board-17' });
  line(5, agent, 'info', 'state.changed', { from: 'starting', to: 'connecting', reason: `to ${hub}` });
  line(6, agent, 'info', 'hub.connecting', { component: 'hub', hub, deviceId: 'board-17' });
  line(7, agent, 'info', 'state.changed', { from: 'connecting', to: 'ready', reason: `connected to ${hub} as board-17` });
  line(8, agent, 'info', 'twin.desired_applied', { component: 'twin', key: 'telemetryIntervalSeconds', version: 14, ac: 200 });
  line(65, 'iot-agent-hardening-guard[900]', 'info', 'guard.confirmed', { profile: 'strict', hub: `${hub}:8883` });
  if (scenario === 'quiet') return lines;
  // The link drops every 2 minutes and comes back after a backoff.
  for (let t = 120; t < DAY_S; t += 120) {
    const err = 'read ECONNRESET: the connection was reset: MqttTransport: the hub closed the connection';
    line(t, agent, 'warn', 'hub.disconnected', { component: 'hub', hub, err, retryInMs: 1730 });
    line(t, agent, 'info', 'state.changed', { from: 'ready', to: 'degraded', reason: `hub unreachable: ${err}` });
    line(t + 2, agent, 'info', 'hub.connecting', { component: 'hub', hub, deviceId: 'board-17' });
    line(t + 3, agent, 'info', 'state.changed', { from: 'degraded', to: 'ready', reason: `connected to ${hub} as board-17` });
  }
  if (scenario === 'debug') {
    for (let t = 10; t < DAY_S; t += 10) line(t, agent, 'debug', 'command.result', { command: 'ping', via: 'method', status: 200, phase: 'done' });
  }
  return lines.sort();
}
