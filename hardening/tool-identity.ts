import { stat } from 'node:fs/promises';
import path from 'node:path';

const SEARCH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * Which binary a tool name runs, as inode, size and mtime of the file its symlinks lead
 * to (Debian's alternatives switch iptables between nft and legacy by symlink; an upgrade
 * replaces the file). Read without starting a process; null when not found.
 */
export async function toolIdentity(name: string): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), ...SEARCH];
  for (const dir of dirs) {
    try {
      const s = await stat(path.join(dir, name));
      if (s.isFile()) return `${name}:${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      // not in this directory
    }
  }
  return null;
}
