import { createWriteStream } from 'node:fs';
import { chmod, open, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { create } from 'tar';
import { AgentError } from '../lib/errors.js';

/**
 * Packs `dir/<folder>` into a gzip'ed tar at `file`, created owner-only (0600) and never
 * over an existing file: a bundle is for the people who look after the board, nobody else.
 * `portable` leaves out the owner names and ids of the machine that made it. When packing
 * fails, the file it created is removed again.
 */
export async function writeArchive(dir: string, folder: string, file: string): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AgentError(`cannot create ${file} (${code ?? String(err)})`, {
      cause: err,
      hint: code === 'EEXIST' ? 'a bundle of that name exists: wait a second and run it again'
        : code === 'EACCES' ? 'choose a directory you can write to with --output' : undefined,
    });
  }
  try {
    await chmod(file, 0o600); // whatever the umask did to the mode
    await pipeline(create({ gzip: true, cwd: dir, portable: true }, [folder]), createWriteStream('', { fd: handle, flush: true }));
  } catch (err) {
    await handle.close().catch(() => undefined);
    // Not a cut-off archive under a bundle's name, nor one that makes the next try fail with
    // EEXIST; a failure to remove it must not hide why packing failed.
    await unlink(file).catch(() => undefined);
    throw new AgentError(`cannot write ${file}`, { cause: err });
  }
}
