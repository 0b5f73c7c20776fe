import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeFileAtomicSync } from '../../agent/lib/atomic-file.js';

/**
 * One JSON document in one file of the local cloud's state, readable by its user only (0600
 * in a 0700 directory) and written with the agent's atomic write (temp file, fsync, rename,
 * directory fsync), so a crash leaves the old or the new document, never half of one.
 *
 * Two ways to save: `saveNow` is synchronous, for small documents a caller must be able to
 * rely on once it has answered (DPS's enrollments); `save` coalesces, so that many changes in
 * a burst (a thousand devices reporting at once) become one or two writes, each of the
 * snapshot taken when that write starts (the hub's registry).
 */
export class JsonStore<T> {
  private snapshot: (() => T) | undefined;
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;

  constructor(
    readonly file: string,
    /** Returns the parsed document typed; throws, saying why, when it is not a T. */
    private readonly check: (doc: unknown) => T,
  ) {}

  /** The stored document, or undefined when the file does not exist yet. */
  load(): T | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new Error(`${this.file} is not valid JSON; move it away to start afresh`, { cause: err });
    }
    try {
      return this.check(doc);
    } catch (err) {
      throw new Error(`${this.file}: ${(err as Error).message}; move it away to start afresh`, { cause: err });
    }
  }

  /** Writes `doc` and returns once it is on disk. */
  saveNow(doc: T): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    writeFileAtomicSync(this.file, serialise(doc), 0o600);
  }

  /** Resolves once a write that began after this call, of the latest `snapshot` given, has reached the disk. */
  save(snapshot: () => T): Promise<void> {
    this.snapshot = snapshot;
    if (this.pending) return this.pending;
    if (!this.writing) return this.start();
    this.pending = this.writing.then(() => {
      this.pending = undefined;
      return this.start();
    });
    return this.pending;
  }

  private start(): Promise<void> {
    const write = (async () => {
      mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.file, serialise(this.snapshot!()), 0o600);
    })();
    // Settles either way: a failed write is the caller's to see, the next one goes ahead.
    const settled: Promise<void> = write.catch(() => undefined).then(() => {
      if (this.writing === settled) this.writing = undefined;
    });
    this.writing = settled;
    return write;
  }
}

function serialise(doc: unknown): string {
  return `${JSON.stringify(doc)}\n`;
}
