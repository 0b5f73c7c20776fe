import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { writeFileAtomic } from '../lib/atomic-file.js';

const FILE = 'executed-commands.json';
const KIND = 'iot-agent/executed-commands';
/** How many C2D command ids are remembered (oldest forgotten first). */
export const REMEMBERED_IDS = 1000;

export interface ExecutedEntry {
  id: string;
  command: string;
  at: string;
  status?: number;
}

/**
 * C2D command ids already taken on, kept on disk so a redelivered message (at-least-once
 * C2D, or a restart before the broker saw the PUBACK) is never executed twice. An id is
 * recorded once its envelope is accepted for execution and before the command runs: a
 * crash mid-command means at most once, which is what a reboot or a hardening change
 * needs; an envelope refused (unknown command, invalid arguments, busy) is not recorded.
 */
export class ExecutedIds {
  private entries: ExecutedEntry[] = [];
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly file: string, private readonly log: Logger) {}

  static async open(stateDir: string, log: Logger): Promise<ExecutedIds> {
    const store = new ExecutedIds(path.join(stateDir, FILE), log);
    try {
      const doc = JSON.parse(await readFile(store.file, 'utf8')) as { kind?: string; entries?: ExecutedEntry[] };
      if (doc.kind !== KIND || !Array.isArray(doc.entries)) throw new Error(`not a ${KIND} document`);
      store.entries = doc.entries.filter((e) => typeof e?.id === 'string').slice(-REMEMBERED_IDS);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('command.executed_ids_invalid', { file: store.file, err, treatedAs: 'empty' });
    }
    return store;
  }

  count(): number {
    return this.entries.length;
  }

  find(id: string): ExecutedEntry | undefined {
    return this.entries.find((e) => e.id === id);
  }

  /** Records `id` durably; resolves once it is on disk. */
  record(entry: ExecutedEntry): Promise<void> {
    this.entries.push(entry);
    if (this.entries.length > REMEMBERED_IDS) this.entries.splice(0, this.entries.length - REMEMBERED_IDS);
    return this.save();
  }

  finish(id: string, status: number): Promise<void> {
    const entry = this.find(id);
    if (!entry) return Promise.resolve();
    entry.status = status;
    return this.save();
  }

  private save(): Promise<void> {
    const text = JSON.stringify({ kind: KIND, entries: this.entries });
    this.writing = this.writing.then(() => writeFileAtomic(this.file, text, 0o600)).catch((err: unknown) => {
      this.log.warn('command.executed_ids_write_failed', { file: this.file, err });
    });
    return this.writing;
  }
}
