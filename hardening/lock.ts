import path from 'node:path';
import { AgentError, oneLine } from '../agent/lib/errors.js';
import { withPidLock } from '../agent/lib/pid-lock.js';

/**
 * One change at a time per state directory (the daemon's unit, the guard and a technician
 * may all try, and so may two callers in one process). The lock file names its holder's pid
 * and boot: a lock left by a previous boot, or by a process that is gone, is stale even if
 * the pid was reused since.
 */
export async function withLock<T>(dir: string, action: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, 'lock');
  return withPidLock(lock, {
    // Readable by all (the agent reads the records), writable by root only.
    recordsBoot: true, mode: 0o644, dirMode: 0o755, ownPid: 'held',
    busy: (holder) => lockError(lock, undefined, holder.pid),
    // No cause: the file kept coming back, another change took it between our looks.
    failed: (cause) => cause === undefined ? lockError(lock, cause) : new AgentError(`cannot take the hardening lock ${lock}: ${oneLine(cause)}`, {
      cause, hint: `${path.dirname(lock)} must be a directory root can write`,
    }),
  }, action);
}

function lockError(lock: string, cause: unknown, holder?: number): AgentError {
  return new AgentError(`another hardening change is in progress${holder ? ` (pid ${holder})` : ''}`, {
    cause, hint: `wait for it to finish; remove ${lock} only if that process is gone`,
  });
}
