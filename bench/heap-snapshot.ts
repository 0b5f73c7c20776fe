import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Heap snapshots of a running agent, for the benchmarks: the agent is started with
 * `--heapsnapshot-signal=SIGUSR2` in a directory of the benchmark's, and each snapshot is
 * summed up by what V8 calls the object (constructor, string, code, ...). Two summaries
 * side by side show what grows; a snapshot is taken after a full GC, so garbage is not
 * counted, only what is held.
 */

export interface HeapSummary {
  /** Bytes held, all objects. */
  total: number;
  /** Bytes and counts by "type: name" (type is V8's node type: object, string, code, closure, ...). */
  groups: Map<string, { bytes: number; count: number }>;
}

interface SnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Flag to start the agent with, so that SIGUSR2 writes a snapshot into its working directory. */
export const SNAPSHOT_FLAG = '--heapsnapshot-signal=SIGUSR2';

/** Signals `pid` and waits for the snapshot file it writes into `dir`, whole. */
export async function takeSnapshot(pid: number, dir: string, timeoutMs = 60_000): Promise<string> {
  const before = new Set(snapshotsIn(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`no heap snapshot from pid ${pid} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
    const file = snapshotsIn(dir).find((f) => !before.has(f));
    if (!file) continue;
    const size = statSync(file).size;
    // Written in one go by the agent's main thread: whole once the size stops changing and it parses.
    if (size > 0 && size === last) {
      try {
        JSON.parse(readFileSync(file, 'utf8'));
        return file;
      } catch {
        // still being written
      }
    }
    last = size;
  }
}

export function summarize(file: string): HeapSummary {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as SnapshotFile;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const groups = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const bytes = snapshot.nodes[i + sizeAt]!;
    // Strings and numbers are named by their value: group them by kind only.
    const name = /string|number/.test(type) ? '' : String(snapshot.strings[snapshot.nodes[i + nameAt]!]).slice(0, 60).replace(/\s+/g, ' ');
    const key = name ? `${type}: ${name}` : type;
    const group = groups.get(key) ?? { bytes: 0, count: 0 };
    group.bytes += bytes;
    group.count += 1;
    groups.set(key, group);
    total += bytes;
  }
  return { total, groups };
}

/** The groups that changed most between two summaries, largest change first. */
export function growth(before: HeapSummary, after: HeapSummary, rows = 8): { key: string; bytes: number; count: number }[] {
  const keys = new Set([...before.groups.keys(), ...after.groups.keys()]);
  return [...keys].map((key) => {
    const a = before.groups.get(key) ?? { bytes: 0, count: 0 };
    const b = after.groups.get(key) ?? { bytes: 0, count: 0 };
    return { key, bytes: b.bytes - a.bytes, count: b.count - a.count };
  }).sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes)).slice(0, rows);
}

/** The largest groups of one summary. */
export function largest(summary: HeapSummary, rows = 10): { key: string; bytes: number; count: number }[] {
  return [...summary.groups].map(([key, g]) => ({ key, ...g })).sort((x, y) => y.bytes - x.bytes).slice(0, rows);
}

function snapshotsIn(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')).map((f) => path.join(dir, f));
}
