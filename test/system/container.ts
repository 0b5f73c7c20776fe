import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SETUP_HINT = 'run scripts/setup.sh as root (Debian packages debootstrap, systemd-container, iproute2, util-linux)';

/** Fails loudly (never skips) when the boot test cannot run here, saying what to install. */
export function requireBootTools(): void {
  if (process.getuid?.() !== 0) throw new Error('the boot test needs root (debootstrap, systemd-nspawn, network namespaces)');
  const tools = ['debootstrap', 'systemd-nspawn', 'dpkg-deb', 'ip', 'nsenter', 'tar', 'swtpm'];
  const missing = tools.filter((t) => !['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(`${d}/${t}`)));
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: ${SETUP_HINT}`);
}

/**
 * A network namespace of the test's own for the container, joined to the host by one veth
 * pair on a /24 of the benchmarking range 198.18.0.0/15 (RFC 2544, never routed): the host
 * end carries `.1` and `.2` (where the test runs the local cloud and swtpm), the container
 * end `.10`. Nothing else on the host changes.
 */
export class BootNetwork {
  readonly namespace: string;
  readonly hostLink: string;
  readonly hostAddress: string;
  readonly hostAddress2: string;
  readonly boardAddress: string;

  private constructor(n: number) {
    this.namespace = `iotboot-${n}`;
    this.hostLink = `iotb${n}`;
    this.hostAddress = `198.18.${n}.1`;
    this.hostAddress2 = `198.18.${n}.2`;
    this.boardAddress = `198.18.${n}.10`;
  }

  get path(): string {
    return `/run/netns/${this.namespace}`;
  }

  static async create(): Promise<BootNetwork> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const net = new BootNetwork(randomInt(1, 255));
      if (existsSync(net.path)) continue;
      const ip = (...args: string[]) => run('ip', args);
      const inNs = (...args: string[]) => run('ip', ['-n', net.namespace, ...args]);
      await ip('netns', 'add', net.namespace);
      try {
        await ip('link', 'add', net.hostLink, 'type', 'veth', 'peer', 'name', 'host0', 'netns', net.namespace);
        await ip('addr', 'add', `${net.hostAddress}/24`, 'dev', net.hostLink);
        await ip('addr', 'add', `${net.hostAddress2}/32`, 'dev', net.hostLink);
        await ip('link', 'set', net.hostLink, 'up');
        await inNs('addr', 'add', `${net.boardAddress}/24`, 'dev', 'host0');
        await inNs('link', 'set', 'host0', 'up');
        await inNs('link', 'set', 'lo', 'up');
      } catch (err) {
        net.destroy();
        throw err;
      }
      return net;
    }
    throw new Error('no free 198.18.N.0/24 for the boot test');
  }

  destroy(): void {
    spawnSync('ip', ['link', 'del', this.hostLink], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', this.namespace], { stdio: 'ignore' });
  }
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A Debian root file system booted with `systemd-nspawn --boot` in the test's network
 * namespace. No machined on a CI host: the container is inspected from outside by
 * entering its namespaces (nsenter) around its init, the "leader" process.
 */
export class BootedContainer {
  private exited: Promise<number | null>;
  readonly log: string[] = [];

  private constructor(private readonly child: ChildProcess, readonly leader: number) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async boot(root: string, machine: string, network: BootNetwork, timeoutMs = 60_000): Promise<BootedContainer> {
    const child = spawn('systemd-nspawn', [
      // --private-network as well: only then does nspawn make /proc/sys/net writable (per-namespace sysctls).
      '--boot', `--directory=${root}`, `--machine=${machine}`, '--private-network', `--network-namespace-path=${network.path}`,
      // No system bus or machined on a CI host: run in the caller's cgroup, register nowhere.
      '--register=no', '--keep-unit', '--console=pipe', '--quiet',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const t0 = Date.now();
    let leader: number | undefined;
    while (Date.now() - t0 < timeoutMs && child.exitCode === null) {
      // Re-read every time: nspawn's first child is a short-lived helper that clones the
      // container's init and exits; a pid taken from that moment names nothing later.
      leader = containerInit(child.pid!);
      if (leader !== undefined) {
        const state = await enter(leader, ['systemctl', 'is-system-running']).catch(() => undefined);
        if (state && ['running', 'degraded'].includes(state.stdout.trim())) {
          const container = new BootedContainer(child, leader);
          container.log.push(...output);
          return container;
        }
      }
      await sleep(250);
    }
    // What boot still waits for, before the container goes.
    const waiting = leader === undefined ? '(no container init found)' : (await enter(leader, ['sh', '-c', 'systemctl list-jobs --no-pager; journalctl -b -n 40 --no-pager'])).stdout;
    const exited = child.exitCode;
    child.kill('SIGKILL');
    // nspawn killed outright leaves its init running in the caller's cgroup; it goes too.
    if (leader !== undefined) killQuietly(leader);
    await Promise.race([closed, sleep(5_000)]);
    const how = exited === null ? `did not finish booting within ${timeoutMs} ms` : `exited ${exited} after ${Date.now() - t0} ms`;
    throw new Error(`container ${how}:\n${output.join('').slice(-2000)}\n${waiting.slice(-6000)}`);
  }

  /** Runs a command inside the container (all its namespaces), with a fixed argv. */
  exec(argv: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
    return enter(this.leader, argv, options);
  }

  /** Like exec, and fails with the command's output unless it exits 0. */
  async ok(argv: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<string> {
    const r = await this.exec(argv, options);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code} in the container:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** `systemctl show UNIT -p …` as an object. */
  async show(unit: string, properties: string[]): Promise<Record<string, string>> {
    const out = await this.ok(['systemctl', 'show', unit, ...properties.flatMap((p) => ['-p', p])]);
    return Object.fromEntries(out.trim().split('\n').map((line) => {
      const i = line.indexOf('=');
      return [line.slice(0, i), line.slice(i + 1)];
    }));
  }

  /** nspawn's exit code once the container has shut down by itself (133: it rebooted). */
  async waitForExit(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the container was still running after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** An orderly shutdown (nspawn turns SIGTERM into the container's poweroff), then SIGKILL. */
  async poweroff(timeoutMs = 30_000): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function enter(leader: number, argv: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', ...options.env };
  return new Promise((resolve) => {
    execFile('nsenter', [`--target=${leader}`, '--all', '--', ...argv], { env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
  });
}

/** The container's init: nspawn's child whose pid in its own namespace is 1. */
function containerInit(nspawn: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${nspawn}/task/${nspawn}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return children.find((pid) => {
      const nspid = (/^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '').trim().split(/\s+/);
      return nspid.length > 1 && nspid.at(-1) === '1';
    });
  } catch {
    return undefined;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
