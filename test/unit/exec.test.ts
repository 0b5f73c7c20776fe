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
  });

  it('names the whole command when a failing program wrote nothing', async () => {
    await expect(new ExecRunner(['env']).run(['false'])).rejects.toThrow(/^false failed: Command failed: env false$/m);
  });

  it('stops a program that runs too long', async () => {
    const started = Date.now();
    await expect(new ExecRunner().run(['sleep', '5'], { timeoutMs: 100 })).rejects.toThrow('sleep 5 failed: timed out after 100 ms');
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
    expect(await execBounded([], { timeoutMs: 100, maxBytes: 10 })).toMatchObject({ error: 'empty command', exitCode: null });
  });

  it('stops a bounded program when its signal aborts, with the reason its caller named', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    const outcome = await execBounded(['sleep', '5'], { timeoutMs: 10_000, maxBytes: 10, signal: abort.signal, abortedWhy: 'stopped: out of time' });
    expect(outcome).toMatchObject({ exitCode: null, error: 'stopped: out of time', timedOut: false });
  });
});

describe('the network namespace prefix', () => {
  it('runs in the named namespace, or in the current one without a name', () => {
    expect(netnsPrefix('iot-test-1')).toEqual(['ip', 'netns', 'exec', 'iot-test-1']);
    expect(netnsPrefix(undefined)).toEqual([]);
    expect(netnsPrefix('')).toEqual([]);
  });
});
