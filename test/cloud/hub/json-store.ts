import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../../agent/lib/atomic-file.js';

/**
 * Durable JSON files for the hub's state, written atomically (the agent's own writer:
 * temp file, fsync, rename, directory fsync). Writes are coalesced: many changes in a
 * burst (a thousand devices reporting at once) become one or two writes.
 */
export function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  return writeFileAtomic(file, JSON.stringify(value), 0o600);
}

/** The parsed document, or undefined when the file does not exist yet. */
export async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`hub state ${file} is not valid JSON; move it away to start empty`, { cause: err });
  }
}

export class CoalescingJsonFile {
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;

  constructor(private readonly file: string, private readonly snapshot: () => unknown) {}

  /** Resolves once a write that began after this call has reached the disk. */
  save(): Promise<void> {
    if (this.pending) return this.pending;
    if (!this.writing) return this.start();
    this.pending = this.writing.catch(() => undefined).then(() => {
      this.pending = undefined;
      return this.start();
    });
    return this.pending;
  }

  private start(): Promise<void> {
    const write = writeJsonAtomic(this.file, this.snapshot());
    this.writing = write.finally(() => {
      if (this.writing === tracked) this.writing = undefined;
    });
    const tracked = this.writing;
    return write;
  }
}
