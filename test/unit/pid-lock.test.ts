import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootId } from '../../agent/lib/boot-id.js';
import { parseLockText, PidLock, withPidLock, type AcquireOptions } from '../../agent/lib/pid-lock.js';

const OTHER_BOOT = '00000000-0000-0000-0000-000000000000';

/** A pid that belonged to a process which has ended. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  return child.pid;
}

function options(extra: Partial<AcquireOptions> = {}): AcquireOptions {
  return {
    mode: 0o600, dirMode: 0o700, ownPid: 'held',
    busy: (holder) => new Error(`busy: pid ${holder.pid} (${holder.owner})`),
    failed: (cause) => new Error(`failed: ${String(cause)}`),
    ...extra,
  };
}

describe('the pid lock', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-pid-lock-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = (name: string) => path.join(dir, name, 'test.lock');

  it('writes pid, boot id and owner with the mode asked for, and removes the file on release', async () => {
    const file = fresh('write');
    const lock = await PidLock.acquire(file, options({ owner: 'the iot-agent daemon', mode: 0o640 }));
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid} ${await bootId()} the iot-agent daemon\n`);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(await PidLock.holder(file)).toEqual({ pid: process.pid, bootId: await bootId(), owner: 'the iot-agent daemon' });
    await lock.release();
    expect(existsSync(file)).toBe(false);
  });

  it('refuses while a live process of this boot holds it, naming that process', async () => {
    const file = fresh('live');
    await PidLock.acquire(file, options()).then(() => undefined);
    writeFileSync(file, `${process.ppid} ${await bootId()} a technician\n`);
    await expect(PidLock.acquire(file, options())).rejects.toThrow(`busy: pid ${process.ppid} (a technician)`);
    expect(readFileSync(file, 'utf8')).toContain(`${process.ppid} `);
  });

  it('takes over a lock whose process is gone', async () => {
    const file = fresh('dead');
    await PidLock.acquire(file, options()).then((l) => l.release());
    writeFileSync(file, `${deadPid()} ${await bootId()} crashed\n`);
    expect(await PidLock.holder(file)).toBeUndefined();
    const lock = await PidLock.acquire(file, options({ owner: 'new' }));
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid} ${await bootId()} new\n`);
    await lock.release();
  });

  it('takes over a lock written in another boot even though its pid lives now', async () => {
    const file = fresh('other-boot');
    await PidLock.acquire(file, options()).then((l) => l.release());
    writeFileSync(file, `${process.ppid} ${OTHER_BOOT}\n`);
    expect(await PidLock.holder(file)).toBeUndefined();
    await (await PidLock.acquire(file, options())).release();
  });

  it('judges a lock without a boot id (written before they were recorded) by its pid alone', async () => {
    const file = fresh('legacy');
    await PidLock.acquire(file, options()).then((l) => l.release());
    writeFileSync(file, `${process.ppid} the iot-agent daemon\n`);
    expect(await PidLock.holder(file)).toEqual({ pid: process.ppid, bootId: undefined, owner: 'the iot-agent daemon' });
    await expect(PidLock.acquire(file, options())).rejects.toThrow(`busy: pid ${process.ppid}`);
    writeFileSync(file, `${deadPid()} the iot-agent daemon\n`);
    await (await PidLock.acquire(file, options())).release();
  });

  it('refuses a second take by the same process, or takes it over, as the caller rules', async () => {
    const file = fresh('own');
    const first = await PidLock.acquire(file, options({ ownPid: 'held' }));
    await expect(PidLock.acquire(file, options({ ownPid: 'held' }))).rejects.toThrow(`busy: pid ${process.pid}`);
    const again = await PidLock.acquire(file, options({ ownPid: 'stale', owner: 'again' }));
    expect(readFileSync(file, 'utf8')).toContain(' again');
    await again.release();
    await first.release();
  });

  it('takes over a lock file that names no pid', async () => {
    const file = fresh('garbage');
    await PidLock.acquire(file, options()).then((l) => l.release());
    for (const text of ['', 'garbage', '-5 x', '0', '12abc', '1e3']) {
      writeFileSync(file, text);
      await (await PidLock.acquire(file, options())).release();
    }
  });

  it('reports a failure other than a held lock through the caller\'s error, with its cause', async () => {
    const file = path.join(dir, 'long', `${'x'.repeat(300)}.lock`);
    const failure = await PidLock.acquire(file, options()).catch((err: unknown) => err);
    expect(String(failure)).toMatch(/^Error: failed: Error: ENAMETOOLONG/);
  });

  it('holds the lock exactly while the action runs, and releases it when the action throws', async () => {
    const file = fresh('with');
    const seen = await withPidLock(file, options(), async () => existsSync(file));
    expect(seen).toBe(true);
    expect(existsSync(file)).toBe(false);
    await expect(withPidLock(file, options(), async () => {
      throw new Error('action failed');
    })).rejects.toThrow('action failed');
    expect(existsSync(file)).toBe(false);
  });
});

describe('lock file text', () => {
  it.each([
    ['123 0f0e6f2a-7c7b-4d5e-9a3b-1c2d3e4f5a6b the iot-agent daemon', { pid: 123, bootId: '0f0e6f2a-7c7b-4d5e-9a3b-1c2d3e4f5a6b', owner: 'the iot-agent daemon' }],
    ['123 unknown\n', { pid: 123, bootId: 'unknown', owner: '' }],
    ['123 iot-agent provision', { pid: 123, bootId: undefined, owner: 'iot-agent provision' }],
    ['123', { pid: 123, bootId: undefined, owner: '' }],
  ])('reads %j', (text, holder) => {
    expect(parseLockText(text)).toEqual(holder);
  });

  it.each(['', ' ', 'abc', '0 x', '-1', '1.5', '0x10', '99999999999999999999'])('names no holder in %j', (text) => {
    expect(parseLockText(text)).toBeUndefined();
  });
});
