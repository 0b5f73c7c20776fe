import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConnectionHistory, writeConnectionHistory } from '../../agent/state/connection-history.js';

const FILE = 'connection-history.json';
const REGISTERED = Date.parse('2026-11-26T02:30:00.123Z');

function stateDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'iot-agent-history-'));
}

describe('connection history file', () => {
  it('remembers the last registration to the millisecond across restarts, owner-only, leaving no temporary files', async () => {
    const dir = stateDir();
    await writeConnectionHistory(dir, { lastRegistrationAt: REGISTERED });
    expect(await readConnectionHistory(dir)).toEqual({ lastRegistrationAt: REGISTERED });
    expect(statSync(path.join(dir, FILE)).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual([FILE]);
  });

  it('reads the file an earlier agent wrote (kind and an ISO 8601 time)', async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, FILE), '{"kind":"iot-agent/connection-history","lastRegistrationAt":"2026-11-26T02:30:00.123Z"}\n');
    expect(await readConnectionHistory(dir)).toEqual({ lastRegistrationAt: REGISTERED });
  });

  it('writes an empty history when no registration is known, and reads it back as empty', async () => {
    const dir = stateDir();
    await writeConnectionHistory(dir, { lastRegistrationAt: REGISTERED });
    await writeConnectionHistory(dir, {});
    expect(JSON.parse(readFileSync(path.join(dir, FILE), 'utf8'))).toEqual({ kind: 'iot-agent/connection-history' });
    expect(await readConnectionHistory(dir)).toEqual({});
  });

  it('creates the state directory owner-only when missing', async () => {
    const dir = path.join(stateDir(), 'nested', 'state');
    await writeConnectionHistory(dir, { lastRegistrationAt: REGISTERED });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(await readConnectionHistory(dir)).toEqual({ lastRegistrationAt: REGISTERED });
  });

  it('takes a missing file as an empty history', async () => {
    expect(await readConnectionHistory(stateDir())).toEqual({});
  });

  it.each([
    ['an empty file', ''],
    ['a truncated file', '{"kind":"iot-agent/connection-his'],
    ['null', 'null'],
    ['a number', '5'],
    ['a list', '[]'],
    ['another kind', '{"kind":"iot-agent/assignment","lastRegistrationAt":"2026-11-26T02:30:00.123Z"}'],
    ['no kind', '{"lastRegistrationAt":"2026-11-26T02:30:00.123Z"}'],
    ['no time', '{"kind":"iot-agent/connection-history"}'],
    ['a time that is not a date', '{"kind":"iot-agent/connection-history","lastRegistrationAt":"yesterday"}'],
  ])('takes %s as an empty history rather than failing', async (_what, text) => {
    const dir = stateDir();
    writeFileSync(path.join(dir, FILE), text);
    expect(await readConnectionHistory(dir)).toEqual({});
  });
});
