import path from 'node:path';
import { AgentError } from '../lib/errors.js';
import { PidLock, type LockHolder } from '../lib/pid-lock.js';

const LOCK_NAME = 'tpm.lock';
/** The owner name the daemon writes into the lock; CLI commands seeing it ask the daemon instead. */
export const DAEMON_LOCK_OWNER = 'the iot-agent daemon';

/**
 * One process drives the TPM at a time: the daemon while it runs, or a CLI command when it
 * does not. A lock file in the runtime directory holds the owner's pid and name (no boot:
 * /run starts empty at every boot); a lock whose owner is gone (a crash) is taken over, and
 * so is one naming this very process (left by an earlier process with the same pid).
 */
export class TpmLock {
  private constructor(private readonly lock: PidLock) {}

  /** The live process holding the lock, if any: its pid and the owner name it wrote. */
  static async holder(runtimeDir: string): Promise<{ pid: number; owner: string } | undefined> {
    const holder = await PidLock.holder(path.join(runtimeDir, LOCK_NAME), { recordsBoot: false });
    return holder && { pid: holder.pid, owner: holder.owner };
  }

  static async acquire(runtimeDir: string, owner: string): Promise<TpmLock> {
    const file = path.join(runtimeDir, LOCK_NAME);
    return new TpmLock(await PidLock.acquire(file, {
      owner, recordsBoot: false, mode: 0o600, dirMode: 0o700, ownPid: 'stale',
      busy: (holder: LockHolder) => new AgentError(`the TPM is in use by ${holder.owner || 'another process'} (pid ${holder.pid})`, {
        hint: 'wait for it to finish, or stop the iot-agent service first',
      }),
      failed: (cause) => (cause instanceof Error ? cause : new AgentError(`cannot take the TPM lock ${file}`)),
    }));
  }

  async release(): Promise<void> {
    await this.lock.release();
  }
}
