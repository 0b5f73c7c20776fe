import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';

/** The files at or under `dir` this process holds open (where its descriptors in /proc/self/fd point). */
export function openUnder(dir: string): string[] {
  const targets = readdirSync('/proc/self/fd').map((fd) => {
    try {
      return readlinkSync(path.join('/proc/self/fd', fd));
    } catch {
      return ''; // closed since it was listed (the listing's own descriptor)
    }
  });
  return targets.filter((target) => target === dir || target.startsWith(`${dir}/`));
}
