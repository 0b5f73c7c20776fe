import { NotAvailable, type Collector } from './collector.js';
import type { BundleSources } from './sources.js';

/** The agent's units: the daemon, the boot-time hardening, its guard, and each remote apply. */
export const JOURNAL_UNITS = ['iot-agent', 'iot-agent-hardening', 'iot-agent-hardening-guard', 'iot-agent-harden-apply@*'] as const;
/**
 * Most journal text kept. A day of the agent at info level is far below it (the README says
 * how much); a board stuck in a fast failure loop at debug level is cut to the newest lines.
 */
export const MAX_JOURNAL_BYTES = 8 * 1024 * 1024;

export function journalArgv(since: Date): string[] {
  return [
    'journalctl', '--no-pager', '-o', 'short-iso', '--since', `@${Math.floor(since.getTime() / 1000)}`,
    ...JOURNAL_UNITS.flatMap((unit) => ['-u', unit]),
    // Newest first, so that a journal over the limit is cut at its old end; put back in order below.
    '--reverse',
  ];
}

/**
 * The units' journal since `--since`, oldest first, bounded in bytes. No journalctl, or no
 * journal on this system, is recorded as unavailable: a board without journald still gets
 * its bundle.
 */
export function journalCollector(sources: BundleSources): Collector {
  const argv = journalArgv(sources.since);
  return {
    name: 'journal', reads: `the journal of ${JOURNAL_UNITS.join(', ')} since ${sources.since.toISOString()}`, timeoutMs: 15_000,
    collect: async (context) => {
      const outcome = await context.exec(argv, { maxBytes: MAX_JOURNAL_BYTES, timeoutMs: 15_000 });
      if (outcome.notInstalled) throw new NotAvailable('journalctl is not installed: no journal on this system');
      const lines = outcome.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('-- No entries --'));
      if (lines.length === 0 && /No journal files were found/i.test(outcome.stderr)) {
        throw new NotAvailable('no journal files on this system (journald does not keep one)');
      }
      if (outcome.error || (outcome.exitCode !== 0 && !outcome.truncated)) {
        throw new Error(`journalctl failed: ${outcome.error ?? `exit code ${outcome.exitCode}`}${outcome.stderr ? `: ${outcome.stderr.trim().split('\n')[0]}` : ''}`);
      }
      // A cut journal ends in a partial line: it is the oldest, drop it.
      if (outcome.truncated) lines.pop();
      lines.reverse();
      // journalctl's own notes, e.g. that an unprivileged user sees only part of the journal.
      const notes = outcome.stderr.split('\n').filter((l) => l.trim() !== '').slice(0, 3).map((l) => `-- journalctl: ${l.trim()} --`);
      const header = [...notes, ...(outcome.truncated ? [`-- cut to the newest ${MAX_JOURNAL_BYTES} bytes: older lines left out --`] : [])];
      return [{ name: 'journal.txt', text: [...header, ...lines, ''].join('\n') }];
    },
  };
}

/** The daemon's in-memory ring of recent log lines, at its current level. */
export function daemonLogCollector(sources: BundleSources): Collector {
  return {
    name: 'daemon-log', reads: 'the running daemon\'s recent log lines (memory)', timeoutMs: 2_000,
    collect: () => {
      if (!sources.daemon) return Promise.reject(new NotAvailable('the daemon does not run: its recent lines are in the journal only'));
      const { recentLog, logLevel } = sources.daemon;
      return Promise.resolve([{ name: 'daemon-log.txt', text: [`-- ${recentLog.length} recent lines at level ${logLevel}, oldest first --`, ...recentLog, ''].join('\n') }]);
    },
  };
}
