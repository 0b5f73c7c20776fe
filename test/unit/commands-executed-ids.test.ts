import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExecutedIds, REMEMBERED_IDS } from '../../agent/commands/executed-ids.js';
import { Logger } from '../../agent/log/logger.js';

const dirs: string[] = [];
function stateDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-executed-'));
  dirs.push(dir);
  return dir;
}

function capture() {
  const lines: string[] = [];
  return { log: new Logger({ journal: false, write: (l) => lines.push(l) }), lines };
}

const entry = (id: string) => ({ id, command: 'ping', at: '2026-11-26T00:00:00.000Z' });
const document = (entries: unknown[]) => JSON.stringify({ kind: 'iot-agent/executed-commands', entries });

describe('C2D command ids already executed', () => {
  afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

  it('starts empty, without a warning, when nothing was executed yet', async () => {
    const { log, lines } = capture();
    const ids = await ExecutedIds.open(stateDir(), log);
    expect(ids.count()).toBe(0);
    expect(ids.find('op-1')).toBeUndefined();
    expect(lines).toEqual([]);
  });

  it('remembers an id across restarts, with the status it finished with, in a file only the agent reads', async () => {
    const dir = stateDir();
    const { log } = capture();
    const ids = await ExecutedIds.open(dir, log);
    await ids.record(entry('op-1'));
    expect(ids.find('op-1')).toEqual(entry('op-1'));
    await ids.finish('op-1', 202);
    const file = path.join(dir, 'executed-commands.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = await ExecutedIds.open(dir, log);
    expect(again.find('op-1')).toEqual({ ...entry('op-1'), status: 202 });
    expect(again.find('op-2')).toBeUndefined();
    expect(again.count()).toBe(1);
  });

  it('writes nothing when an id it never recorded finishes', async () => {
    const dir = stateDir();
    const ids = await ExecutedIds.open(dir, capture().log);
    await ids.finish('never-seen', 200);
    expect(existsSync(path.join(dir, 'executed-commands.json'))).toBe(false);
    expect(ids.count()).toBe(0);
  });

  it(`forgets the oldest ids beyond the last ${REMEMBERED_IDS}`, async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, 'executed-commands.json'), document(Array.from({ length: REMEMBERED_IDS + 5 }, (_, i) => entry(`op-${i}`))));
    const ids = await ExecutedIds.open(dir, capture().log);
    expect(ids.count()).toBe(REMEMBERED_IDS);
    expect(ids.find('op-4')).toBeUndefined();
    expect(ids.find('op-5')).toBeDefined();
    await ids.record(entry('op-new'));
    expect(ids.count()).toBe(REMEMBERED_IDS);
    expect(ids.find('op-5')).toBeUndefined();
    expect(ids.find('op-6')).toBeDefined();
    const saved = JSON.parse(readFileSync(path.join(dir, 'executed-commands.json'), 'utf8')) as { entries: { id: string }[] };
    expect(saved.entries).toHaveLength(REMEMBERED_IDS);
    expect(saved.entries.at(0)?.id).toBe('op-6');
    expect(saved.entries.at(-1)?.id).toBe('op-new');
  });

  it('keeps exactly the last ids when it is at its limit', async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, 'executed-commands.json'), document(Array.from({ length: REMEMBERED_IDS - 1 }, (_, i) => entry(`op-${i}`))));
    const ids = await ExecutedIds.open(dir, capture().log);
    await ids.record(entry('op-last'));
    expect(ids.count()).toBe(REMEMBERED_IDS);
    expect(ids.find('op-0')).toBeDefined();
  });

  it('skips entries without an id in a file it reads', async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, 'executed-commands.json'), document([entry('a'), null, { command: 'ping' }, { id: 7 }, entry('b')]));
    const ids = await ExecutedIds.open(dir, capture().log);
    expect(ids.count()).toBe(2);
    expect(ids.find('b')).toEqual(entry('b'));
  });

  it.each([
    ['not JSON', '{"kind": "iot-agent/exec'],
    ['another kind of document', JSON.stringify({ kind: 'iot-agent/assignment', entries: [entry('a')] })],
    ['entries that are not a list', JSON.stringify({ kind: 'iot-agent/executed-commands', entries: { a: entry('a') } })],
    ['a document without entries', JSON.stringify({ kind: 'iot-agent/executed-commands' })],
  ])('treats a file that is %s as empty, and says so', async (_what, text) => {
    const dir = stateDir();
    writeFileSync(path.join(dir, 'executed-commands.json'), text);
    const { log, lines } = capture();
    const ids = await ExecutedIds.open(dir, log);
    expect(ids.count()).toBe(0);
    expect(lines).toEqual([expect.stringMatching(/level=warn event=command.executed_ids_invalid file=\S+executed-commands.json err=.+ treatedAs=empty/)]);
  });

  it('says what it found instead of its own document', async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, 'executed-commands.json'), JSON.stringify({ kind: 'iot-agent/assignment', entries: [] }));
    const { log, lines } = capture();
    await ExecutedIds.open(dir, log);
    expect(lines).toEqual([expect.stringContaining('err="not a iot-agent/executed-commands document"')]);
  });

  it('logs a failed write instead of failing the command, and writes again once it can', async () => {
    const dir = stateDir();
    const { log, lines } = capture();
    const ids = await ExecutedIds.open(dir, log);
    rmSync(dir, { recursive: true });
    await expect(ids.record(entry('op-1'))).resolves.toBeUndefined();
    expect(lines).toEqual([expect.stringMatching(/level=warn event=command.executed_ids_write_failed .*ENOENT/)]);
    expect(ids.find('op-1')).toBeDefined();
    mkdirSync(dir);
    await ids.record(entry('op-2'));
    expect((JSON.parse(readFileSync(path.join(dir, 'executed-commands.json'), 'utf8')) as { entries: unknown[] }).entries).toHaveLength(2);
  });

  it('writes in order: the last write holds every change', async () => {
    const dir = stateDir();
    const ids = await ExecutedIds.open(dir, capture().log);
    await Promise.all([ids.record(entry('a')), ids.record(entry('b')), ids.finish('a', 200), ids.record(entry('c'))]);
    const saved = JSON.parse(readFileSync(path.join(dir, 'executed-commands.json'), 'utf8')) as { kind: string; entries: unknown[] };
    expect(saved).toEqual({ kind: 'iot-agent/executed-commands', entries: [{ ...entry('a'), status: 200 }, entry('b'), entry('c')] });
  });
});
