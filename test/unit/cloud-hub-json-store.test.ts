import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoalescingJsonFile, readJson, writeJsonAtomic } from '../cloud/hub/json-store.js';

let dir: string;
beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'cloud-hub-store-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('hub state files', () => {
  it('writes atomically and leaves no temp file behind', async () => {
    const file = path.join(dir, 'state.json');
    await writeJsonAtomic(file, { a: 1 });
    expect(await readJson(file)).toEqual({ a: 1 });
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('reads a missing file as undefined and refuses a broken one with a hint', async () => {
    expect(await readJson(path.join(dir, 'none.json'))).toBeUndefined();
    writeFileSync(path.join(dir, 'bad.json'), '{"half":');
    await expect(readJson(path.join(dir, 'bad.json'))).rejects.toThrow(/move it away/);
  });

  it('coalesces a burst of saves into few writes and ends with the last state', async () => {
    const file = path.join(dir, 'state.json');
    let counter = 0;
    let snapshots = 0;
    const store = new CoalescingJsonFile(file, () => {
      snapshots++;
      return { counter };
    });
    const saves: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      counter = i;
      saves.push(store.save());
    }
    await Promise.all(saves);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ counter: 99 });
    expect(snapshots).toBeLessThanOrEqual(2);
  });
});
