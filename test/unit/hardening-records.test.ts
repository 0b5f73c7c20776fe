import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { profileHash } from '../../hardening/profile.js';
import { CorruptRecordError, RecordFile, Records } from '../../hardening/records.js';
import { builtinProfile } from '../support/hardening-profiles.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function stateDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-records-'));
  dirs.push(dir);
  return dir;
}

type Raw = Record<string, unknown>;
const strict = () => builtinProfile('strict');
const profileFields = (): Raw => ({ profile: strict(), hash: profileHash(strict()), origin: 'builtin:strict' });
const applied = (): Raw => ({ ...profileFields(), appliedAt: '2024-01-01T00:00:00.000Z', backend: 'auto', confirmed: false, firewall: { 4: ['-A INPUT -j IOT-AGENT-IN'], 6: null } });
const snapshot = (): Raw => ({ takenAt: '2024-01-01T00:00:00.000Z', backend: 'auto', firewall: { 4: '*filter\nCOMMIT\n', 6: null },
  sysctls: { 'net.ipv4.tcp_syncookies': '1', 'net.ipv6.conf.all.disable_ipv6': null }, files: { 'etc/x': null }, sysfs: {}, applied: null });
/** A snapshot with `depth` older ones behind it. */
const chain = (depth: number): Raw => (depth === 0 ? snapshot() : { ...snapshot(), older: chain(depth - 1) });

/** Writes `value` as the record's file and reads it back through the record. */
async function readBack(pick: (r: Records) => RecordFile<unknown>, value: unknown): Promise<unknown> {
  const records = new Records(stateDir());
  const record = pick(records);
  writeFileSync(record.file, JSON.stringify(value));
  return record.read().then((v) => v, (err: unknown) => err);
}

describe('a record file', () => {
  it('reads as null when absent, and as what was written, pretty-printed with its mode', async () => {
    const records = new Records(stateDir());
    expect(await records.pending.read()).toBeNull();
    await records.pending.write({ hash: 'a', startedAt: 'now', timeoutSeconds: 5 });
    expect(readFileSync(records.pending.file, 'utf8')).toBe('{\n  "hash": "a",\n  "startedAt": "now",\n  "timeoutSeconds": 5\n}\n');
    expect(statSync(records.pending.file).mode & 0o777).toBe(0o644);
    expect(await records.pending.read()).toEqual({ hash: 'a', startedAt: 'now', timeoutSeconds: 5 });
  });

  it('is corrupt when it is empty, garbage or not a JSON object, saying which and what to do', async () => {
    const records = new Records(stateDir());
    const file = records.pending.file;
    for (const [text, reason] of [[' \n', 'empty'], ['{"hash": "a"', 'not valid JSON (truncated or garbage)'], ['[1]', 'not a JSON object'],
      ['null', 'not a JSON object'], ['"a"', 'not a JSON object'], ['{"hash": 1}', 'no hash']]) {
      writeFileSync(file, text!);
      const err = await records.pending.read().catch((e: unknown) => e);
      expect(err, text).toBeInstanceOf(CorruptRecordError);
      expect((err as Error).name).toBe('CorruptRecordError');
      expect(err).toMatchObject({ file, message: `hardening record ${file} is corrupt: ${reason}`, hint: 'apply a profile again (the record is rewritten), or remove it' });
    }
  });

  it('is unreadable, not corrupt, when it cannot be read at all', async () => {
    const records = new Records(stateDir());
    mkdirSync(records.pending.file);
    const err = await records.pending.read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).not.toBeInstanceOf(CorruptRecordError);
    expect(err).toMatchObject({ message: `cannot read hardening record ${records.pending.file}`, cause: { code: 'EISDIR' } });
    expect(await records.pending.isCorrupt()).toBe(false);
    await expect(records.pending.readOrNote([])).rejects.toThrow(/cannot read hardening record/);
  });

  it('reads a corrupt record as absent where history is concerned, with a note', async () => {
    const records = new Records(stateDir());
    const notes: string[] = [];
    expect(await records.pending.readOrNote(notes)).toBeNull();
    writeFileSync(records.pending.file, '{"hash": "a"}');
    expect(await records.pending.readOrNote(notes)).toEqual({ hash: 'a' });
    writeFileSync(records.pending.file, '{');
    expect(await records.pending.readOrNote(notes)).toBeNull();
    expect(notes).toEqual([`hardening record ${records.pending.file} is corrupt: not valid JSON (truncated or garbage): ignored`]);
  });

  it('says whether it is corrupt: not when absent or valid', async () => {
    const records = new Records(stateDir());
    expect(await records.pending.isCorrupt()).toBe(false);
    writeFileSync(records.pending.file, '{"hash": "a"}');
    expect(await records.pending.isCorrupt()).toBe(false);
    writeFileSync(records.pending.file, '{}');
    expect(await records.pending.isCorrupt()).toBe(true);
  });

  it('can be removed, also when it is not there', async () => {
    const records = new Records(stateDir());
    await records.pending.write({ hash: 'a', startedAt: 'now', timeoutSeconds: 5 });
    await records.pending.remove();
    expect(existsSync(records.pending.file)).toBe(false);
    await records.pending.remove();
  });
});

describe('the engine\'s records', () => {
  it('are one JSON file each in the state directory, readable by the agent except the snapshot of other software\'s rules', () => {
    const dir = stateDir();
    const records = new Records(dir);
    const files = [records.applied, records.knownGood, records.snapshot, records.pending, records.verified, records.lastApply, records.originals, records.boot];
    expect(records.dir).toBe(dir);
    expect(files.map((r) => [path.relative(dir, r.file), r.mode])).toEqual([
      ['applied.json', 0o644], ['known-good.json', 0o644], ['snapshot.json', 0o600], ['pending.json', 0o644],
      ['verified.json', 0o644], ['last-apply.json', 0o644], ['originals.json', 0o644], ['boot.json', 0o644],
    ]);
  });

  it('keep the snapshot of other software\'s rules to root, and tighten one an older version left readable', async () => {
    const records = new Records(stateDir());
    await records.protect();
    await records.snapshot.write(snapshot() as never);
    expect(statSync(records.snapshot.file).mode & 0o777).toBe(0o600);
    chmodSync(records.snapshot.file, 0o644);
    await records.protect();
    expect(statSync(records.snapshot.file).mode & 0o777).toBe(0o600);
  });

  it('fail to tighten when the state directory is not a directory', async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, 'file'), '');
    await expect(new Records(path.join(dir, 'file')).protect()).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});

describe('what each record must hold to be trusted', () => {
  it('accepts each kind as the engine writes it', async () => {
    expect(await readBack((r) => r.applied, applied())).toEqual(applied());
    expect(await readBack((r) => r.knownGood, { ...profileFields(), confirmedAt: 'now' })).toMatchObject({ confirmedAt: 'now' });
    expect(await readBack((r) => r.snapshot, { ...chain(17), applied: applied() })).toMatchObject({ takenAt: '2024-01-01T00:00:00.000Z' });
    expect(await readBack((r) => r.snapshot, { ...snapshot(), older: null })).toMatchObject({ older: null });
    expect(await readBack((r) => r.verified, { hash: 'h', drift: 0, items: [], checkedAt: 'now', by: 'boot' })).toMatchObject({ drift: 0 });
    expect(await readBack((r) => r.lastApply, { profile: 'strict', finishedAt: 'now', requestId: null })).toMatchObject({ profile: 'strict' });
    expect(await readBack((r) => r.originals, { sysctls: { a: '1', b: null }, sysfs: {} })).toMatchObject({ sysctls: { a: '1', b: null } });
    for (const outcome of ['applied', 'fail-closed']) expect(await readBack((r) => r.boot, { bootId: 'b', outcome })).toMatchObject({ outcome });
  });

  const corrupt: [string, (r: Records) => RecordFile<unknown>, () => unknown, string][] = [
    ['an applied record without a profile', (r) => r.applied, () => ({ ...applied(), profile: undefined }), 'no profile'],
    ['an applied record whose profile has no name', (r) => r.applied, () => ({ ...applied(), profile: { ...strict(), name: 5 } }), 'no profile'],
    ['an applied record whose profile is a list', (r) => r.applied, () => ({ ...applied(), profile: [strict()] }), 'no profile'],
    ['an applied record without a hash', (r) => r.applied, () => ({ ...applied(), hash: undefined }), 'no profile hash'],
    ['an applied record with a short hash', (r) => r.applied, () => ({ ...applied(), hash: profileHash(strict()).slice(1) }), 'no profile hash'],
    ['an applied record with a hash in upper case', (r) => r.applied, () => ({ ...applied(), hash: profileHash(strict()).toUpperCase() }), 'no profile hash'],
    ['an applied record with a hash and more', (r) => r.applied, () => ({ ...applied(), hash: `${profileHash(strict())}0` }), 'no profile hash'],
    ['an applied record with text around its hash', (r) => r.applied, () => ({ ...applied(), hash: `x${profileHash(strict())}` }), 'no profile hash'],
    ['an applied record whose profile was changed', (r) => r.applied, () => ({ ...applied(), profile: { ...strict(), ipv6: 'leave' } }), 'the profile does not match its hash'],
    ['an applied record without an origin', (r) => r.applied, () => ({ ...applied(), origin: 1 }), 'no origin'],
    ['an applied record without the confirmed flag', (r) => r.applied, () => ({ ...applied(), confirmed: 'yes' }), 'no confirmed flag'],
    ['an applied record without firewall lines', (r) => r.applied, () => ({ ...applied(), firewall: null }), 'no firewall lines'],
    ['an applied record with firewall lines as a list', (r) => r.applied, () => ({ ...applied(), firewall: [[], []] }), 'no firewall lines'],
    ['an applied record without IPv6 lines', (r) => r.applied, () => ({ ...applied(), firewall: { 4: [] } }), 'no firewall lines'],
    ['an applied record without IPv4 lines', (r) => r.applied, () => ({ ...applied(), firewall: { 6: null } }), 'no firewall lines'],
    ['an applied record with a firewall line that is not text', (r) => r.applied, () => ({ ...applied(), firewall: { 4: [1], 6: null } }), 'no firewall lines'],
    ['an applied record with IPv6 lines as text', (r) => r.applied, () => ({ ...applied(), firewall: { 4: [], 6: '-A X' } }), 'no firewall lines'],
    ['a known good record without its time', (r) => r.knownGood, () => profileFields(), 'no confirmation time'],
    ['a known good record with a changed profile', (r) => r.knownGood, () => ({ ...profileFields(), hash: '0'.repeat(64), confirmedAt: 'now' }), 'the profile does not match its hash'],
    ['a snapshot without its time', (r) => r.snapshot, () => ({ ...snapshot(), takenAt: 5 }), 'no firewall tables'],
    ['a snapshot without tables', (r) => r.snapshot, () => ({ ...snapshot(), firewall: 'x' }), 'no firewall tables'],
    ['a snapshot with a table that is not text', (r) => r.snapshot, () => ({ ...snapshot(), firewall: { 4: ['x'], 6: null } }), 'no firewall tables'],
    ['a snapshot with an IPv6 table that is not text', (r) => r.snapshot, () => ({ ...snapshot(), firewall: { 4: null, 6: 1 } }), 'no firewall tables'],
    ['a snapshot without sysctls', (r) => r.snapshot, () => ({ ...snapshot(), sysctls: undefined }), 'no sysctls'],
    ['a snapshot with a sysctl that is not text', (r) => r.snapshot, () => ({ ...snapshot(), sysctls: { a: 1 } }), 'no sysctls'],
    ['a snapshot with files as a list', (r) => r.snapshot, () => ({ ...snapshot(), files: [] }), 'no files'],
    ['a snapshot with a sysfs value that is not text', (r) => r.snapshot, () => ({ ...snapshot(), sysfs: { a: false } }), 'no sysfs'],
    ['a snapshot whose applied record is corrupt', (r) => r.snapshot, () => ({ ...snapshot(), applied: { ...applied(), confirmed: 1 } }), 'its applied record is corrupt'],
    ['a snapshot whose applied record is not an object', (r) => r.snapshot, () => ({ ...snapshot(), applied: 'strict' }), 'its applied record is corrupt'],
    ['a snapshot whose applied record is missing', (r) => r.snapshot, () => ({ ...snapshot(), applied: undefined }), 'its applied record is corrupt'],
    ['a snapshot whose older one is not an object', (r) => r.snapshot, () => ({ ...snapshot(), older: 'x' }), 'an older snapshot is corrupt'],
    ['a snapshot whose older one is corrupt', (r) => r.snapshot, () => ({ ...chain(3), older: { ...chain(2), older: { ...snapshot(), sysfs: null } } }), 'no sysfs'],
    ['a snapshot with more than 17 older ones', (r) => r.snapshot, () => chain(18), 'an older snapshot is corrupt'],
    ['a pending marker without a hash', (r) => r.pending, () => ({ startedAt: 'now' }), 'no hash'],
    ['a verify result without a hash', (r) => r.verified, () => ({ drift: 0, items: [], checkedAt: 'now' }), 'not a verify result'],
    ['a verify result without a drift count', (r) => r.verified, () => ({ hash: 'h', drift: '0', items: [], checkedAt: 'now' }), 'not a verify result'],
    ['a verify result without items', (r) => r.verified, () => ({ hash: 'h', drift: 0, items: {}, checkedAt: 'now' }), 'not a verify result'],
    ['a verify result without its time', (r) => r.verified, () => ({ hash: 'h', drift: 0, items: [] }), 'not a verify result'],
    ['an apply outcome without a profile', (r) => r.lastApply, () => ({ finishedAt: 'now' }), 'not an apply outcome'],
    ['an apply outcome without its time', (r) => r.lastApply, () => ({ profile: 'strict' }), 'not an apply outcome'],
    ['originals without sysctls', (r) => r.originals, () => ({ sysfs: {} }), 'not a map of original values'],
    ['originals with a sysfs value that is not text', (r) => r.originals, () => ({ sysctls: {}, sysfs: { a: 0 } }), 'not a map of original values'],
    ['a boot record without its boot', (r) => r.boot, () => ({ outcome: 'applied' }), 'not a boot outcome'],
    ['a boot record with another outcome', (r) => r.boot, () => ({ bootId: 'b', outcome: 'failed' }), 'not a boot outcome'],
  ];
  for (const [what, pick, value, reason] of corrupt) {
    it(`refuses ${what}`, async () => {
      const err = await readBack(pick, value());
      expect(err).toBeInstanceOf(CorruptRecordError);
      expect((err as Error).message).toMatch(new RegExp(`is corrupt: ${reason}$`));
    });
  }
});
