import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SETUP_HINT = 'unshare and nsenter come with util-linux, iptables, ip and sysctl with scripts/setup.sh';

/**
 * A network namespace of a test's own, held open by a sleeping process and entered through a
 * command prefix (the engine's `commandPrefix`), so that iptables, ip and sysctl run for real
 * without touching the host. As root it is a plain network namespace; for anyone else a user
 * namespace maps the test's user to root inside it, so no privileges are needed. It holds
 * loopback only, and goes away with its process.
 */
export class PrivateNetns {
  private readonly onExit = () => this.holder.kill('SIGKILL');
  readonly prefix: readonly string[];

  private constructor(private readonly holder: ChildProcess, userns: boolean) {
    this.prefix = ['nsenter', `--target=${holder.pid}`, '--net', ...(userns ? ['--user', '--preserve-credentials'] : [])];
    process.once('exit', this.onExit);
  }

  /** A fresh namespace with loopback up. */
  static async create(): Promise<PrivateNetns> {
    const userns = process.getuid?.() !== 0;
    const ns = new PrivateNetns(await hold(['unshare', ...(userns ? ['--user', '--map-root-user'] : []), '--net', 'sleep', '3600']), userns);
    await ns.run(['ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Runs a command inside; fails with its stderr. */
  async run(argv: readonly string[]): Promise<string> {
    try {
      return (await run(this.prefix[0]!, [...this.prefix.slice(1), ...argv], { timeout: 20_000, maxBuffer: 8 << 20 })).stdout;
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      throw new Error(`${argv.join(' ')} in the test namespace failed: ${e.stderr?.trim() || e.message} (${SETUP_HINT})`, { cause: err });
    }
  }

  /** Starts a long-running command inside (the caller ends it). */
  spawn(argv: readonly string[]): ChildProcess {
    return spawn(this.prefix[0]!, [...this.prefix.slice(1), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  destroy(): void {
    process.removeListener('exit', this.onExit);
    this.holder.kill('SIGKILL');
  }
}

/** Starts the process that holds a new network namespace, and waits until it is in it. */
async function hold(argv: readonly string[]): Promise<ChildProcess> {
  const holder = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  holder.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const started = await new Promise<boolean>((resolve) => {
    holder.once('error', () => resolve(false));
    holder.once('spawn', () => resolve(true));
  });
  if (!started) throw new Error(`cannot start ${argv[0]}: ${SETUP_HINT}`);
  const ours = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 250; i++) {
    if (holder.exitCode !== null || holder.signalCode !== null) {
      throw new Error(`cannot create a network namespace (${stderr.trim() || `exit ${holder.exitCode ?? holder.signalCode}`}): ${SETUP_HINT}`);
    }
    try {
      if (readlinkSync(`/proc/${holder.pid}/ns/net`) !== ours) return holder;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  holder.kill('SIGKILL');
  throw new Error(`the namespace holder ${argv.join(' ')} did not enter a new network namespace within 5 s`);
}
