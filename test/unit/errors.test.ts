import { describe, expect, it } from 'vitest';
import { AgentError, describeError, ExitCode, exitCodeOf, oneLine } from '../../agent/errors.js';

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
