import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SwtpmInstance } from './swtpm.js';

/**
 * A pseudo-terminal standing in for /dev/tpmrm0, bridged to a real swtpm: the agent's
 * `device:` transport runs unchanged against it (this machine's kernel has no TPM driver,
 * so no vTPM proxy). One bridge serves one swtpm connection at a time, as swtpm does.
 */
export class TpmDeviceBridge {
  private constructor(private readonly child: ChildProcess, readonly path: string) {}

  static async start(swtpm: SwtpmInstance): Promise<TpmDeviceBridge> {
    const script = bridgeScript();
    const child = spawn('/usr/bin/python3', [script, swtpm.host, String(swtpm.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const path = await new Promise<string>((resolve, reject) => {
      child.once('error', (err) => reject(new Error(`python3 is needed for the TPM device bridge (scripts/setup.sh): ${err.message}`)));
      child.once('exit', (code) => reject(new Error(`the TPM device bridge exited with ${code}`)));
      createInterface({ input: child.stdout }).once('line', (line) => resolve(line.trim()));
    });
    return new TpmDeviceBridge(child, path);
  }

  get transport(): string {
    return `device:${this.path}`;
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/** The script beside this file, also when this file runs compiled from dist/test/support. */
function bridgeScript(): string {
  const here = fileURLToPath(new URL('tpm-device-bridge.py', import.meta.url));
  return existsSync(here) ? here : fileURLToPath(new URL('../../../test/support/tpm-device-bridge.py', import.meta.url));
}
