import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../agent/lib/errors.js';
import type { CommandRunner } from '../agent/lib/exec.js';

/**
 * Reading and writing live sysctls. net.* sysctls belong to the network namespace of the
 * process that opens /proc/sys, so inside the engine's own namespace the files are read
 * and written directly (no process per apply); behind a command prefix such as
 * `ip netns exec NAME` one `sysctl` process reads all keys, and one writes them.
 */
export interface SysctlIo {
  /** Each key's value, or null when the kernel lacks it (IPv6 keys without IPv6). */
  read(keys: readonly string[]): Promise<Record<string, string | null>>;
  write(values: Record<string, string>): Promise<void>;
}

/** Keys are dotted paths under /proc/sys; ours never hold a dot inside one name. */
const KEY = /^[a-z0-9_]+(\.[a-z0-9_]+)+$/;

export class ProcSysctl implements SysctlIo {
  constructor(private readonly procSys = '/proc/sys') {}

  async read(keys: readonly string[]): Promise<Record<string, string | null>> {
    return Object.fromEntries(await Promise.all(keys.map(async (key) => {
      const file = this.file(key);
      try {
        return [key, (await readFile(file, 'utf8')).trim()] as const;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [key, null] as const;
        throw new AgentError(`cannot read sysctl ${key}`, { cause: err });
      }
    })));
  }

  async write(values: Record<string, string>): Promise<void> {
    // One after another, like `sysctl -w k1=v1 k2=v2`: `all` keys before `default` ones as given.
    for (const [key, value] of Object.entries(values)) {
      const file = this.file(key);
      try {
        await writeFile(file, `${value}\n`);
      } catch (err) {
        throw new AgentError(`cannot set sysctl ${key}=${value}`, { cause: err, hint: 'the hardening step runs as root with CAP_NET_ADMIN' });
      }
    }
  }

  private file(key: string): string {
    if (!KEY.test(key)) throw new AgentError(`invalid sysctl key ${JSON.stringify(key)}`);
    return path.join(this.procSys, ...key.split('.'));
  }
}

export class CommandSysctl implements SysctlIo {
  constructor(private readonly runner: CommandRunner) {}

  async read(keys: readonly string[]): Promise<Record<string, string | null>> {
    const values: Record<string, string | null> = Object.fromEntries(keys.map((k) => [k, null]));
    if (keys.length === 0) return values;
    // -e: a key the kernel lacks is left out instead of failing the whole read.
    const { stdout } = await this.runner.run(['sysctl', '-e', ...keys]);
    for (const line of stdout.split('\n')) {
      const m = /^(\S+)\s*=\s*(.*)$/.exec(line);
      if (m && m[1]! in values) values[m[1]!] = m[2]!.trim();
    }
    return values;
  }

  async write(values: Record<string, string>): Promise<void> {
    const pairs = Object.entries(values).map(([k, v]) => `${k}=${v}`);
    if (pairs.length) await this.runner.run(['sysctl', '-q', '-w', ...pairs]);
  }
}
