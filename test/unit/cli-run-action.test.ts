import { afterEach, describe, expect, it, vi } from 'vitest';
import { runAction } from '../../agent/cli/run-action.js';
import { AgentError, ExitCode } from '../../agent/lib/errors.js';
import { captureOutput } from '../support/output.js';

/**
 * How every command ends: its exit code, and on failure one line on stderr. process.exit is
 * recorded instead of ending the test run.
 */
afterEach(() => {
  vi.restoreAllMocks();
});

async function ended(action: () => Promise<number | void>): Promise<{ codes: unknown[]; stdout: string; stderr: string }> {
  const codes: unknown[] = [];
  vi.spyOn(process, 'exit').mockImplementation(((code?: number) => { codes.push(code); }) as never);
  const { stdout, stderr } = await captureOutput(() => runAction(action));
  return { codes, stdout, stderr };
}

describe('how a command ends', () => {
  it('exits with the code the action returned, 0 when it returned none, writing nothing', async () => {
    expect(await ended(() => Promise.resolve(ExitCode.tpmUnavailable))).toEqual({ codes: [3], stdout: '', stderr: '' });
    expect(await ended(() => Promise.resolve(ExitCode.failure))).toEqual({ codes: [1], stdout: '', stderr: '' });
    expect(await ended(() => Promise.resolve())).toEqual({ codes: [0], stdout: '', stderr: '' });
  });

  it('turns a failure into one line on stderr, with its hint, and the error\'s exit code', async () => {
    const err = new AgentError('config /etc/iot-agent/config.yaml:\n  tpm.transport is invalid', {
      cause: new Error('expected device:PATH'), hint: 'see `iot-agent check`', exitCode: ExitCode.usage,
    });
    expect(await ended(() => Promise.reject(err))).toEqual({
      codes: [2], stdout: '',
      stderr: 'iot-agent: config /etc/iot-agent/config.yaml: tpm.transport is invalid: expected device:PATH (hint: see `iot-agent check`)\n',
    });
  });

  it('exits 1 for an error that carries no exit code, without its stack', async () => {
    expect(await ended(() => Promise.reject(new TypeError('socket hang up')))).toEqual({ codes: [1], stdout: '', stderr: 'iot-agent: socket hang up\n' });
  });
});
