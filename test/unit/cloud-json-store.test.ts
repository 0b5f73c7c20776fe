import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DpsState } from '../cloud/dps/state.js';
import { JsonStore } from '../cloud/json-store.js';

let dir: string;
beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'cloud-json-store-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A store of `{"n": <number>}` documents. */
const store = (file = path.join(dir, 'doc.json')) => new JsonStore(file, (doc) => {
  if (typeof (doc as { n?: unknown } | null)?.n !== 'number') throw new Error('n is not a number');
  return doc as { n: number };
});

describe('the local cloud\'s JSON store', () => {
  it('loads nothing before the first save, then what was saved, private to its user and with no temp file left', () => {
    const file = path.join(dir, 'state', 'doc.json');
    expect(store(file).load()).toBeUndefined();
    store(file).saveNow({ n: 5 });
    expect(store(file).load()).toEqual({ n: 5 });
    expect(readdirSync(path.dirname(file))).toEqual(['doc.json']);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
  });

  it.each([
    ['half-written JSON', '{"n": ', /doc\.json is not valid JSON; move it away/],
    ['a document of another shape', '{"m": 1}', /doc\.json: n is not a number; move it away/],
    ['a bare value', '42', /doc\.json: n is not a number/],
    ['null', 'null', /doc\.json: n is not a number/],
  ])('refuses %s, naming the file and the way out', (_what, text, message) => {
    writeFileSync(path.join(dir, 'doc.json'), text);
    expect(() => store().load()).toThrow(message);
  });

  it('coalesces a burst of saves into few writes and ends with the last state', async () => {
    const file = path.join(dir, 'doc.json');
    const target = store(file);
    let n = 0;
    let snapshots = 0;
    const saves: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      n = i;
      saves.push(target.save(() => {
        snapshots++;
        return { n };
      }));
    }
    await Promise.all(saves);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ n: 99 });
    expect(snapshots).toBeLessThanOrEqual(2);
    expect(readdirSync(dir)).toEqual(['doc.json']);
  });

  it('reports a failed coalesced write to its caller and writes again on the next save', async () => {
    const file = path.join(dir, 'doc.json');
    mkdirSync(file); // the rename over it fails
    const target = store(file);
    await expect(target.save(() => ({ n: 1 }))).rejects.toThrow(/EISDIR|directory/);
    rmSync(file, { recursive: true });
    await target.save(() => ({ n: 2 }));
    expect(store(file).load()).toEqual({ n: 2 });
    expect(readdirSync(dir)).toEqual(['doc.json']);
  });
});

describe('DPS state on the JSON store', () => {
  it('keeps the id scope and service key it made, and takes given ones over stored ones', () => {
    const first = new DpsState(dir, {});
    expect(first.identity.idScope).toMatch(/^0ne[0-9A-F]{8}$/);
    expect(Buffer.from(first.identity.serviceKey, 'base64')).toHaveLength(32);
    expect(new DpsState(dir, {}).identity).toEqual(first.identity);
    expect(new DpsState(dir, { idScope: '0neGIVEN' }).identity).toEqual({ ...first.identity, idScope: '0neGIVEN' });
    expect(JSON.parse(readFileSync(path.join(dir, 'service.json'), 'utf8'))).toEqual({ version: 1, data: { ...first.identity, idScope: '0neGIVEN' } });
  });

  it.each([
    ['data that is not an object', '{"version": 1, "data": []}', /enrollments\.json: stored enrollments are not a JSON object/],
    ['another version', '{"version": 2, "data": {}}', /enrollments\.json: not a version 1 document/],
    ['a bare value', '7', /not a version 1 document/],
  ])('refuses a state file holding %s', (_what, text, message) => {
    writeFileSync(path.join(dir, 'enrollments.json'), text);
    expect(() => new DpsState(dir, {})).toThrow(message);
  });
});
