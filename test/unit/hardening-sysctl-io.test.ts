import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandRunner } from '../../agent/lib/exec.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { CommandSysctl, ProcSysctl } from '../../hardening/sysctl-io.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A /proc/sys stand-in with two IPv4 keys and no IPv6. */
function procSys(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-procsys-'));
  dirs.push(dir);
  mkdirSync(path.join(dir, 'net/ipv4/conf/all'), { recursive: true });
  writeFileSync(path.join(dir, 'net/ipv4/tcp_syncookies'), '0\n');
  writeFileSync(path.join(dir, 'net/ipv4/conf/all/rp_filter'), '2\n');
  return dir;
}

/** A runner whose every command fails to start: proves no process was run. */
const noProcess = () => hardeningRunner([path.join(tmpdir(), 'iot-agent-no-such-program')]);

describe('sysctls through /proc/sys of the engine\'s own namespace', () => {
  it('reads each key, null for one the kernel lacks (IPv6 without IPv6)', async () => {
    const io = new ProcSysctl(procSys());
    expect(await io.read(['net.ipv4.tcp_syncookies', 'net.ipv4.conf.all.rp_filter', 'net.ipv6.conf.all.disable_ipv6']))
      .toEqual({ 'net.ipv4.tcp_syncookies': '0', 'net.ipv4.conf.all.rp_filter': '2', 'net.ipv6.conf.all.disable_ipv6': null });
  });

  it('writes each key to its file', async () => {
    const dir = procSys();
    await new ProcSysctl(dir).write({ 'net.ipv4.tcp_syncookies': '1', 'net.ipv4.conf.all.rp_filter': '1' });
    expect(readFileSync(path.join(dir, 'net/ipv4/tcp_syncookies'), 'utf8')).toBe('1\n');
    expect(readFileSync(path.join(dir, 'net/ipv4/conf/all/rp_filter'), 'utf8')).toBe('1\n');
  });

  it('refuses a key that is not a plain dotted path', async () => {
    const io = new ProcSysctl(procSys());
    for (const key of ['net/../../etc/passwd', 'net.ipv4..x', 'net', 'Net.ipv4.x', 'net.ipv4.conf.eth-0.rp_filter', '.net.ipv4', 'net.ipv4.', 'x/net.ipv4', 'net.ipv4 x']) {
      await expect(io.read([key]), key).rejects.toThrow(`invalid sysctl key ${JSON.stringify(key)}`);
    }
    await expect(io.write({ 'net.ipv4..x': '1' })).rejects.toThrow(/invalid sysctl key/);
    expect(await io.read(['net.ipv4.conf.eth0_1.rp_filter'])).toEqual({ 'net.ipv4.conf.eth0_1.rp_filter': null });
  });

  it('says which key it cannot read when the value is there but unreadable', async () => {
    const io = new ProcSysctl(procSys());
    await expect(io.read(['net.ipv4.conf'])).rejects.toThrow(/^cannot read sysctl net\.ipv4\.conf$/);
    await expect(io.read(['net.ipv4.conf'])).rejects.toMatchObject({ cause: { code: 'EISDIR' } });
  });

  it('is the real /proc/sys unless told otherwise', async () => {
    const key = 'net.ipv4.tcp_syncookies';
    expect(await new ProcSysctl().read([key])).toEqual({ [key]: readFileSync('/proc/sys/net/ipv4/tcp_syncookies', 'utf8').trim() });
  });

  it('sets the keys one after another and stops at the first it cannot set, saying which and why', async () => {
    const dir = procSys();
    const error = await new ProcSysctl(dir).write({ 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv4.tcp_syncookies': '1' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'cannot set sysctl net.ipv6.conf.all.disable_ipv6=1', hint: 'the hardening step runs as root with CAP_NET_ADMIN' });
    expect(readFileSync(path.join(dir, 'net/ipv4/tcp_syncookies'), 'utf8')).toBe('0\n');
  });
});

describe('sysctls through the sysctl tool (behind a command prefix)', () => {
  it('reads every key with one sysctl process, null for a key the kernel lacks', async () => {
    const io = new CommandSysctl(hardeningRunner());
    const keys = ['net.ipv4.tcp_syncookies', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.ip_local_port_range', 'net.ipv4.no_such_key'];
    const proc = (key: string) => readFileSync(path.join('/proc/sys', ...key.split('.')), 'utf8').trim();
    expect(await io.read(keys)).toEqual({
      'net.ipv4.tcp_syncookies': proc('net.ipv4.tcp_syncookies'), 'net.ipv4.conf.all.rp_filter': proc('net.ipv4.conf.all.rp_filter'),
      // Two numbers: a value longer than one character, with a tab inside it.
      'net.ipv4.ip_local_port_range': proc('net.ipv4.ip_local_port_range'), 'net.ipv4.no_such_key': null,
    });
  });

  it('sets every key with one quiet sysctl -w, in the order given', async () => {
    const calls: (readonly string[])[] = [];
    const runner: CommandRunner = { run: (argv) => { calls.push(argv); return Promise.resolve({ stdout: '', stderr: '' }); } };
    await new CommandSysctl(runner).write({ 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
    expect(calls).toEqual([['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']]);
  });

  it('asks with -e, takes only the keys it asked for, and trims their values', async () => {
    const calls: (readonly string[])[] = [];
    const stdout = 'net.ipv4.tcp_syncookies =  1 \nkernel.other = 5\nnet.ipv4.conf.all.rp_filter=2\nnot a sysctl line\n';
    const runner: CommandRunner = { run: (argv) => { calls.push(argv); return Promise.resolve({ stdout, stderr: '' }); } };
    const values = await new CommandSysctl(runner).read(['net.ipv4.tcp_syncookies', 'net.ipv4.conf.all.rp_filter', 'net.ipv6.conf.all.disable_ipv6']);
    expect(values).toEqual({ 'net.ipv4.tcp_syncookies': '1', 'net.ipv4.conf.all.rp_filter': '2', 'net.ipv6.conf.all.disable_ipv6': null });
    expect(calls).toEqual([['sysctl', '-e', 'net.ipv4.tcp_syncookies', 'net.ipv4.conf.all.rp_filter', 'net.ipv6.conf.all.disable_ipv6']]);
  });

  it('starts no process for no keys', async () => {
    const io = new CommandSysctl(noProcess());
    expect(await io.read([])).toEqual({});
    await io.write({});
  });
});
