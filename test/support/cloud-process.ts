import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CloudDescription } from '../cloud/cloud.js';

// The built entry point, whether this module runs from dist/ (benchmarks) or from source (tests).
const MAIN = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../cloud/main.js' : '../../dist/test/cloud/main.js', import.meta.url));

/** The first line a child prints on stdout; rejects if it exits first. */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${child.spawnfile} exited with ${code} before printing a line`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
}

/** `npm run cloud` as QA runs it: a process of its own, described by its first stdout line. */
export class CloudProcess {
  private constructor(readonly child: ChildProcess, readonly description: CloudDescription) {}

  /** `addresses`: the DPS address, then one per linked hub; `env`: added to this process's (e.g. fakeTimeEnv). Needs a build (npm run build). */
  static async start(dir: string, addresses: readonly string[], env?: NodeJS.ProcessEnv): Promise<CloudProcess> {
    const [dps, ...hubs] = addresses;
    const args = [MAIN, '--dir', dir, '--dps-address', dps!, ...hubs.flatMap((h) => ['--hub-address', h])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } });
    return new CloudProcess(child, JSON.parse(await firstLine(child)) as CloudDescription);
  }

  /** SIGTERM, and the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    return new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }
}
