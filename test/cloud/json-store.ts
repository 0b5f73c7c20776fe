import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../../agent/lib/atomic-file.js';

/**
 * One JSON document `{"version": n, "data": …}` in one file, written atomically (temp file, fsync, rename, fsync of
 * the directory) so a crash leaves either the old or the new document, never half of one.
 * Writes are synchronous: the documents are small, and a caller that has been told
 * "saved" can rely on it surviving a power cut.
 */
export class JsonStore<T> {
  constructor(
    readonly file: string,
    private readonly version: number,
    /** Checks the stored data and returns it typed; throws when it is not a T. */
    private readonly check: (data: unknown) => T,
  ) {}

  /** The stored document, or `initial` when the file does not exist yet. */
  load(initial: () => T): T {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return initial();
      throw err;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new Error(`${this.file} is not valid JSON; move it away to start afresh`, { cause: err });
    }
    const doc = value as { version?: unknown; data?: unknown } | null;
    if (typeof doc !== 'object' || doc === null || doc.version !== this.version) {
      throw new Error(`${this.file} is not a version ${this.version} document; move it away to start afresh`);
    }
    return this.check(doc.data);
  }

  save(value: T): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    writeFileAtomicSync(this.file, `${JSON.stringify({ version: this.version, data: value }, null, 2)}\n`, 0o600);
  }
}
