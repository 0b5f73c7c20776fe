import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { syncDirectory, writeFileAtomic, writeFileAtomicSync } from '../../agent/lib/atomic-file.js';
import { openUnder } from '../support/open-files.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-atomic-'));
  dirs.push(dir);
  return dir;
}

/** The process umask, read (setting it is not allowed in worker threads, where mutation testing runs the tests). */
function umaskStripsGroupOrOther(): void {
  expect(process.umask() & 0o066, 'this test needs a umask that strips group or other bits, such as the usual 022').not.toBe(0);
}

describe('the one atomic file writer', () => {
  afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

  it('replaces a file with the content and the mode the caller names, and leaves no temporary file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'snapshot.json');
    writeFileSync(file, 'old', { mode: 0o644 });
    await writeFileAtomic(file, 'new', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('new');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await writeFileAtomic(file, Buffer.from('newer'), 0o644);
    expect(readFileSync(file, 'utf8')).toBe('newer');
    expect(statSync(file).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['snapshot.json']);
  });

  it('gives the new file the mode the caller names even where the umask would strip bits of it', async () => {
    umaskStripsGroupOrOther();
    const dir = tempDir();
    await writeFileAtomic(path.join(dir, 'shared.json'), '{}', 0o666);
    writeFileAtomicSync(path.join(dir, 'shared-sync.json'), '{}', 0o666);
    expect(statSync(path.join(dir, 'shared.json')).mode & 0o777).toBe(0o666);
    expect(statSync(path.join(dir, 'shared-sync.json')).mode & 0o777).toBe(0o666);
  });

  it('leaves the old content and no temporary file when the rename fails', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'a-directory');
    await writeFileAtomic(path.join(dir, 'keep.json'), 'kept', 0o600);
    // Renaming a file over a non-empty directory fails.
    mkdirSync(path.join(target, 'inside'), { recursive: true });
    await expect(writeFileAtomic(target, 'x', 0o600)).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(() => writeFileAtomicSync(target, 'x', 0o600)).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(dir).sort()).toEqual(['a-directory', 'keep.json']);
    expect(readFileSync(path.join(dir, 'keep.json'), 'utf8')).toBe('kept');
  });

  it('leaves no temporary file when writing the content fails', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'state.json');
    writeFileSync(file, 'old');
    // A data argument writeFile refuses: the failure comes after the temporary file was created.
    await expect(writeFileAtomic(file, 42 as unknown as string, 0o600)).rejects.toThrow(/data/);
    expect(() => writeFileAtomicSync(file, 42 as unknown as string, 0o600)).toThrow(/data/);
    expect(readdirSync(dir)).toEqual(['state.json']);
    expect(readFileSync(file, 'utf8')).toBe('old');
  });

  it('fails when the directory to write in does not exist', async () => {
    const missing = path.join(tempDir(), 'no-such-dir', 'state.json');
    await expect(writeFileAtomic(missing, 'x', 0o600)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => writeFileAtomicSync(missing, 'x', 0o600)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('has a synchronous twin for stores that answer "saved" only once it is on disk', () => {
    const dir = tempDir();
    const file = path.join(dir, 'sync.json');
    writeFileSync(file, 'old', { mode: 0o644 });
    writeFileAtomicSync(file, '{"a":1}', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('{"a":1}');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['sync.json']);
  });

  it('syncs a directory that exists and fails for one that does not', async () => {
    const dir = tempDir();
    await expect(syncDirectory(dir)).resolves.toBeUndefined();
    await expect(syncDirectory(path.join(dir, 'gone'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('closes what it opened (the new file, the directory), whether the write succeeds or fails', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'state.json');
    await writeFileAtomic(file, 'async', 0o600);
    writeFileAtomicSync(file, 'sync', 0o600);
    await syncDirectory(dir);
    await expect(writeFileAtomic(file, 42 as unknown as string, 0o600)).rejects.toThrow(/data/);
    expect(() => writeFileAtomicSync(file, 42 as unknown as string, 0o600)).toThrow(/data/);
    mkdirSync(path.join(dir, 'a-directory', 'inside'), { recursive: true });
    await expect(writeFileAtomic(path.join(dir, 'a-directory'), 'x', 0o600)).rejects.toThrow();
    expect(() => writeFileAtomicSync(path.join(dir, 'a-directory'), 'x', 0o600)).toThrow();
    expect(openUnder(dir)).toEqual([]);
    expect(readFileSync(file, 'utf8')).toBe('sync');
  });

  it('reports its own failure, not the clean-up\'s, when its temporary file was removed under it', async () => {
    const dir = tempDir();
    // What a cleaner of stale temporary files does: the temporary file goes as soon as it appears.
    const watcher = watch(dir, (_event, name) => {
      if (name?.endsWith('.tmp')) rmSync(path.join(dir, name), { force: true });
    });
    try {
      await expect(writeFileAtomic(path.join(dir, 'renamed.json'), 'x', 0o600)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'rename' });
      await expect(writeFileAtomic(path.join(dir, 'written.json'), 42 as unknown as string, 0o600)).rejects.toThrow(/data/);
    } finally {
      watcher.close();
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});
