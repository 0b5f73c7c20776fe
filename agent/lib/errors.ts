/**
 * Errors are values with a cause and a hint, created where the failure is understood.
 * The CLI prints them on one line; the daemon logs them with their cause chain.
 */
import { inspect } from 'node:util';

/**
 * Every exit code of the program in one table, so scripts and systemd can branch on them.
 * The last two are the daemon's (`iot-agent run`), in the sysexits.h range: systemd's
 * Restart=on-failure starts a fresh process after either.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  tpmUnavailable: 3,
  /** EX_SOFTWARE: an uncaught exception; the daemon exits so that a clean process takes over. */
  internalError: 70,
  /** EX_TEMPFAIL: the restartAgent command asked for a fresh process. */
  restartRequested: 75,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface AgentErrorOptions {
  cause?: unknown;
  hint?: string;
  exitCode?: ExitCode;
}

export class AgentError extends Error {
  /**
   * What the class's errors are called (their `name`, first in a stack, and the class they
   * are rebuilt as in another process). Each subclass names itself here, in source: the
   * bundle minifies class names.
   */
  static readonly errorName: string = 'AgentError';

  readonly hint: string | undefined;
  readonly exitCode: ExitCode;

  constructor(message: string, options: AgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.errorName;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failure;
  }
}

/** The message of an error followed by the messages of its causes, without repeats. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    // A thrown non-Error (an SDK's plain object) is shown as it is, not as [object Object].
    const message = current instanceof Error ? current.message : typeof current === 'string' ? current : inspect(current, { breakLength: Infinity });
    if (message && !parts.some((p) => p.includes(message))) parts.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ');
}

/** One line for a person: what failed, why, and what to do about it. */
export function oneLine(err: unknown): string {
  const hint = err instanceof AgentError && err.hint ? ` (hint: ${err.hint})` : '';
  return (describeError(err) + hint).replace(/\s*\n\s*/g, ' ');
}

export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof AgentError ? err.exitCode : ExitCode.failure;
}
