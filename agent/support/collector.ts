import { withDeadline } from '../lib/deadline.js';
import { describeError } from '../lib/errors.js';
import { execBounded, type ExecOutcome } from '../lib/exec.js';

/** One file of a bundle: text as it is, or a value written as JSON. */
export type CollectedFile = { name: string; text: string } | { name: string; json: unknown };

export interface CollectContext {
  /** Aborted when the collector's time is up: programs it started are stopped. */
  readonly signal: AbortSignal;
  /** Runs a program (fixed argv), bounded in time and output, and records it in the manifest. */
  exec(argv: readonly string[], options?: { maxBytes?: number; timeoutMs?: number }): Promise<ExecOutcome>;
}

export interface Collector {
  /** Names it in the manifest, e.g. "tpm". */
  readonly name: string;
  /** What it reads or asks, in words, for the manifest (programs it runs are listed on their own). */
  readonly reads: string;
  readonly timeoutMs: number;
  collect(context: CollectContext): Promise<CollectedFile[]>;
}

/** Something a collector looks for is not on this system (no journal, no journalctl): not a failure. */
export class NotAvailable extends Error {}

export type CollectorStatus = 'ok' | 'failed' | 'timed-out' | 'unavailable';

export interface ManifestEntry {
  name: string;
  reads: string;
  status: CollectorStatus;
  durationMs: number;
  timeoutMs: number;
  files: string[];
  commands: { argv: string[]; exitCode: number | null; durationMs: number; truncated: boolean; error?: string }[];
  error?: string;
}

const DEFAULT_EXEC_MS = 10_000;
/** Plain, untranslated output and no pager: what a support bundle wants from a tool. */
const plainOutputEnv = (): NodeJS.ProcessEnv => ({ ...process.env, LC_ALL: 'C', SYSTEMD_PAGER: '', PAGER: 'cat' });
const DEFAULT_EXEC_BYTES = 1024 * 1024;

/**
 * Runs one collector within its deadline. Whatever happens (a throw, a hang), the result
 * is a manifest entry; files come only from a collector that finished in time.
 */
export async function runCollector(collector: Collector): Promise<{ entry: ManifestEntry; files: CollectedFile[] }> {
  const started = performance.now();
  const abort = new AbortController();
  const commands: ManifestEntry['commands'] = [];
  const context: CollectContext = {
    signal: abort.signal,
    exec: async (argv, options = {}) => {
      const outcome = await execBounded(argv, {
        timeoutMs: Math.min(options.timeoutMs ?? DEFAULT_EXEC_MS, collector.timeoutMs),
        maxBytes: options.maxBytes ?? DEFAULT_EXEC_BYTES,
        signal: abort.signal,
        abortedWhy: 'stopped: the collector ran out of time',
        env: plainOutputEnv(),
      });
      commands.push({
        argv: outcome.argv, exitCode: outcome.exitCode, durationMs: outcome.durationMs, truncated: outcome.truncated,
        ...(outcome.error ? { error: outcome.error } : {}),
      });
      return outcome;
    },
  };
  const entry = (status: CollectorStatus, files: CollectedFile[], error?: string): ManifestEntry => ({
    name: collector.name, reads: collector.reads, status, durationMs: Math.round(performance.now() - started), timeoutMs: collector.timeoutMs,
    files: files.map((f) => f.name), commands: [...commands], ...(error === undefined ? {} : { error }),
  });

  type Outcome = { files: CollectedFile[] } | { err: unknown } | 'timed-out';
  const work: Promise<Outcome> = collector.collect(context).then((files) => ({ files }), (err: unknown) => ({ err }));
  const outcome = await withDeadline(work, collector.timeoutMs, (): Outcome => 'timed-out');
  if (outcome === 'timed-out') {
    abort.abort();
    return { entry: entry('timed-out', [], `did not finish within ${collector.timeoutMs} ms`), files: [] };
  }
  if ('err' in outcome) {
    const status = outcome.err instanceof NotAvailable ? 'unavailable' : 'failed';
    return { entry: entry(status, [], describeError(outcome.err)), files: [] };
  }
  return { entry: entry('ok', outcome.files), files: outcome.files };
}
