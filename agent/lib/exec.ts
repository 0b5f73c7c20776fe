import { spawn } from 'node:child_process';
import { AgentError } from './errors.js';

export interface ExecOptions {
  timeoutMs: number;
  /** Output kept at most; the program is stopped once it has written more. */
  maxBytes: number;
  /** Written to its standard input, which is then closed; without it, stdin is /dev/null. */
  input?: string;
  /** Its environment; default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** stderr kept at most (the first bytes: enough for the reason). Default 4 KiB. */
  maxStderrBytes?: number;
  signal?: AbortSignal;
  /** The outcome's error when `signal` stops it. */
  abortedWhy?: string;
}

export interface ExecOutcome {
  argv: string[];
  stdout: string;
  /** The first few KiB of stderr: enough for the reason. */
  stderr: string;
  exitCode: number | null;
  /** Set when it could not start (ENOENT: not installed) or was stopped (timeout, abort). */
  error?: string;
  notInstalled: boolean;
  /** It wrote more than maxBytes and was stopped there. */
  truncated: boolean;
  /** It ran out of time (and was stopped). */
  timedOut: boolean;
  durationMs: number;
}

const STDERR_BYTES = 4096;

/**
 * The one way the agent runs a program: a fixed argv (never a shell), bounded in time and
 * in output, so a hung tool or a journal of gigabytes cannot stall or swamp the caller.
 * Never throws: every way of failing is in the outcome.
 */
export function execBounded(argv: readonly string[], options: ExecOptions): Promise<ExecOutcome> {
  const [file, ...args] = argv;
  if (file === undefined) {
    return Promise.resolve({ argv: [], stdout: '', stderr: '', exitCode: null, error: 'empty command', notInstalled: false, truncated: false, timedOut: false, durationMs: 0 });
  }
  const started = performance.now();
  const stderrBytes = options.maxStderrBytes ?? STDERR_BYTES;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    let truncated = false;
    let timedOut = false;
    let stopped: string | undefined;
    let settled = false;
    const finish = (exitCode: number | null, error?: string, notInstalled = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      const stdout = Buffer.concat(chunks).toString('utf8');
      resolve({
        argv: [...argv], stdout, stderr, exitCode, notInstalled, truncated, timedOut, durationMs: Math.round(performance.now() - started),
        ...(error ?? stopped ? { error: error ?? stopped } : {}),
      });
    };
    const child = spawn(file, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let exited = false;
    // A child the program left behind (`cmd &`, a daemon) may hold its stdout open for ever; once
    // the program has ended and we stopped it, the pipes are let go so the outcome is not held
    // up (a writer left behind then gets EPIPE).
    const release = () => {
      child.stdout!.destroy();
      child.stderr!.destroy();
    };
    child.on('exit', () => {
      exited = true;
      if (stopped !== undefined || truncated) release();
    });
    const stop = (why: string) => {
      stopped ??= why;
      if (exited) release();
      else child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop(`stopped after ${options.timeoutMs} ms`);
    }, options.timeoutMs);
    const onAbort = () => stop(options.abortedWhy ?? 'stopped: aborted');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout!.on('data', (chunk: Buffer) => {
      if (truncated) return;
      const room = options.maxBytes - bytes;
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, room));
        bytes = options.maxBytes;
        truncated = true;
        if (exited) release();
        else child.kill('SIGKILL');
        return;
      }
      chunks.push(chunk);
      bytes += chunk.length;
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < stderrBytes) stderr += chunk.toString('utf8').slice(0, stderrBytes - stderr.length);
    });
    if (child.stdin) {
      // A program that exits without reading its input is not a failure of ours.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      finish(null, err.code === 'ENOENT' ? `${file} is not installed` : err.message, err.code === 'ENOENT');
    });
    // A program stopped for writing too much ended as asked: not an error.
    child.on('close', (code, signal) => finish(code, truncated ? undefined : stopped ?? (signal ? `ended by ${signal}` : undefined)));
  });
}

/** What a program that succeeded wrote. */
export interface ExecResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs commands for a caller that treats any failure as an error (the hardening engine, its
 * probes): behind an optional prefix such as `netnsPrefix(NAME)`, so that tests, QA and the
 * field run the same code, only in a different network namespace.
 */
export interface CommandRunner {
  run(argv: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
}

const RUNNER_TIMEOUT_MS = 30_000;
const RUNNER_MAX_BYTES = 16 * 1024 * 1024;

export class ExecRunner implements CommandRunner {
  /** `installHints`: by program name prefix, how to install it (`iptables` → the Debian package). */
  constructor(readonly prefix: readonly string[] = [], private readonly installHints: Readonly<Record<string, string>> = {}) {}

  run(argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const full = [...this.prefix, ...argv];
    if (full.length === 0) throw new Error('empty command');
    return this.runFull(full, argv, options.timeoutMs ?? RUNNER_TIMEOUT_MS, options.input ?? '');
  }

  private async runFull(full: string[], argv: readonly string[], timeoutMs: number, input: string): Promise<ExecResult> {
    const outcome = await execBounded(full, { timeoutMs, maxBytes: RUNNER_MAX_BYTES, maxStderrBytes: RUNNER_MAX_BYTES, input });
    if (outcome.exitCode === 0 && !outcome.truncated) return { stdout: outcome.stdout, stderr: outcome.stderr };
    // ENOENT names the program started: behind a prefix (ip netns exec) that is the prefix's, not argv[0].
    const tool = full[0]!.replace(/^.*\//, '');
    if (outcome.notInstalled) {
      const family = Object.keys(this.installHints).find((k) => tool.startsWith(k));
      throw new AgentError(`${full[0]} is not installed`, { hint: family ? this.installHints[family] : undefined });
    }
    // The cause reads as Node's own execFile error did: the whole command, its stderr and exit code.
    const cause = Object.assign(new Error(`Command failed: ${full.join(' ')}\n${outcome.stderr}`), { code: outcome.exitCode, killed: outcome.timedOut });
    const detail = outcome.stderr.trim().split('\n').filter((l) => !/^# Warning: iptables-legacy tables present/.test(l)).slice(0, 3).join('; ');
    const why = outcome.timedOut ? `timed out after ${timeoutMs} ms`
      : outcome.truncated ? `wrote more than ${RUNNER_MAX_BYTES} bytes`
        : detail || cause.message;
    throw new AgentError(`${argv.join(' ').slice(0, 120)} failed: ${why}`, { cause });
  }
}

/** The argv prefix that runs a program in network namespace `name` (none: the current one). */
export function netnsPrefix(name: string | undefined): string[] {
  return name ? ['ip', 'netns', 'exec', name] : [];
}
