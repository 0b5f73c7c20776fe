import { describe, expect, it } from 'vitest';
import { AgentError, describeError, ExitCode, exitCodeOf, oneLine } from '../../agent/lib/errors.js';

describe('errors for people', () => {
  it('chains causes into one line with the hint last', () => {
    const root = new Error('connect ECONNREFUSED 127.0.0.1:9');
    const err = new AgentError('swtpm 127.0.0.1:9: TPM2_ReadPublic failed', { cause: root, hint: 'start swtpm' });
    expect(oneLine(err)).toBe('swtpm 127.0.0.1:9: TPM2_ReadPublic failed: connect ECONNREFUSED 127.0.0.1:9 (hint: start swtpm)');
  });

  it('does not repeat a cause already contained in the message', () => {
    const root = new Error('disk full');
    expect(describeError(new Error('write failed: disk full', { cause: root }))).toBe('write failed: disk full');
  });

  it('folds multi-line messages and handles non-errors', () => {
    expect(oneLine(new Error('a\n  b'))).toBe('a b');
    expect(oneLine('plain')).toBe('plain');
    expect(describeError(undefined)).toBe('');
  });

  it('carries an exit code, defaulting to failure', () => {
    expect(exitCodeOf(new AgentError('x', { exitCode: ExitCode.usage }))).toBe(2);
    expect(exitCodeOf(new Error('x'))).toBe(1);
  });

  it('keeps every exit code in one table, each number once, the daemon\'s own in the sysexits.h range', () => {
    const codes = Object.values(ExitCode);
    expect(new Set(codes).size).toBe(codes.length);
    expect(ExitCode).toMatchObject({ internalError: 70, restartRequested: 75 });
  });
});

describe('errors for people: edge cases', () => {
  it('names an error as its class says, so logs and stacks tell the kinds apart, minified or not', () => {
    class TpmTimeoutError extends AgentError {
      static override readonly errorName: string = 'TpmTimeoutError';
    }
    // What the bundle's minifier does to the class.
    Object.defineProperty(TpmTimeoutError, 'name', { value: 'e' });
    expect(new AgentError('x').name).toBe('AgentError');
    expect(new TpmTimeoutError('x').name).toBe('TpmTimeoutError');
    expect(new TpmTimeoutError('x').stack).toMatch(/^TpmTimeoutError: x\n/);
  });

  it('keeps the cause it was given, and none when given none', () => {
    const root = new Error('root');
    expect(new AgentError('x', { cause: root }).cause).toBe(root);
    expect('cause' in new AgentError('x')).toBe(false);
    expect(new AgentError('x').hint).toBeUndefined();
  });

  it('skips an empty message in the chain and describes null as nothing', () => {
    expect(describeError(new AgentError('', { cause: new Error('disk full') }))).toBe('disk full');
    expect(describeError(null)).toBe('');
    expect(describeError({ code: 'ECONNRESET', retryable: true })).toBe("{ code: 'ECONNRESET', retryable: true }");
    expect(describeError(new Error('upload failed', { cause: 42 }))).toBe('upload failed: 42');
    expect(describeError(new Error('top', { cause: null }))).toBe('top');
  });

  it('describes a non-error cause by its text', () => {
    expect(describeError(new Error('write failed', { cause: 'EIO' }))).toBe('write failed: EIO');
    expect(describeError(42)).toBe('42');
  });

  it('stops after eight causes, so a cause chain that loops back on itself cannot hang it', () => {
    const chain = Array.from({ length: 10 }, (_, i) => new Error(`level ${i}`));
    chain.forEach((err, i) => { if (i < chain.length - 1) (err as { cause?: unknown }).cause = chain[i + 1]; });
    expect(describeError(chain[0])).toBe(Array.from({ length: 8 }, (_, i) => `level ${i}`).join(': '));
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(describeError(a)).toBe('a: b');
  });

  it('adds no hint when the hint is empty, and none for errors that are not the agent\'s', () => {
    expect(oneLine(new AgentError('x', { hint: '' }))).toBe('x');
    expect(oneLine(Object.assign(new Error('x'), { hint: 'not ours' }))).toBe('x');
  });

  it('folds every line break with the blanks around it into one space, and keeps single spaces', () => {
    expect(oneLine(new AgentError('first  \n\n  second\nthird', { hint: 'try\n again' }))).toBe('first second third (hint: try again)');
    expect(oneLine('a  b')).toBe('a  b');
  });

  it('takes the exit code only from the agent\'s errors', () => {
    expect(exitCodeOf(new AgentError('x'))).toBe(ExitCode.failure);
    expect(exitCodeOf(new AgentError('x', { exitCode: ExitCode.tpmUnavailable }))).toBe(3);
    expect(exitCodeOf(Object.assign(new Error('x'), { exitCode: 2 }))).toBe(1);
    expect(exitCodeOf('text')).toBe(1);
    expect(ExitCode).toEqual({ ok: 0, failure: 1, usage: 2, tpmUnavailable: 3, internalError: 70, restartRequested: 75 });
  });
});
