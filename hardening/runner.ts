import { execFile } from 'node:child_process';
import { AgentError } from '../agent/errors.js';

/**
 * Runs the engine's commands: always execFile with a fixed argv (never a shell), behind
 * an optional prefix such as `['ip', 'netns', 'exec', NAME]` so that tests, QA and the
 * field run the same code, only in a different network namespace.
 */
export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface CommandRunner {
  run(argv: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<CommandResult>;
}

const HINTS: Record<string, string> = {
  'iptables': 'install the Debian package iptables (scripts/setup.sh)',
  'ip6tables': 'install the Debian package iptables (scripts/setup.sh)',
  'sysctl': 'install the Debian package procps',
  'ip': 'install the Debian package iproute2',
};

export class ExecRunner implements CommandRunner {
  constructor(readonly prefix: readonly string[] = []) {}

  run(argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    const full = [...this.prefix, ...argv];
    const [file, ...args] = full;
    if (file === undefined) throw new Error('empty command');
    return new Promise((resolve, reject) => {
      const child = execFile(file, args, { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (!err) return resolve({ stdout, stderr });
          const e = err as NodeJS.ErrnoException & { killed?: boolean };
          // ENOENT names `file`: behind a prefix (ip netns exec) that is the prefix's program, not argv[0].
          const tool = file.replace(/^.*\//, '');
          if (e.code === 'ENOENT') {
            const family = Object.keys(HINTS).find((k) => tool.startsWith(k));
            return reject(new AgentError(`${file} is not installed`, { hint: family ? HINTS[family] : undefined }));
          }
          const detail = stderr.trim().split('\n').filter((l) => !/^# Warning: iptables-legacy tables present/.test(l)).slice(0, 3).join('; ');
          const why = e.killed ? `timed out after ${options.timeoutMs ?? 30_000} ms` : detail || e.message;
          reject(new AgentError(`${argv.join(' ').slice(0, 120)} failed: ${why}`, { cause: err }));
        });
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input ?? '');
    });
  }
}
