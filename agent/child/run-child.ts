import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../log/logger.js';
import { ChildMessageError, parseChildMessage } from './child-message.js';
import { deserializeError, type ErrorClass } from './serialized-error.js';

export interface ChildOptions<Result> {
  /** The helper's entry, relative to dist/agent, e.g. `provisioning/child-main.js`. */
  entry: string;
  /** Names the helper in errors: "the provisioning process". */
  name: string;
  /** The one request, as JSON; the helper checks it. */
  request: object;
  timeoutMs: number;
  /** Aborting it stops the helper. */
  signal?: AbortSignal;
  /** Where the helper's stderr goes, one event per line. */
  log?: Logger;
  /** The classes the helper's errors are rebuilt as (the built-in ones always count). */
  errorClasses: ErrorClass[];
  /** A progress event; throwing (a malformed event) stops the helper. */
  onProgress?: (event: unknown) => void;
  /** Checks the result; throwing stops the run with that error. */
  parseResult: (result: unknown) => Result;
  /** The error for a helper that ended without an answer, timed out or could not start. */
  failure: (message: string, options: { cause?: unknown; hint?: string }) => Error;
}

/** How many of a helper's stderr lines reach the log: a crash's stack, not a flood. */
const MAX_LOGGED_LINES = 50;

/**
 * Runs one request in a short-lived helper process (an entry built beside the CLI) and
 * resolves with its answer: work whose code and memory should not stay in the
 * long-running daemon. The helper gets its request over Node's IPC channel, never as
 * argv for a shell; it is killed when it overruns `timeoutMs` or `signal` aborts, and ends
 * itself when this process goes (its IPC channel closes). Its failures come back as the
 * same error classes.
 */
export function runChild<Result>(options: ChildOptions<Result>): Promise<Result> {
  let entry: string;
  try {
    entry = locateEntry(options.entry);
  } catch (err) {
    return Promise.reject(options.failure((err as Error).message, { hint: 'reinstall iot-agent (or run npm run build)' }));
  }
  const child = fork(entry, {
    // Warnings settings only: a debugger or a heap limit is this process's, not the helper's.
    execArgv: process.execArgv.filter((flag) => /^--(disable-warning|no-deprecation|no-warnings)\b/.test(flag)),
    env: helperEnvironment(process.env),
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'json',
  });
  const { signal } = options;
  return new Promise<Result>((resolve, reject) => {
    // What the helper answered (or what was wrong with its messages), and why it was stopped.
    let answer: { result: Result } | { error: Error } | undefined;
    let stopped: string | undefined;
    let lastLine = '';
    let logged = 0;
    const stop = (why: string) => {
      stopped ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`did not finish within ${Math.round(options.timeoutMs / 1000)} s`), options.timeoutMs);
    const onAbort = () => stop('was stopped');
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();

    createInterface({ input: child.stderr! }).on('line', (line) => {
      lastLine = line.slice(0, 500);
      if (logged++ < MAX_LOGGED_LINES) options.log?.warn('child.output', { child: options.name, pid: child.pid, line: lastLine });
    });
    child.on('message', (message: unknown) => {
      try {
        const parsed = parseChildMessage(message);
        if (parsed.kind === 'progress') options.onProgress?.(parsed.event);
        else if (parsed.kind === 'done') answer = { result: options.parseResult(parsed.result) };
        else answer = { error: deserializeError(parsed.error, options.errorClasses) };
      } catch (err) {
        answer = { error: err instanceof ChildMessageError ? err : new ChildMessageError(`${options.name}: ${describeError(err)}`) };
        stop('sent a malformed message');
      }
    });
    child.on('error', (err) => {
      // The process could not be started (the 'close' that follows settles nothing more). A request
      // the channel could not deliver lands here too: that helper is stopped at the time limit.
      if (child.pid === undefined) settle({ error: options.failure(`could not start ${options.name}`, { cause: err }) });
    });
    // 'close' comes after the exit, the last stderr line and the last message.
    child.on('close', (code, exitSignal) => {
      const malformed = answer && 'error' in answer && answer.error instanceof ChildMessageError;
      if (answer && (stopped === undefined || malformed)) {
        settle(answer);
        return;
      }
      const why = stopped ?? `ended before answering (${exitSignal ? `signal ${exitSignal}` : `exit code ${code}`})`;
      settle({ error: options.failure(`${options.name} ${why}${lastLine ? `: ${lastLine}` : ''}`, {}) });
    });
    child.send(options.request);

    function settle(outcome: { result: Result } | { error: Error }): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if ('error' in outcome) reject(outcome.error);
      else resolve(outcome.result);
    }
  });
}

/**
 * This process's environment without its V8 memory settings (the unit's NODE_OPTIONS):
 * they are for a daemon that runs for years, a helper runs for seconds, and --jitless
 * makes V8 print a warning on every start, which would land in the daemon's log.
 */
export function helperEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.NODE_OPTIONS === undefined) return env;
  const options = env.NODE_OPTIONS.split(/\s/).filter((flag) => flag && !/^--(jitless|max-semi-space-size|max-old-space-size)(=|$)/.test(flag));
  return { ...env, NODE_OPTIONS: options.join(' ') };
}

/**
 * A helper's entry file: under dist/agent seen from this module in the build
 * (dist/agent/child/) and from the bundle's chunks (dist/agent/chunks/), beside it if it
 * was bundled into the CLI itself, or in the build when these sources run directly (tests).
 */
function locateEntry(entry: string): string {
  for (const relative of [`../${entry}`, `./${entry}`, `../../dist/agent/${entry}`]) {
    const file = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(file)) return file;
  }
  throw new Error(`the helper program ${entry} is missing from this installation`);
}
