import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicSync } from '../../agent/lib/atomic-file.js';

describe('the one atomic file writer', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-atomic-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces a file with the mode the caller names, whatever the umask, and leaves no temporary file', async () => {
    const file = path.join(dir, 'snapshot.json');
    writeFileSync(file, 'old', { mode: 0o644 });
    const umask = process.umask(0o000);
    try {
      await writeFileAtomic(file, 'new', 0o600);
    } finally {
      process.umask(umask);
    }
    expect(readFileSync(file, 'utf8')).toBe('new');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await writeFileAtomic(file, 'newer', 0o644);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['snapshot.json']);
  });

  it('leaves the old content and no temporary file when the rename fails', async () => {
    const target = path.join(dir, 'a-directory');
    await writeFileAtomic(path.join(dir, 'keep.json'), 'kept', 0o600);
    rmSync(target, { force: true, recursive: true });
    // Renaming a file over a non-empty directory fails.
    await import('node:fs/promises').then((fs) => fs.mkdir(path.join(target, 'inside'), { recursive: true }));
    await expect(writeFileAtomic(target, 'x', 0o600)).rejects.toThrow();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readFileSync(path.join(dir, 'keep.json'), 'utf8')).toBe('kept');
  });

  it('has a synchronous twin for stores that answer "saved" only once it is on disk', () => {
    const file = path.join(dir, 'sync.json');
    writeFileAtomicSync(file, '{"a":1}', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('{"a":1}');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});
