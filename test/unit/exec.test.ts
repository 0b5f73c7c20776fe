import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeError } from '../../agent/lib/errors.js';
import { execBounded, ExecRunner, netnsPrefix } from '../../agent/lib/exec.js';

describe('the exec runner', () => {
  it('runs a fixed argv behind its prefix, with the input on stdin, and returns what it wrote', async () => {
    const runner = new ExecRunner(['env', 'GREETING=hello']);
    const result = await runner.run(['sh', '-c', 'printf "%s %s" "$GREETING" "$(cat)"; echo note >&2'], { input: 'world' });
    expect(result).toEqual({ stdout: 'hello world', stderr: 'note\n' });
  });

  it('gives a program without input an empty, closed stdin', async () => {
    await expect(new ExecRunner().run(['cat'])).resolves.toEqual({ stdout: '', stderr: '' });
  });

  it('fails with the command and the first lines of its stderr, leaving out the iptables-legacy warning', async () => {
    const script = 'echo "# Warning: iptables-legacy tables present, use iptables-legacy to see them" >&2; printf "one\\ntwo\\nthree\\nfour\\n" >&2; exit 4';
    const failure = await new ExecRunner().run(['sh', '-c', script]).catch((err: unknown) => err as Error);
    expect((failure as Error).message).toBe(`${`sh -c ${script}`.slice(0, 120)} failed: one; two; three`);
    expect(describeError(failure)).toContain('Command failed: sh -c');
    expect((failure as Error).cause).toMatchObject({ code: 4, killed: false });
  });

  it('gives the reason without the blank lines around it', async () => {
    await expect(new ExecRunner().run(['sh', '-c', 'printf "\\n  \\nbad thing\\n\\n" >&2; exit 1'])).rejects.toThrow(/ failed: bad thing$/);
  });

  it('fails for a program that writes more than 16 MiB, keeping none of it', async () => {
    await expect(new ExecRunner().run(['head', '-c', String(16 * 2 ** 20 + 1), '/dev/zero'])).rejects.toThrow(`failed: wrote more than ${16 * 2 ** 20} bytes`);
  });

  it('names the whole command when a failing program wrote nothing', async () => {
    await expect(new ExecRunner(['env']).run(['false'])).rejects.toThrow(/^false failed: Command failed: env false$/m);
  });

  it('stops a program that runs too long', async () => {
    const started = Date.now();
    await expect(new ExecRunner().run(['sleep', '5'], { timeoutMs: 100 })).rejects.toMatchObject({
      message: 'sleep 5 failed: timed out after 100 ms', cause: expect.objectContaining({ code: null, killed: true }) as unknown,
    });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('says a missing program is not installed, with the hint its caller gave for it', async () => {
    const runner = new ExecRunner([], { 'iot-agent-no-such': 'install the Debian package it comes in' });
    const failure = await runner.run(['/usr/sbin/iot-agent-no-such-tool']).catch((err: unknown) => err);
    expect(failure).toMatchObject({ message: '/usr/sbin/iot-agent-no-such-tool is not installed', hint: 'install the Debian package it comes in' });
    await expect(new ExecRunner().run(['iot-agent-other-tool'])).rejects.toMatchObject({ message: 'iot-agent-other-tool is not installed', hint: undefined });
    const prefixed = new ExecRunner(['iot-agent-no-such-prefix'], { 'iot-agent-no-such': 'install the prefix', 'sysctl': 'install procps' });
    await expect(prefixed.run(['sysctl'])).rejects.toMatchObject({ message: 'iot-agent-no-such-prefix is not installed', hint: 'install the prefix' });
  });

  it('refuses an empty command', async () => {
    expect(() => new ExecRunner().run([])).toThrow('empty command');
    expect(await execBounded([], { timeoutMs: 100, maxBytes: 10 })).toEqual({
      argv: [], stdout: '', stderr: '', exitCode: null, error: 'empty command', notInstalled: false, truncated: false, timedOut: false, durationMs: 0,
    });
  });

  it('stops a bounded program when its signal aborts, with the reason its caller named', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    const outcome = await execBounded(['sleep', '5'], { timeoutMs: 10_000, maxBytes: 10, signal: abort.signal, abortedWhy: 'stopped: out of time' });
    expect(outcome).toMatchObject({ exitCode: null, error: 'stopped: out of time', timedOut: false });
  });
});

describe('a bounded program', () => {
  it('returns what it wrote, its exit code and how long it took', async () => {
    const outcome = await execBounded(['sh', '-c', 'printf out; printf err >&2; sleep 0.05; exit 3'], { timeoutMs: 10_000, maxBytes: 100 });
    expect(outcome).toMatchObject({ argv: ['sh', '-c', 'printf out; printf err >&2; sleep 0.05; exit 3'], stdout: 'out', stderr: 'err', exitCode: 3, notInstalled: false, truncated: false, timedOut: false });
    expect(outcome).not.toHaveProperty('error');
    expect(outcome.durationMs).toBeGreaterThanOrEqual(50);
    expect(outcome.durationMs).toBeLessThan(5_000);
  });

  it('keeps the first maxBytes of its output and stops it there, which is no error', async () => {
    const outcome = await execBounded(['sh', '-c', 'printf 0123; sleep 0.05; printf 456789; exec sleep 5'], { timeoutMs: 10_000, maxBytes: 6 });
    expect(outcome).toMatchObject({ stdout: '012345', truncated: true, timedOut: false, exitCode: null });
    expect(outcome).not.toHaveProperty('error');
    expect(outcome.durationMs).toBeLessThan(4_000);
  });

  it('keeps the whole output of a program that writes maxBytes or less', async () => {
    const outcome = await execBounded(['sh', '-c', 'printf 0123; sleep 0.05; printf 45'], { timeoutMs: 10_000, maxBytes: 7 });
    expect(outcome).toMatchObject({ stdout: '012345', truncated: false, exitCode: 0 });
    const exact = await execBounded(['sh', '-c', 'printf 0123; sleep 0.05; printf 45'], { timeoutMs: 10_000, maxBytes: 6 });
    expect(exact).toMatchObject({ stdout: '012345', truncated: false, exitCode: 0 });
  });

  it('gives a program without input /dev/null as its stdin', async () => {
    expect((await execBounded(['readlink', '/proc/self/fd/0'], { timeoutMs: 10_000, maxBytes: 100 })).stdout).toBe('/dev/null\n');
  });

  it('keeps the first bytes of its stderr only, 4 KiB unless told', async () => {
    const script = 'printf abc >&2; sleep 0.05; head -c 5000 /dev/zero | tr "\\0" x >&2';
    expect((await execBounded(['sh', '-c', script], { timeoutMs: 10_000, maxBytes: 10, maxStderrBytes: 5 })).stderr).toBe('abcxx');
    expect((await execBounded(['sh', '-c', script], { timeoutMs: 10_000, maxBytes: 10 })).stderr).toBe(`abc${'x'.repeat(4093)}`);
  });

  it('runs with the environment it is given, or this process\'s', async () => {
    process.env.IOT_AGENT_EXEC_TEST = 'inherited';
    try {
      expect((await execBounded(['sh', '-c', 'printf "$IOT_AGENT_EXEC_TEST"'], { timeoutMs: 10_000, maxBytes: 100 })).stdout).toBe('inherited');
      expect((await execBounded(['sh', '-c', 'printf "$IOT_AGENT_EXEC_TEST"'], { timeoutMs: 10_000, maxBytes: 100, env: { IOT_AGENT_EXEC_TEST: 'given' } })).stdout).toBe('given');
    } finally {
      delete process.env.IOT_AGENT_EXEC_TEST;
    }
  });

  it('says how it was stopped: out of time, or by a signal', async () => {
    expect(await execBounded(['sleep', '5'], { timeoutMs: 50, maxBytes: 10 })).toMatchObject({ timedOut: true, exitCode: null, error: 'stopped after 50 ms' });
    expect(await execBounded(['sh', '-c', 'kill -TERM $$'], { timeoutMs: 10_000, maxBytes: 10 })).toMatchObject({ timedOut: false, exitCode: null, error: 'ended by SIGTERM' });
    const aborted = new AbortController();
    setTimeout(() => aborted.abort(), 50);
    expect(await execBounded(['sleep', '5'], { timeoutMs: 10_000, maxBytes: 10, signal: aborted.signal })).toMatchObject({ timedOut: false, error: 'stopped: aborted' });
  });

  // A program that leaves a child behind holding its stdout (a daemon, `cmd &`) must not hold
  // the caller past its time: the pipe is let go once the program itself has ended.
  it('keeps to its time when a child it left behind holds its output open', async () => {
    const stopped = await execBounded(['sh', '-c', 'echo started; sleep 5 & sleep 10'], { timeoutMs: 200, maxBytes: 100 });
    expect(stopped).toMatchObject({ timedOut: true, exitCode: null, stdout: 'started\n', error: 'stopped after 200 ms' });
    expect(stopped.durationMs).toBeLessThan(2_000);
    const ended = await execBounded(['sh', '-c', 'echo done; sleep 5 &'], { timeoutMs: 200, maxBytes: 100 });
    expect(ended).toMatchObject({ timedOut: true, exitCode: 0, stdout: 'done\n' });
    expect(ended.durationMs).toBeLessThan(2_000);
  });

  it('lets go of a child that keeps writing once the output is full', async () => {
    const outcome = await execBounded(['sh', '-c', 'yes & sleep 10'], { timeoutMs: 5_000, maxBytes: 1000 });
    expect(outcome).toMatchObject({ truncated: true, timedOut: false, exitCode: null });
    expect(outcome.stdout).toBe('y\n'.repeat(500));
    expect(outcome.durationMs).toBeLessThan(2_000);
  });

  it('tells a program that is not installed from one that cannot start', async () => {
    expect(await execBounded(['iot-agent-no-such-tool'], { timeoutMs: 10_000, maxBytes: 10 })).toMatchObject({ notInstalled: true, exitCode: null, error: 'iot-agent-no-such-tool is not installed' });
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-exec-'));
    try {
      writeFileSync(path.join(dir, 'not-executable'), 'echo hi\n', { mode: 0o644 });
      const notExecutable = await execBounded([path.join(dir, 'not-executable')], { timeoutMs: 10_000, maxBytes: 10 });
      expect(notExecutable).toMatchObject({ notInstalled: false, exitCode: null, error: expect.stringMatching(/EACCES/) as unknown });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves no listener on a signal that outlives the program', async () => {
    const longLived = new AbortController();
    await execBounded(['true'], { timeoutMs: 10_000, maxBytes: 10, signal: longLived.signal });
    await execBounded(['sleep', '5'], { timeoutMs: 50, maxBytes: 10, signal: longLived.signal });
    expect(getEventListeners(longLived.signal, 'abort')).toEqual([]);
  });

  it('lets a signal that aborts after it ended change nothing', async () => {
    const aborted = new AbortController();
    const outcome = await execBounded(['true'], { timeoutMs: 10_000, maxBytes: 10, signal: aborted.signal });
    aborted.abort();
    expect(outcome).toMatchObject({ exitCode: 0, timedOut: false });
    expect(outcome).not.toHaveProperty('error');
  });
});

describe('the network namespace prefix', () => {
  it('runs in the named namespace, or in the current one without a name', () => {
    expect(netnsPrefix('iot-test-1')).toEqual(['ip', 'netns', 'exec', 'iot-test-1']);
    expect(netnsPrefix(undefined)).toEqual([]);
    expect(netnsPrefix('')).toEqual([]);
  });
});
