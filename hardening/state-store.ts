import { closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../agent/errors.js';

/**
 * Small durable files: written to a temporary file, fsynced, renamed over the old one and
 * the directory fsynced, so a power cut leaves either the old or the new content.
 */
export async function writeFileAtomic(file: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.tmp-${process.pid}`;
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  syncDirectory(path.dirname(file));
}

function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  }
}

export async function readTextOrNull(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Where the hardening engine keeps its records, under the root it works on. */
export const DEFAULT_STATE_DIR = 'var/lib/iot-agent-hardening';

/**
 * JSON records of the hardening engine, one file each, in the state directory. Mode 0644:
 * nothing in them is secret, and the unprivileged agent reads them (only root writes).
 */
export class StateStore {
  constructor(readonly dir: string) {}

  async read<T>(name: string): Promise<T | null> {
    const file = path.join(this.dir, `${name}.json`);
    const text = await readTextOrNull(file);
    if (text === null) return null;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new AgentError(`hardening state ${file} is corrupt`, { cause: err, hint: 'remove it and apply a profile again' });
    }
  }

  async write(name: string, value: unknown): Promise<void> {
    await writeFileAtomic(path.join(this.dir, `${name}.json`), `${JSON.stringify(value, null, 2)}\n`, 0o644);
  }

  async remove(name: string): Promise<void> {
    await rm(path.join(this.dir, `${name}.json`), { force: true });
  }
}
