import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../errors.js';
import { isProcessAlive } from '../state/process-alive.js';

const LOCK_NAME = 'tpm.lock';
/** The owner name the daemon writes into the lock; CLI commands seeing it ask the daemon instead. */
export const DAEMON_LOCK_OWNER = 'the iot-agent daemon';

/**
 * One process drives the TPM at a time: the daemon while it runs, or a CLI command when it
 * does not. A lock file in the runtime directory holds the owner's pid; a lock whose owner
 * is gone (a crash, a reboot of /run) is taken over.
 */
export class TpmLock {
  private constructor(private readonly file: string) {}

  /** The live process holding the lock, if any: its pid and the owner name it wrote. */
  static async holder(runtimeDir: string): Promise<{ pid: number; owner: string } | undefined> {
    const text = await readFile(path.join(runtimeDir, LOCK_NAME), 'utf8').catch(() => '');
    const [first = '', ...rest] = text.trim().split(' ');
    const pid = Number(first);
    if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive(pid)) return undefined;
    return { pid, owner: rest.join(' ') };
  }

  static async acquire(runtimeDir: string, owner: string): Promise<TpmLock> {
    await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
    const file = path.join(runtimeDir, LOCK_NAME);
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
