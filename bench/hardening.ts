import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { restoreCommand, type Backend } from '../hardening/backend.js';
import { HardeningEngine } from '../hardening/engine.js';
import { loadProfile } from '../hardening/load-profile.js';
import { AGENT_CHAINS } from '../hardening/render-firewall.js';
import { removeText, parseFilterTable } from '../hardening/restore-text.js';
import { ExecRunner } from '../hardening/runner.js';
import { NetnsPair, requireHardeningTools } from '../test/support/netns.js';

/**
 * `npm run bench -- hardening`: applying `strict` with the engine (one atomic
 * iptables-restore, plus its checks, snapshot and sysctls) next to the same rules loaded
 * with one `iptables` call per rule, both in a network namespace of the bench's own and
 * through the same `ip netns exec` prefix; and `iot-agent harden plan` as an unprivileged
 * user. Medians over rounds; rounds interleave the subjects so a busy machine hits all alike.
 */
const ROUNDS = 9;
const PLAN_ROUNDS = 9;
const CLI = fileURLToPath(new URL('../agent/cli.js', import.meta.url));
const pexec = promisify(execFile);

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
    const runner = new ExecRunner(pair.prefix(pair.device));
    const profile = await loadProfile('strict', root);
    const engine = new HardeningEngine({ root, backend, runner });
    const plan = await engine.plan(profile);
    const rules = AGENT_CHAINS.flatMap(({ chain }) => (plan.firewall[4]!.chains[chain] ?? []).map((spec) => [chain, spec] as const));
    const iptables = `iptables-${backend}`;
    const save = `iptables-${backend}-save`;
    const reset = async () => {
      const { stdout } = await runner.run([save, '-t', 'filter']);
      const text = removeText(parseFilterTable(stdout));
      if (text) await runner.run(restoreCommand(backend, 4, false), { input: text });
      await engine.store.remove('snapshot');
      await engine.store.remove('applied');
    };
    const engineApply = async () => { await engine.apply(profile); };
    const perRule = async () => {
      for (const { chain } of AGENT_CHAINS) await runner.run([iptables, '-w', '-N', chain]);
      for (const [chain, spec] of rules) await runner.run([iptables, '-w', '-A', chain, ...spec.split(' ')]);
      for (const { chain, hook } of AGENT_CHAINS) await runner.run([iptables, '-w', '-I', hook, '1', '-j', chain]);
    };
    const onlyRestore = async () => {
      const { applyText } = await import('../hardening/restore-text.js');
      await runner.run(restoreCommand(backend, 4, false), { input: applyText(plan.firewall[4]!, undefined) });
    };
    const samples: Record<string, number[]> = { engine: [], perRule: [], restore: [], prefix: [] };
    await reset();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, action] of [['engine', engineApply], ['perRule', perRule], ['restore', onlyRestore]] as const) {
        await reset();
        const t0 = performance.now();
        await action();
        samples[name]!.push(performance.now() - t0);
      }
      const t0 = performance.now();
      await runner.run(['true']);
      samples.prefix!.push(performance.now() - t0);
    }
    await reset();
    const [e, p, r, x] = [median(samples.engine!), median(samples.perRule!), median(samples.restore!), median(samples.prefix!)];
    const calls = rules.length + 2 * AGENT_CHAINS.length;
    return [
      [`${backend}: ${calls} iptables calls, one per rule`, fmt(p), '1.0x', '', 'info'],
      [`${backend}: engine apply strict (full transaction)`, fmt(e), `${(p / e).toFixed(1)}x`, '>= 10x', p / e >= 10 ? 'PASS' : 'MISS'],
      [`${backend}: one iptables-restore of the same rules`, fmt(r), `${(p / r).toFixed(1)}x`, '', 'info'],
      [`${backend}: cost of one 'ip netns exec true'`, fmt(x), '', '', 'info'],
    ];
  } finally {
    await pair.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}

/** `harden plan` as user nobody: no privileges, nothing written. */
async function measurePlan(): Promise<number> {
  const samples: number[] = [];
  for (let round = 0; round < PLAN_ROUNDS; round++) {
    const t0 = performance.now();
    await pexec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'harden', 'plan', '--profile', 'strict'],
      { maxBuffer: 1 << 20 });
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function fmt(ms: number): string {
  return `${ms.toFixed(1)} ms`;
}
