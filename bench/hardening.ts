import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { restoreCommand, type Backend } from '../hardening/backend.js';
import { HardeningEngine } from '../hardening/engine.js';
import { loadProfile } from '../hardening/load-profile.js';
import { AGENT_CHAINS } from '../hardening/render-firewall.js';
import { applyText, parseFilterTable, removeText } from '../hardening/restore-text.js';
import type { CommandRunner } from '../agent/lib/exec.js';
import { hardeningRunner } from '../hardening/runner.js';
import { CommandSysctl, ProcSysctl } from '../hardening/sysctl-io.js';
import { NetnsPair, requireHardeningTools } from '../test/support/netns.js';
import { median } from './stats.js';

/**
 * `npm run bench -- hardening`: applying `strict` with the engine (the whole transaction:
 * --test, snapshot, one atomic iptables-restore, sysctls, files, record) next to the same
 * rules loaded with one `iptables` call per rule, in a network namespace of the bench's own.
 * Measured twice, both sides alike each time:
 *  - from this process through `ip netns exec NS` in front of every command (as the tests run);
 *  - from a worker started inside the namespace, with no prefix: what a device sees.
 * Plus `iot-agent harden plan` as an unprivileged user. Medians over rounds; rounds
 * interleave the subjects so a busy machine hits all alike.
 */
const ROUNDS = 15;
const PLAN_ROUNDS = 9;
const CLI = fileURLToPath(new URL('../agent/cli.js', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const pexec = promisify(execFile);

type Subject = 'perRule' | 'engineFirst' | 'engineBoot' | 'restore' | 'test' | 'spawn';
type Medians = Record<Subject, number> & { engineSpawnsFirst: number; engineSpawnsBoot: number; calls: number };

export async function run(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench does)`);
  requireHardeningTools(['iptables-nft', 'iptables-legacy', 'iptables-nft-restore', 'iptables-legacy-restore', 'sysctl', 'setpriv']);
  const rows: string[][] = [];
  for (const backend of ['nft', 'legacy'] as const) rows.push(...(await measureBackend(backend)));
  const plan = await measurePlan();
  rows.push(['harden plan --profile strict (CLI, uid nobody)', fmt(plan), '', '< 200 ms', plan < 200 ? 'PASS' : 'MISS']);
  const header = ['measure', 'median', 'vs one call per rule', 'target', 'result'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows]) process.stdout.write(`${row.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ')}\n`);
}

async function measureBackend(backend: Backend & ('nft' | 'legacy')): Promise<string[][]> {
  const pair = await NetnsPair.create();
  const root = mkdtempSync(path.join(tmpdir(), `iot-agent-bench-${backend}-`));
  try {
    const viaPrefix = await measureSubjects(backend, path.join(root, 'prefix'), pair.prefix(pair.device));
    const { stdout } = await pexec('ip', ['netns', 'exec', pair.device, process.execPath, SELF, '--inside', pair.device, backend, path.join(root, 'inside')],
      { maxBuffer: 1 << 20, timeout: 300_000 });
    const inside = JSON.parse(stdout) as Medians;
    const prefixCost = viaPrefix.spawn - inside.spawn;
    return [
      ...rowsFor(`${backend} via 'ip netns exec'`, viaPrefix),
      ...rowsFor(`${backend} inside the netns`, inside),
      [`${backend}: prefix cost per command ('ip netns exec NS true' − 'true')`, fmt(prefixCost), '', '',
        `info (x ${viaPrefix.calls} per-rule calls = ${fmt(viaPrefix.calls * prefixCost)})`],
    ];
  } finally {
    await pair.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}

function rowsFor(label: string, m: Medians): string[][] {
  const ratio = (ms: number) => `${(m.perRule / ms).toFixed(1)}x`;
  const verdict = (ms: number) => (m.perRule / ms >= 10 ? 'PASS' : 'MISS');
  return [
    [`${label}: ${m.calls} iptables calls, one per rule`, fmt(m.perRule), '1.0x', '', 'info'],
    [`${label}: engine apply strict, first (${m.engineSpawnsFirst} commands)`, fmt(m.engineFirst), ratio(m.engineFirst), '>= 10x', verdict(m.engineFirst)],
    [`${label}: engine apply strict, boot re-apply (${m.engineSpawnsBoot} commands)`, fmt(m.engineBoot), ratio(m.engineBoot), '>= 10x', verdict(m.engineBoot)],
    [`${label}: one iptables-restore of the same rules`, fmt(m.restore), ratio(m.restore), '', 'info'],
    [`${label}: one iptables-restore --test of the same rules`, fmt(m.test), ratio(m.test), '', 'info (floor: the engine must run it)'],
    [`${label}: one command ('true')`, fmt(m.spawn), '', '', 'info'],
  ];
}

/**
 * The subjects, through `prefix` (empty inside the namespace). "First" is an apply with no
 * record (snapshot taken, rules read back); "boot re-apply" is what the boot unit does every
 * boot: the same profile recorded, its chains gone (the kernel starts empty).
 */
async function measureSubjects(backend: 'nft' | 'legacy', root: string, prefix: readonly string[]): Promise<Medians> {
  let spawns = 0;
  const plain = hardeningRunner(prefix);
  const counting: CommandRunner = { run: (argv, options) => { spawns++; return plain.run(argv, options); } };
  const profile = await loadProfile('strict', root);
  // Inside the namespace the engine reads and writes /proc/sys itself, as on a device.
  const sysctl = prefix.length ? new CommandSysctl(counting) : new ProcSysctl();
  const engine = new HardeningEngine({ root, backend, runner: counting, sysctl });
  const plan = await engine.plan(profile);
  // A first apply also changes the sysctls: put the namespace's own values back each time.
  const kernelSysctls = Object.fromEntries(Object.entries(await sysctl.read(Object.keys(plan.host.sysctls)))
    .filter((e): e is [string, string] => e[1] !== null));
  const rules = AGENT_CHAINS.flatMap(({ chain }) => (plan.firewall[4]!.chains[chain] ?? []).map((spec) => [chain, spec] as const));
  const iptables = `iptables-${backend}`;
  const flushChains = async () => {
    const { stdout } = await plain.run([`iptables-${backend}-save`, '-t', 'filter']);
    const text = removeText(parseFilterTable(stdout));
    if (text) await plain.run(restoreCommand(backend, 4, false), { input: text });
  };
  const clearRecords = async () => {
    await engine.records.snapshot.remove();
    await engine.records.applied.remove();
  };
  const subjects: [Subject, () => Promise<unknown>, () => Promise<void>][] = [
    ['engineFirst', () => engine.apply(profile), async () => { await flushChains(); await clearRecords(); await sysctl.write(kernelSysctls); }],
    ['engineBoot', () => engine.apply(profile), async () => {
      // What a reboot leaves: the record of the last boot, and no agent chains in the kernel.
      await flushChains();
      if (!(await engine.applied())) await engine.apply(profile);
      await flushChains();
      await engine.records.applied.write({ ...(await engine.applied())!, bootId: 'the previous boot' });
    }],
    ['perRule', async () => {
      for (const { chain } of AGENT_CHAINS) await plain.run([iptables, '-w', '-N', chain]);
      for (const [chain, spec] of rules) await plain.run([iptables, '-w', '-A', chain, ...spec.split(' ')]);
      for (const { chain, hook } of AGENT_CHAINS) await plain.run([iptables, '-w', '-I', hook, '1', '-j', chain]);
    }, flushChains],
    ['restore', () => plain.run(restoreCommand(backend, 4, false), { input: applyText(plan.firewall[4]!, undefined) }), flushChains],
    // The check the engine must run before loading: on nft the kernel aborts the batch, which waits for an RCU grace period.
    ['test', () => plain.run(restoreCommand(backend, 4, true), { input: applyText(plan.firewall[4]!, undefined) }), flushChains],
    ['spawn', () => plain.run(['true']), () => Promise.resolve()],
  ];
  const samples = new Map<Subject, number[]>(subjects.map(([name]) => [name, []]));
  const counts = { engineFirst: [] as number[], engineBoot: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, action, reset] of subjects) {
      await reset();
      spawns = 0;
      const t0 = performance.now();
      await action();
      samples.get(name)!.push(performance.now() - t0);
      if (name === 'engineFirst' || name === 'engineBoot') counts[name].push(spawns);
    }
  }
  await flushChains();
  const m = (name: Subject) => median(samples.get(name)!);
  return {
    perRule: m('perRule'), engineFirst: m('engineFirst'), engineBoot: m('engineBoot'), restore: m('restore'), test: m('test'), spawn: m('spawn'),
    engineSpawnsFirst: median(counts.engineFirst), engineSpawnsBoot: median(counts.engineBoot), calls: rules.length + 2 * AGENT_CHAINS.length,
  };
}

/** The worker: refuses to run anywhere but inside the bench's own namespace. */
async function inside(ns: string, backend: string, root: string): Promise<void> {
  if (!/^iotagent-[0-9a-f]+-d$/.test(ns) || statSync(`/run/netns/${ns}`).ino !== statSync('/proc/self/ns/net').ino) {
    throw new Error(`refusing to measure outside the bench namespace ${ns}: this would change the host's firewall`);
  }
  if (backend !== 'nft' && backend !== 'legacy') throw new Error(`unknown backend ${backend}`);
  process.stdout.write(`${JSON.stringify(await measureSubjects(backend, root, []))}\n`);
}

/** `harden plan` as user nobody: no privileges, nothing written. */
async function measurePlan(): Promise<number> {
  return medianOf(PLAN_ROUNDS, () => pexec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'harden', 'plan', '--profile', 'strict'],
    { maxBuffer: 1 << 20 }));
}

async function medianOf(rounds: number, action: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const t0 = performance.now();
    await action();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}


function fmt(ms: number): string {
  return `${ms.toFixed(1)} ms`;
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url && process.argv[2] === '--inside') {
  await inside(process.argv[3] ?? '', process.argv[4] ?? '', process.argv[5] ?? '');
}
