import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bootId } from '../../agent/lib/boot-id.js';
import { withLock } from '../../hardening/lock.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A state directory that does not exist yet, two levels below a fresh temporary one. */
function stateDir(): string {
  const top = mkdtempSync(path.join(tmpdir(), 'iot-agent-lock-'));
  dirs.push(top);
  return path.join(top, 'var', 'hardening');
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const { pid } = spawnSync(process.execPath, ['-e', '']);
  return pid;
}

/** This boot's id as the kernel gives it. */
const thisBoot = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

describe('this boot\'s id', () => {
  it('is the kernel\'s boot id, read once per process', async () => {
    expect(await bootId()).toBe(thisBoot());
    expect(bootId()).toBe(bootId());
  });
});

describe('one hardening change at a time', () => {
  it('holds a lock file naming its pid and boot while the change runs, and removes it after', async () => {
    const dir = stateDir();
    const lock = path.join(dir, 'lock');
    const result = await withLock(dir, () => {
      expect(readFileSync(lock, 'utf8')).toBe(`${process.pid} ${thisBoot()}\n`);
      return Promise.resolve(42);
    });
    expect(result).toBe(42);
    expect(existsSync(lock)).toBe(false);
  });

  it('makes the state directory readable by all and the lock by all, writable by root only', async () => {
    const dir = stateDir();
    await withLock(dir, () => {
      expect(statSync(dir).mode & 0o777).toBe(0o755);
      expect(statSync(path.join(dir, 'lock')).mode & 0o777).toBe(0o644);
      return Promise.resolve();
    });
  });

  it('lets go of the lock when the change fails', async () => {
    const dir = stateDir();
    await expect(withLock(dir, () => Promise.reject(new Error('iptables-restore failed')))).rejects.toThrow('iptables-restore failed');
    expect(existsSync(path.join(dir, 'lock'))).toBe(false);
    expect(await withLock(dir, () => Promise.resolve('again'))).toBe('again');
  });

  it('refuses while a live process of this boot holds it, naming the pid and what to do', async () => {
    const dir = stateDir();
    const lock = path.join(dir, 'lock');
    for (const holder of [process.pid, process.ppid]) {
      await withLock(dir, async () => {
        writeFileSync(lock, `${holder} ${thisBoot()}\n`);
        const nested = await withLock(dir, () => Promise.resolve('ran')).catch((e: unknown) => e);
        expect(nested).toMatchObject({
          message: `another hardening change is in progress (pid ${holder})`,
          hint: `wait for it to finish; remove ${lock} only if that process is gone`,
        });
        expect(readFileSync(lock, 'utf8')).toBe(`${holder} ${thisBoot()}\n`);
      });
    }
  });

  it('says it cannot take the lock, with the system\'s reason, when the lock file cannot be made at all', async () => {
    // /proc/self exists but no file can be created in it, not even by root.
    const err = await withLock('/proc/self', () => Promise.resolve('ran')).catch((e: unknown) => e);
    expect(err).toMatchObject({
      message: expect.stringMatching(/^cannot take the hardening lock \/proc\/self\/lock: E[A-Z]+: /) as unknown,
      hint: '/proc/self must be a directory root can write',
      cause: { code: expect.stringMatching(/^E[A-Z]+$/) as unknown },
    });
    expect((err as Error).message).not.toContain('\n');
  });

  it('takes over a lock left by a process that is gone, by an earlier boot, or that makes no sense', async () => {
    const dir = stateDir();
    const lock = path.join(dir, 'lock');
    for (const stale of [`${deadPid()} ${thisBoot()}\n`, `${process.pid} 00000000-0000-0000-0000-000000000000\n`, `${process.ppid}\n`,
      `0 ${thisBoot()}\n`, `-1 ${thisBoot()}\n`, `1.5 ${thisBoot()}\n`, `x ${thisBoot()}\n`, '']) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(lock, stale);
      expect(await withLock(dir, () => Promise.resolve(readFileSync(lock, 'utf8'))), JSON.stringify(stale)).toBe(`${process.pid} ${thisBoot()}\n`);
    }
  });
});
