import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../agent/errors.js';
import { isProcessAlive } from '../agent/state/process-alive.js';

let bootIdRead: Promise<string> | undefined;

/** This boot's id, read once per process (it cannot change while the process lives). */
export function bootId(): Promise<string> {
  bootIdRead ??= readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((text) => text.trim(), () => 'unknown');
  return bootIdRead;
}

/**
 * One change at a time per state directory (the daemon's unit, the guard and a technician
 * may all try). The lock file names its holder's pid and boot: a lock left by a previous
 * boot, or by a process that is gone, is stale even if the pid was reused since.
 */
export async function withLock<T>(dir: string, action: () => Promise<T>): Promise<T> {
  // Readable by all (the agent reads the records), writable by root only.
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const lock = path.join(dir, 'lock');
  const owner = `${process.pid} ${await bootId()}`;
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(lock, `${owner}\n`, { flag: 'wx', mode: 0o644 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw lockError(lock, err);
      const [pid = '', boot = ''] = (await readFile(lock, 'utf8').catch(() => '')).trim().split(' ');
      const holder = Number(pid);
      const live = boot === owner.split(' ')[1] && Number.isInteger(holder) && holder > 0 && (holder === process.pid || isProcessAlive(holder));
      if (live) throw lockError(lock, undefined, holder);
      await rm(lock, { force: true });
    }
  }
  try {
    return await action();
  } finally {
    await rm(lock, { force: true });
  }
}

function lockError(lock: string, cause: unknown, holder?: number): AgentError {
  return new AgentError(`another hardening change is in progress${holder ? ` (pid ${holder})` : ''}`, {
    cause, hint: `wait for it to finish; remove ${lock} only if that process is gone`,
  });
}
