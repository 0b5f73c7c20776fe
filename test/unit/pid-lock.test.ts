import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootId } from '../../agent/lib/boot-id.js';
import { parseLockText, PidLock, withPidLock, type AcquireOptions } from '../../agent/lib/pid-lock.js';
import { openUnder } from '../support/open-files.js';

const OTHER_BOOT = '00000000-0000-0000-0000-000000000000';
const BOOTS = { recordsBoot: true };
const NO_BOOTS = { recordsBoot: false };

/** A pid that belonged to a process which has ended. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid;
}

function options(extra: Partial<AcquireOptions> = {}): AcquireOptions {
  return {
    recordsBoot: true, mode: 0o600, dirMode: 0o700, ownPid: 'held',
    busy: (holder) => new Error(`busy: pid ${holder.pid} (${holder.owner})`),
    failed: (cause) => new Error(`failed: ${String(cause)}`),
    ...extra,
  };
}

describe('the pid lock', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-pid-lock-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** A lock file in a directory the lock creates. */
  const fresh = (name: string) => path.join(dir, name, 'test.lock');
  /** A lock file whose directory exists, holding `text`. */
  const holding = async (name: string, text: string) => {
    const file = fresh(name);
    await (await PidLock.acquire(file, options())).release();
    writeFileSync(file, text);
    return file;
  };

  it('writes pid, boot id and owner with the modes asked for, and removes the file on release', async () => {
    const file = fresh('write');
    const lock = await PidLock.acquire(file, options({ owner: 'a technician', mode: 0o640 }));
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid} ${await bootId()} a technician\n`);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(await PidLock.holder(file, BOOTS)).toEqual({ pid: process.pid, bootId: await bootId(), owner: 'a technician' });
    await lock.release();
    expect(existsSync(file)).toBe(false);
  });

  it('writes pid and owner only for a lock that does not record boots', async () => {
    const file = fresh('no-boot');
    const lock = await PidLock.acquire(file, options({ recordsBoot: false, owner: 'the iot-agent daemon' }));
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid} the iot-agent daemon\n`);
    expect(await PidLock.holder(file, NO_BOOTS)).toEqual({ pid: process.pid, bootId: undefined, owner: 'the iot-agent daemon' });
    await lock.release();
  });

  it('refuses while a live process of this boot holds it, naming that process and leaving its file', async () => {
    const text = `${process.ppid} ${await bootId()} a technician\n`;
    const file = await holding('live', text);
    await expect(PidLock.acquire(file, options())).rejects.toThrow(`busy: pid ${process.ppid} (a technician)`);
    // Taking over a lock of this very pid is no licence to take another live process's.
    await expect(PidLock.acquire(file, options({ ownPid: 'stale' }))).rejects.toThrow(`busy: pid ${process.ppid} (a technician)`);
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('names no holder when there is no lock file', async () => {
    expect(await PidLock.holder(path.join(dir, 'never-written.lock'), BOOTS)).toBeUndefined();
  });

  it('writes no owner when none is given', async () => {
    const file = fresh('no-owner');
    const lock = await PidLock.acquire(file, options());
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid} ${await bootId()}\n`);
    await lock.release();
    const noBoots = await PidLock.acquire(file, options({ recordsBoot: false }));
    expect(await PidLock.holder(file, NO_BOOTS)).toEqual({ pid: process.pid, bootId: undefined, owner: '' });
    await noBoots.release();
  });

  it('keeps no descriptor of the lock file open while it holds the lock', async () => {
    const file = fresh('descriptors');
    const lock = await PidLock.acquire(file, options());
    expect(openUnder(path.dirname(file))).toEqual([]);
    await lock.release();
  });

  it('takes over a lock whose process is gone', async () => {
    for (const [kind, text] of [[BOOTS, `${deadPid()} ${await bootId()} crashed\n`], [NO_BOOTS, `${deadPid()} crashed\n`]] as const) {
      const file = await holding(`dead-${kind.recordsBoot}`, text);
      expect(await PidLock.holder(file, kind)).toBeUndefined();
      await (await PidLock.acquire(file, options({ ...kind, owner: 'new' }))).release();
    }
  });

  it('takes over a lock written in another boot, or naming no boot, even though its pid lives now', async () => {
    for (const text of [`${process.ppid} ${OTHER_BOOT}\n`, `${process.ppid}\n`, `${process.ppid} the iot-agent daemon\n`]) {
      const file = await holding('other-boot', text);
      expect(await PidLock.holder(file, BOOTS), text).toBeUndefined();
      await (await PidLock.acquire(file, options())).release();
    }
  });

  it('judges a lock that does not record boots by its pid alone', async () => {
    const file = await holding('pid-alone', `${process.ppid} the iot-agent daemon\n`);
    expect(await PidLock.holder(file, NO_BOOTS)).toEqual({ pid: process.ppid, bootId: undefined, owner: 'the iot-agent daemon' });
    await expect(PidLock.acquire(file, options({ recordsBoot: false }))).rejects.toThrow(`busy: pid ${process.ppid} (the iot-agent daemon)`);
  });

  it('refuses a second take by the same process, or takes it over, as the caller rules', async () => {
    const file = fresh('own');
    const first = await PidLock.acquire(file, options({ ownPid: 'held' }));
    await expect(PidLock.acquire(file, options({ ownPid: 'held' }))).rejects.toThrow(`busy: pid ${process.pid}`);
    expect(await PidLock.holder(file, BOOTS)).toMatchObject({ pid: process.pid });
    const again = await PidLock.acquire(file, options({ ownPid: 'stale', owner: 'again' }));
    expect(readFileSync(file, 'utf8')).toContain(' again');
    await again.release();
    await first.release();
  });

  it('takes over a lock file that names no pid', async () => {
    for (const text of ['', 'garbage', '-5 x', '0', '12abc', '1e3', '1.5 daemon']) {
      const file = await holding('garbage', text);
      await (await PidLock.acquire(file, options())).release();
    }
  });

  it('reports a failure other than a held lock through the caller\'s error, with its cause', async () => {
    const file = path.join(dir, 'long', `${'x'.repeat(300)}.lock`);
    const failure = await PidLock.acquire(file, options()).catch((err: unknown) => err);
    expect(String(failure)).toMatch(/^Error: failed: Error: ENAMETOOLONG/);
  });

  it('reports a lock path that is a directory, or under a file, through the caller\'s error and removes nothing', async () => {
    const file = fresh('a-directory');
    mkdirSync(file, { recursive: true });
    writeFileSync(path.join(file, 'inside'), 'kept');
    const onDirectory = await PidLock.acquire(file, options()).catch((err: unknown) => err);
    expect(String(onDirectory)).toMatch(/^Error: failed: .*(EISDIR|is a directory)/);
    expect(readFileSync(path.join(file, 'inside'), 'utf8')).toBe('kept');
    const underFile = path.join(file, 'inside', 'test.lock');
    const onFile = await PidLock.acquire(underFile, options()).catch((err: unknown) => err);
    expect(String(onFile)).toMatch(/^Error: failed: Error: (ENOTDIR|EEXIST)/);
  });

  it('holds the lock exactly while the action runs, and releases it when the action throws', async () => {
    const file = fresh('with');
    expect(await withPidLock(file, options(), () => Promise.resolve(existsSync(file)))).toBe(true);
    expect(existsSync(file)).toBe(false);
    await expect(withPidLock(file, options(), () => Promise.reject(new Error('action failed')))).rejects.toThrow('action failed');
    expect(existsSync(file)).toBe(false);
  });
});

describe('lock file text', () => {
  it.each([
    ['123 0f0e6f2a-7c7b-4d5e-9a3b-1c2d3e4f5a6b a technician', BOOTS, { pid: 123, bootId: '0f0e6f2a-7c7b-4d5e-9a3b-1c2d3e4f5a6b', owner: 'a technician' }],
    ['123 unknown\n', BOOTS, { pid: 123, bootId: 'unknown', owner: '' }],
    ['123', BOOTS, { pid: 123, bootId: '', owner: '' }],
    ['\n123 the iot-agent daemon\n\n', NO_BOOTS, { pid: 123, bootId: undefined, owner: 'the iot-agent daemon' }],
    ['123', NO_BOOTS, { pid: 123, bootId: undefined, owner: '' }],
  ])('reads %j', (text, kind, holder) => {
    expect(parseLockText(text, kind)).toEqual(holder);
  });

  it.each(['', ' ', 'abc', '0 x', '-1', '1.5', '0x10', '1e3', '99999999999999999999'])('names no holder in %j', (text) => {
    expect(parseLockText(text, BOOTS)).toBeUndefined();
    expect(parseLockText(text, NO_BOOTS)).toBeUndefined();
  });
});
