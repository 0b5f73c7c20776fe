import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../errors.js';
import { isProcessAlive } from '../state/process-alive.js';

/**
 * One process drives the TPM at a time: the daemon while it runs, or a CLI command when it
 * does not. A lock file in the runtime directory holds the owner's pid; a lock whose owner
 * is gone (a crash, a reboot of /run) is taken over.
 */
export class TpmLock {
  private constructor(private readonly file: string) {}

  static async acquire(runtimeDir: string, owner: string): Promise<TpmLock> {
    await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
    const file = path.join(runtimeDir, 'tpm.lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(file, 'wx', 0o600);
        await handle.writeFile(`${process.pid} ${owner}\n`);
        await handle.close();
        return new TpmLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = await readFile(file, 'utf8').catch(() => '');
        const pid = Number(holder.split(' ')[0]);
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isProcessAlive(pid)) {
          throw new AgentError(`the TPM is in use by ${holder.trim().split(' ').slice(1).join(' ') || 'another process'} (pid ${pid})`, {
            hint: 'wait for it to finish, or stop the iot-agent service first',
          });
        }
        await rm(file, { force: true }); // stale: its owner is gone
      }
    }
    throw new AgentError(`cannot take the TPM lock ${file}`);
  }

  async release(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
