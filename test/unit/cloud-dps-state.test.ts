import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JsonStore } from '../cloud/json-store.js';
import { DpsState } from '../cloud/dps/state.js';

describe('JSON store and DPS state', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'cloud-dps-state-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const store = () => new JsonStore(path.join(dir, 'doc.json'), 1, (data) => data as { n: number });

  it('gives the initial value when nothing is stored, and what was saved afterwards, leaving no temp file', () => {
    expect(store().load(() => ({ n: 0 }))).toEqual({ n: 0 });
    store().save({ n: 5 });
    expect(store().load(() => ({ n: 0 }))).toEqual({ n: 5 });
    expect(readdirSync(dir)).toEqual(['doc.json']);
    expect(JSON.parse(readFileSync(path.join(dir, 'doc.json'), 'utf8'))).toEqual({ version: 1, data: { n: 5 } });
  });

  it.each([
    ['half-written JSON', '{"version": 1, "data": {'],
    ['another version', '{"version": 2, "data": {}}'],
    ['a bare value', '42'],
    ['null', 'null'],
  ])('refuses %s with a message naming the file', (_what, text) => {
    writeFileSync(path.join(dir, 'doc.json'), text);
    expect(() => store().load(() => ({ n: 0 }))).toThrow(/doc\.json/);
  });

  it('keeps the id scope and service key it made, and takes given ones over stored ones', () => {
    const first = new DpsState(dir, {});
    expect(first.identity.idScope).toMatch(/^0ne[0-9A-F]{8}$/);
    expect(Buffer.from(first.identity.serviceKey, 'base64')).toHaveLength(32);
    expect(new DpsState(dir, {}).identity).toEqual(first.identity);
    expect(new DpsState(dir, { idScope: '0neGIVEN' }).identity).toEqual({ ...first.identity, idScope: '0neGIVEN' });
  });

  it('refuses a state file whose data is not an object', () => {
    writeFileSync(path.join(dir, 'enrollments.json'), '{"version": 1, "data": []}');
    expect(() => new DpsState(dir, {})).toThrow(/not a JSON object/);
  });
});
