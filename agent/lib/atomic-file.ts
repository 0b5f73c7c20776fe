import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Replaces `file` so that after a power cut it holds either the old or the new content,
 * never a mix: a temporary file in the same directory, written and fsynced, renamed over
 * the target, then the directory fsynced so the rename itself is durable. The mode is set
 * on the new file whatever the umask, and always named by the caller: a file's readers
 * are part of its design (the agent's state is private; a root record the agent reports
 * is readable; one holding other software's firewall rules is not).
 */
export async function writeFileAtomic(file: string, data: string | Buffer, mode: number): Promise<void> {
  const temp = tempPath(file);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(path.dirname(file));
}

/** The same, for callers that must not yield before the file is durable (small synchronous stores). */
export function writeFileAtomicSync(file: string, data: string | Buffer, mode: number): void {
  const temp = tempPath(file);
  const fd = openSync(temp, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    writeFileSync(fd, data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  const dirFd = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** Makes the directory entries written so far (a rename, a new file) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function tempPath(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}
