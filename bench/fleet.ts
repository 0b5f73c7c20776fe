import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { STABLE_SESSION_MS } from '../agent/retry/connection-policy.js';
import { Fleet } from '../test/fleet/fleet.js';
import { median } from './stats.js';

/**
 * `npm run bench -- fleet` (N from BENCH_FLEET_DEVICES, default 50): a hub restart under a
 * fleet of real agents with production timings. Targets: all N back within 60 s with no
 * DPS registration, the p99 reconnect at least 5 s after the first (jitter spreads them),
 * and at most N/5 connects in any one second. Also each agent's RSS and the machine's total.
 */
export async function run(): Promise<void> {
  const devices = Number(process.env.BENCH_FLEET_DEVICES ?? 50);
  const t0 = Date.now();
  const fleet = await Fleet.start({ devices, dir: mkdtempSync(path.join(tmpdir(), 'iot-agent-bench-fleet-')), log: () => undefined });
  try {
    await fleet.waitUntil('all boards ready', (s) => s.connected === devices, 600_000);
    process.stdout.write(`${devices} agents ready after ${((Date.now() - t0) / 1000).toFixed(0)} s (cold: EK, DPS, hub)\n`);
    // A fleet in its steady state: every session has lasted long enough to count as working,
    // so losing the hub spreads the reconnects (a session that drops soon after connecting
    // is a throttled one, and backs off instead).
    await new Promise((r) => setTimeout(r, STABLE_SESSION_MS + 5_000));
    const registrations = fleet.cloud.dps.counters.registrations;
    const connectTimes: number[] = [];
    let last = fleet.hub.counters.connects;
    const watch = setInterval(() => {
      const now = fleet.hub.counters.connects;
      for (let i = last; i < now; i++) connectTimes.push(Date.now());
      last = now;
    }, 50);
    await fleet.hub.stopMqtt();
    await new Promise((r) => setTimeout(r, 3_000));
    const back = Date.now();
    await fleet.hub.startMqtt();
    const allBackMs = await fleet.waitUntil('all boards back', (s) => s.connected === devices, 120_000).catch(() => Number.NaN);
    await new Promise((r) => setTimeout(r, 1_000));
    clearInterval(watch);
    const offsets = connectTimes.map((t) => (t - back) / 1000).sort((a, b) => a - b);
    const p99 = offsets[Math.min(offsets.length - 1, Math.ceil(offsets.length * 0.99) - 1)] ?? Number.NaN;
    const spread = p99 - (offsets[0] ?? Number.NaN);
    const perSecond = new Map<number, number>();
    for (const o of offsets) perSecond.set(Math.floor(o), (perSecond.get(Math.floor(o)) ?? 0) + 1);
    const peak = Math.max(0, ...perSecond.values());
    const dps = fleet.cloud.dps.counters.registrations - registrations;
    const memory = fleet.memory();
    const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
    process.stdout.write([
      `hub restart (3 s down), ${devices} agents, production timings:`,
      `  all back                ${(allBackMs / 1000).toFixed(1)} s after the hub returned   (target <= 60 s: ${verdict(allBackMs <= 60_000)})`,
      `  DPS registrations       ${dps}   (target 0: ${verdict(dps === 0)})`,
      `  reconnects              ${offsets.length}, first at +${offsets[0]?.toFixed(1)} s, median +${median(offsets).toFixed(1)} s, p99 +${p99.toFixed(1)} s`,
      `  p99 reconnect spread    ${spread.toFixed(1)} s   (target >= 5 s: ${verdict(spread >= 5)})`,
      `  peak connect rate       ${peak}/s = N/${(devices / Math.max(peak, 1)).toFixed(1)}   (target <= N/5 = ${devices / 5}/s: ${verdict(peak <= devices / 5)})`,
      `  agent RSS               median ${median(memory.perAgentMiB).toFixed(1)} MiB, max ${Math.max(...memory.perAgentMiB).toFixed(1)} MiB, `
        + `sum ${memory.perAgentMiB.reduce((a, b) => a + b, 0).toFixed(0)} MiB`,
      `  machine memory in use   ${memory.machineUsedMiB.toFixed(0)} MiB (agents, ${devices} swtpm, bridges, the cloud)`,
      '',
    ].join('\n'));
  } finally {
    await fleet.stop();
  }
}
