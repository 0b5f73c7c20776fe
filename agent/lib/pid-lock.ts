import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { bootId } from './boot-id.js';
import { isProcessAlive } from './process-alive.js';

/** Who a lock file names: `PID BOOT_ID OWNER…` (or `PID OWNER…` for a lock that does not record boots) on one line. */
export interface LockHolder {
  pid: number;
  /** Undefined for a lock that does not record boots. */
  bootId: string | undefined;
  /** A name for people (`the iot-agent daemon`); may be empty. */
  owner: string;
}

export interface LockKind {
  /**
   * Whether the lock names its holder's boot: a lock left by another boot is stale even if
   * its pid lives again (a lock in /var; one in /run is gone after a reboot anyway).
   */
  recordsBoot: boolean;
}

export interface AcquireOptions extends LockKind {
  /**
   * When the lock names this very process: `held` refuses a second take (one change at a
   * time, even within it); `stale` takes it over (left by an earlier process with this pid).
   */
  ownPid: 'held' | 'stale';
  /** Written after the pid and boot id. */
  owner?: string;
  /** The lock file's mode (its readers are part of its design). */
  mode: number;
  /** Mode of the directory when it has to be created. */
  dirMode: number;
  /** The error for a lock held by a live process. */
  busy(holder: LockHolder): Error;
  /** The error when the lock cannot be taken for another reason (it kept coming back, the directory is not writable). */
  failed(cause: unknown): Error;
}

/**
 * A lock file that names its holder's pid (and boot). One process at a time holds it; a
 * lock whose holder is gone (a crash), or that was written in another boot (the pid may
 * have been reused since), is stale and taken over.
 */
export class PidLock {
  private constructor(readonly file: string) {}

  /** The live process named by `file` (this one included), if any. */
  static async holder(file: string, kind: LockKind): Promise<LockHolder | undefined> {
    const holder = parseLockText(await readFile(file, 'utf8').catch(() => ''), kind);
    return holder && (await isLive(holder, kind)) ? holder : undefined;
  }

  static async acquire(file: string, options: AcquireOptions): Promise<PidLock> {
    const failed = (cause: unknown) => { throw options.failed(cause); };
    await mkdir(path.dirname(file), { recursive: true, mode: options.dirMode }).catch(failed);
    const line = options.recordsBoot ? [process.pid, await bootId(), ...(options.owner ? [options.owner] : [])].join(' ') : `${process.pid} ${options.owner ?? ''}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(file, 'wx', options.mode);
        try {
          await handle.writeFile(`${line}\n`);
        } finally {
          await handle.close();
        }
        return new PidLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw options.failed(err);
        const holder = await PidLock.holder(file, options);
        if (holder && !(holder.pid === process.pid && options.ownPid === 'stale')) throw options.busy(holder);
        // Stale: its holder is gone. Not recursive: a directory in its place is the caller's failure.
        await rm(file, { force: true }).catch(failed);
      }
    }
    throw options.failed(undefined);
  }

  async release(): Promise<void> {
    await rm(this.file, { force: true });
  }
}

/** Runs `action` holding the lock, and releases it however the action ends. */
export async function withPidLock<T>(file: string, options: AcquireOptions, action: () => Promise<T>): Promise<T> {
  const lock = await PidLock.acquire(file, options);
  try {
    return await action();
  } finally {
    await lock.release();
  }
}

/** The holder a lock file names, or undefined when it names no valid pid. Pure. */
export function parseLockText(text: string, kind: LockKind): LockHolder | undefined {
  const [first = '', ...rest] = text.trim().split(' ');
  const pid = Number(first);
  if (!/^[1-9][0-9]*$/.test(first) || !Number.isSafeInteger(pid)) return undefined;
  const boot = kind.recordsBoot ? rest.shift() ?? '' : undefined;
  return { pid, bootId: boot, owner: rest.join(' ') };
}

async function isLive(holder: LockHolder, kind: LockKind): Promise<boolean> {
  if (kind.recordsBoot && holder.bootId !== (await bootId())) return false;
  return holder.pid === process.pid || isProcessAlive(holder.pid);
}
