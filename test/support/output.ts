import { vi } from 'vitest';

/**
 * What a CLI command's action returned or threw, and what it wrote to stdout and stderr
 * meanwhile (nothing reaches the terminal). Actions of one test file run one at a time.
 */
export interface Captured<T> {
  result?: T;
  error?: unknown;
  stdout: string;
  stderr: string;
}

export async function captureOutput<T>(action: () => Promise<T>): Promise<Captured<T>> {
  const captured: Captured<T> = { stdout: '', stderr: '' };
  const recorder = (stream: 'stdout' | 'stderr') => (chunk: string | Uint8Array) => {
    captured[stream] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  };
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(recorder('stdout'));
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(recorder('stderr'));
  try {
    captured.result = await action();
  } catch (err) {
    captured.error = err;
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  return captured;
}
