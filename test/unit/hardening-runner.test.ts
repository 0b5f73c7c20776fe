import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { hardeningRunner } from '../../hardening/runner.js';

const node = process.execPath;
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The path of a program that does not exist, named `name`. */
function missing(name: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-runner-'));
  dirs.push(dir);
  return path.join(dir, name);
}

async function failure(promise: Promise<unknown>): Promise<AgentError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

describe('running the engine\'s commands', () => {
  it('passes each argument as it is, never through a shell, and returns stdout and stderr', async () => {
    const result = await hardeningRunner().run([node, '-e', 'process.stdout.write(process.argv[1]); process.stderr.write("note")', '$(id); *; `x`']);
    expect(result).toEqual({ stdout: '$(id); *; `x`', stderr: 'note' });
  });

  it('feeds the input on stdin, and an empty stdin without one', async () => {
    const echo = [node, '-e', 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => process.stdout.write(`[${s}]`))'];
    expect((await hardeningRunner().run(echo, { input: '*filter\nCOMMIT\n' })).stdout).toBe('[*filter\nCOMMIT\n]');
    expect((await hardeningRunner().run(echo)).stdout).toBe('[]');
  });

  it('survives a command that exits without reading its input', async () => {
    expect(await hardeningRunner().run([node, '-e', ''], { input: 'x'.repeat(8 * 1024 * 1024) })).toEqual({ stdout: '', stderr: '' });
  });

  it('takes up to 16 MiB of output (iptables-save of a busy table)', async () => {
    const { stdout } = await hardeningRunner().run([node, '-e', 'process.stdout.write("x".repeat(4 * 1024 * 1024))']);
    expect(stdout).toHaveLength(4 * 1024 * 1024);
  });

  it('puts its prefix in front of every command', async () => {
    const runner = hardeningRunner([node, '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))']);
    expect(runner.prefix).toHaveLength(3);
    expect((await runner.run(['iptables-save', '-t', 'filter'])).stdout).toBe('["iptables-save","-t","filter"]');
  });

  it('refuses an empty command', () => {
    expect(() => hardeningRunner().run([])).toThrow('empty command');
  });

  it('says which Debian package to install when a tool is missing', async () => {
    const cases: [string, string | undefined][] = [
      ['iptables-nft-restore', 'install the Debian package iptables (scripts/setup.sh)'],
      ['ip6tables-save', 'install the Debian package iptables (scripts/setup.sh)'],
      ['sysctl', 'install the Debian package procps'],
      ['ip', 'install the Debian package iproute2'],
      ['swtpm', undefined],
    ];
    for (const [name, hint] of cases) {
      const program = missing(name);
      const err = await failure(hardeningRunner().run([program, '-t', 'filter']));
      expect(err.message).toBe(`${program} is not installed`);
      expect(err.hint, name).toBe(hint);
    }
  });

  it('names the prefix\'s program, and its package, when that is what is missing', async () => {
    const ip = missing('ip');
    const err = await failure(hardeningRunner([ip, 'netns', 'exec', 'iotagent-1']).run(['iptables-save']));
    expect(err.message).toBe(`${ip} is not installed`);
    expect(err.hint).toBe('install the Debian package iproute2');
  });

  it('says what failed with the first three lines of its stderr, leaving out the iptables-legacy warning', async () => {
    const script = 'console.error("# Warning: iptables-legacy tables present, use iptables-legacy to see them\\nline 1\\n\\nline 2\\nline 3\\nline 4"); process.exit(4)';
    const err = await failure(hardeningRunner().run([node, '-e', script]));
    expect(err.message).toBe(`${node} -e ${script}`.slice(0, 120) + ' failed: line 1; ; line 2');
    expect((err.cause as { code?: number }).code).toBe(4);
  });

  it('falls back to the exit status when the command printed nothing', async () => {
    const err = await failure(hardeningRunner().run([node, '-e', 'process.exit(3)']));
    expect(err.message).toMatch(/ failed: Command failed: .*process\.exit\(3\)/);
  });

  it('stops a command at its timeout and says so', async () => {
    const started = Date.now();
    const err = await failure(hardeningRunner().run([node, '-e', 'setTimeout(() => {}, 20000)'], { timeoutMs: 300 }));
    expect(err.message).toMatch(/ failed: timed out after 300 ms$/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
