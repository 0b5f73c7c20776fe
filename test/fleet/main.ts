/**
 * `npm run fleet -- --devices N [--scenario NAME ...] [--timings KEY=V,...]`: QA's fleet drill.
 * Starts N real agents against one local cloud, prints one line a second (connected,
 * provisioning, degraded, refused connects, DPS registrations, connects), runs the
 * scenarios in order (all of them by default), prints a summary and stops everything.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { median } from '../../bench/stats.js';
import { Fleet } from './fleet.js';
import { runScenario, SCENARIOS, type ScenarioName, type ScenarioResult } from './scenarios.js';

function usage(message: string): never {
  process.stderr.write(`fleet: ${message}\nusage: npm run fleet -- --devices N [--scenario ${SCENARIOS.join('|')} ...] [--timings KEY=V,...]\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: { devices: { type: 'string', default: '9' }, scenario: { type: 'string', multiple: true }, timings: { type: 'string', default: '' } },
  strict: true,
});
const devices = Number(values.devices);
if (!Number.isInteger(devices) || devices < 1 || devices > 200) usage(`--devices ${values.devices}: expected 1 to 200`);
const scenarios = (values.scenario ?? [...SCENARIOS]) as ScenarioName[];
for (const name of scenarios) if (!SCENARIOS.includes(name)) usage(`unknown scenario ${name}`);
if (process.getuid?.() !== 0) usage('run as root (the boards\' swtpm and the cloud\'s ports 443 and 8883 on loopback)');

const fleet = await Fleet.start({ devices, dir: mkdtempSync(path.join(tmpdir(), 'iot-agent-fleet-')), timings: values.timings });
let code = 0;
process.once('SIGINT', () => void fleet.stop().then(() => process.exit(130)));
try {
  fleet.report();
  await fleet.waitUntil('all boards ready', (s) => s.connected === devices, 300_000);
  const results: ScenarioResult[] = [];
  for (const name of scenarios) {
    process.stdout.write(`== scenario ${name}\n`);
    results.push(await runScenario(fleet, name));
  }
  fleet.stopReporting();
  const memory = fleet.memory();
  process.stdout.write('== summary\n');
  for (const r of results) process.stdout.write(`${r.name}: ${r.seconds.toFixed(1)} s, ${r.registrations} DPS registrations; ${r.notes.join('; ')}\n`);
  process.stdout.write(`agent RSS: median ${median(memory.perAgentMiB).toFixed(1)} MiB, max ${Math.max(...memory.perAgentMiB).toFixed(1)} MiB; machine in use ${memory.machineUsedMiB.toFixed(0)} MiB\n`);
} catch (err) {
  process.stderr.write(`fleet: ${(err as Error).message}\n`);
  code = 1;
} finally {
  await fleet.stop();
}
process.exit(code);

