import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from './errors.js';

/**
 * Reads, as root, a small file that a less trusted user writes in a directory of its own
 * (the agent's requests in /run/iot-agent, its cached assignment in /var/lib/iot-agent).
 * That user controls the content and can race the reader, so: the last path component is
 * never followed (no symlink to /etc/shadow), opening never blocks (no FIFO), the file must
 * be a regular file with one link, owned by the directory's owner (no hard link to someone
 * else's file), at most `maxBytes`, and valid UTF-8. It is read once, from the descriptor
 * that was checked; the caller parses that text once. Errors name the file and what was
 * wrong with it, never its content.
 */
export async function readUntrustedFile(file: string, maxBytes: number): Promise<string> {
  const refuse = (why: string, cause?: unknown) => new AgentError(`refused ${file}: ${why}`, { cause });
  const dir = await lstat(path.dirname(file)).catch((err: NodeJS.ErrnoException) => {
    throw refuse(`its directory cannot be read (${err.code ?? err.message})`, err);
  });
  if (!dir.isDirectory()) throw refuse('its directory is not a directory');
  if ((dir.mode & 0o002) !== 0) throw refuse('its directory is writable by everyone');

  // (Node opens every descriptor close-on-exec.)
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const handle = await open(file, flags).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new AgentError(`${file} does not exist`, { cause: err });
    throw refuse(err.code === 'ELOOP' ? 'it is a symbolic link' : `it cannot be opened (${err.code ?? err.message})`, err);
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw refuse('it is not a regular file');
    if (stat.nlink !== 1) throw refuse(`it has ${stat.nlink} links`);
    if (stat.uid !== dir.uid) throw refuse(`it is owned by uid ${stat.uid}, not by its directory's owner ${dir.uid}`);
    if (stat.size > maxBytes) throw refuse(`it is ${stat.size} bytes, more than ${maxBytes}`);
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw refuse(`it grew past ${maxBytes} bytes while being read`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, length));
    } catch (err) {
      throw refuse('it is not UTF-8 text', err);
    }
  } finally {
    await handle.close();
  }
}
