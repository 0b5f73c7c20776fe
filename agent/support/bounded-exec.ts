import { spawn } from 'node:child_process';

export interface ExecOptions {
  timeoutMs: number;
  /** Output kept at most; the program is stopped once it has written more. */
  maxBytes: number;
  signal?: AbortSignal;
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
  durationMs: number;
}

const STDERR_BYTES = 4096;

/**
 * Runs a program with a fixed argv (never a shell), bounded in time and in output: a hung
 * tool, or a journal of gigabytes, cannot stall or swamp a support bundle. Never throws:
 * every way of failing is in the outcome, for the bundle's manifest.
 */
export function execBounded(argv: readonly string[], options: ExecOptions): Promise<ExecOutcome> {
  const [file, ...args] = argv;
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    let truncated = false;
    let stopped: string | undefined;
    let settled = false;
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', SYSTEMD_PAGER: '', PAGER: 'cat' } });
    const stop = (why: string) => {
      stopped ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`stopped after ${options.timeoutMs} ms`), options.timeoutMs);
    const onAbort = () => stop('stopped: the collector ran out of time');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (exitCode: number | null, error?: string, notInstalled = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      const stdout = Buffer.concat(chunks).toString('utf8');
      resolve({
        argv: [...argv], stdout, stderr, exitCode, notInstalled, truncated, durationMs: Math.round(performance.now() - started),
        ...(error ?? stopped ? { error: error ?? stopped } : {}),
      });
    };
    child.stdout.on('data', (chunk: Buffer) => {
      if (truncated) return;
      const room = options.maxBytes - bytes;
      if (chunk.length >= room) {
        chunks.push(chunk.subarray(0, room));
        bytes = options.maxBytes;
        truncated = true;
        child.kill('SIGKILL');
        return;
      }
      chunks.push(chunk);
      bytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_BYTES) stderr += chunk.toString('utf8').slice(0, STDERR_BYTES - stderr.length);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      finish(null, err.code === 'ENOENT' ? `${file} is not installed` : err.message, err.code === 'ENOENT');
    });
    // A program stopped for writing too much ended as asked: not an error.
    child.on('close', (code, signal) => finish(code, truncated ? undefined : stopped ?? (signal ? `ended by ${signal}` : undefined)));
  });
}
