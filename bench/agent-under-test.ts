import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AgentFiles } from '../test/support/agent-process.js';
import { withHosts } from '../test/support/hosts.js';
import { allUnitNodeFlags } from '../test/support/unit-node-flags.js';

/**
 * `iot-agent run` as the benchmarks start it. BENCH_CLI measures another build of the CLI
 * (the packaged bundle: BENCH_CLI=<bundle>/dist/agent/cli.js). The node flags are the
 * agent unit's (systemd/iot-agent.service: NODE_OPTIONS and ExecStart's node flags, read
 * from the file so that they cannot drift); BENCH_FLAGS replaces them, split on spaces, to
 * compare V8 settings (BENCH_FLAGS= for none).
 */
export const CLI = process.env.BENCH_CLI ?? fileURLToPath(new URL('../agent/cli.js', import.meta.url));
export const FLAGS = process.env.BENCH_FLAGS !== undefined
  ? process.env.BENCH_FLAGS.split(' ').filter(Boolean)
  : allUnitNodeFlags(readFileSync(new URL('../../systemd/iot-agent.service', import.meta.url), 'utf8'));

/**
 * The environment the unit gives the daemon, over this process's: no TPM override, no
 * notify socket, and no NODE_EXTRA_CA_CERTS (systemd passes none; a machine that sets it to
 * the distribution's bundle would have every TLS context name some 140 more CAs).
 */
export function unitEnvironment(): NodeJS.ProcessEnv {
  return { ...process.env, IOT_AGENT_TPM: '', NOTIFY_SOCKET: '', NODE_EXTRA_CA_CERTS: '' };
}

export interface AgentUnderTest {
  child: ChildProcess;
  lines: string[];
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `timings`: IOT_AGENT_TEST_TIMINGS, as the tests use it (e.g. `keepAlive=5,backoff=fast`).
 * A device cloud with DNS names (files.hostsFile) is reached through a private hosts file.
 */
export function startAgent(files: AgentFiles, options: { extraFlags?: string[]; cwd?: string; timings?: string } = {}): AgentUnderTest {
  const argv = [...FLAGS, ...(options.extraFlags ?? []), CLI, '--config', files.configPath, 'run'];
  const { command, args } = files.hostsFile ? withHosts(files.hostsFile, process.execPath, argv) : { command: process.execPath, args: argv };
  const child = spawn(command, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: { ...unitEnvironment(), ...(options.timings !== undefined ? { IOT_AGENT_TEST_TIMINGS: options.timings } : {}) },
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
    lines,
    async waitForLog(text: string, timeoutMs = 60_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!lines.some((l) => l.includes(text))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`agent: no ${text}:\n${lines.slice(-10).join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Resident set size of a process, from /proc (what `ps` and systemd show). */
export function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/**
 * Where a process's RSS lies, from /proc/<pid>/smaps: pages of files (the node binary, its
 * libraries), the brk heap (small mallocs), and anonymous mappings (V8's heap pages, larger
 * mallocs, thread stacks), in bytes.
 */
export function rssByKind(pid: number): { file: number; brk: number; anon: number } {
  const sums = { file: 0, brk: 0, anon: 0 };
  let kind: keyof typeof sums = 'anon';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping) {
      const name = mapping[1] ?? '';
      kind = name.startsWith('/') ? 'file' : name === '[heap]' ? 'brk' : 'anon';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)?.[1];
    if (rss) sums[kind] += Number(rss) * 1024;
  }
  return sums;
}
