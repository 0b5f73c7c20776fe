import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withHosts } from './hosts.js';

// The built CLI, whether this module runs from source (tests) or from dist/ (benchmarks, the fleet drill).
export const CLI_PATH = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../agent/cli.js' : '../../dist/agent/cli.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the built CLI as a technician would, with a fixed argv; `hostsFile` as its /etc/hosts when given. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000, hostsFile?: string): Promise<CliResult> {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run npm run build first (npm test does)`);
  const t0 = performance.now();
  const argv = [CLI_PATH, ...args];
  const { command, args: commandArgs } = hostsFile ? withHosts(hostsFile, process.execPath, argv) : { command: process.execPath, args: argv };
  return new Promise((resolve) => {
    execFile(command, commandArgs, { env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr, ms: performance.now() - t0 });
      });
  });
}
