import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assignmentPath, clearAssignment, parseAssignment, readAssignment, writeAssignment, type Assignment,
} from '../../agent/state/assignment-store.js';

const assignment: Assignment = {
  assignedHub: 'hub-a.example.net',
  deviceId: 'board-17',
  registrationId: 'board-17',
  idScope: '0ne0012ABCD',
  globalEndpoint: 'global.azure-devices-provisioning.net',
  assignedAt: '2026-11-26T02:30:00.000Z',
  identityKeyHandle: 0x81000101,
};

function stateDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'iot-agent-state-'));
}

describe('assignment state file', () => {
  it('round-trips, readable by the agent and its group only (the root guard reads it as a member), with kind and schema version, leaving no temporary files', async () => {
    const dir = stateDir();
    await writeAssignment(dir, assignment);
    expect(await readAssignment(dir)).toEqual({ status: 'valid', assignment });
    expect(statSync(assignmentPath(dir)).mode & 0o777).toBe(0o640);
    expect(JSON.parse(readFileSync(assignmentPath(dir), 'utf8'))).toMatchObject({ kind: 'iot-agent/assignment', schema: 1 });
    expect(readdirSync(dir)).toEqual(['assignment.json']);
  });

  it('creates the state directory owner-only when missing', async () => {
    const dir = path.join(stateDir(), 'nested', 'state');
    await writeAssignment(dir, assignment);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('replaces an older assignment and can be cleared', async () => {
    const dir = stateDir();
    await writeAssignment(dir, assignment);
    await writeAssignment(dir, { ...assignment, assignedHub: 'hub-b.example.net' });
    const stored = await readAssignment(dir);
    expect(stored.status === 'valid' && stored.assignment.assignedHub).toBe('hub-b.example.net');
    await clearAssignment(dir);
    expect(await readAssignment(dir)).toEqual({ status: 'absent' });
    await clearAssignment(dir); // idempotent
  });

  it('reports a missing file as absent', async () => {
    expect(await readAssignment(stateDir())).toEqual({ status: 'absent' });
  });

  it('reports a truncated file as invalid instead of throwing', async () => {
    const dir = stateDir();
    await writeAssignment(dir, assignment);
    const text = readFileSync(assignmentPath(dir), 'utf8');
    for (const cut of [0, 1, 20, text.length - 3]) {
      writeFileSync(assignmentPath(dir), text.slice(0, cut));
      const stored = await readAssignment(dir);
      expect(stored.status).toBe('invalid');
    }
  });

  it('reports an unreadable path as invalid', async () => {
    const dir = stateDir();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(assignmentPath(dir)); // a directory where the file should be
    expect(await readAssignment(dir)).toEqual({ status: 'invalid', reason: 'cannot be read (EISDIR)' });
  });

  it.each([
    ['', 'the file is empty'],
    [' \n', 'the file is empty'],
    ['5', 'does not hold a JSON object'],
    ['"assignment"', 'does not hold a JSON object'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, idScope: 'x'.repeat(513) }), 'idScope is missing'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, assignedHub: 'hub a.example.net' }), 'assignedHub "hub a.example.net" is not a DNS host name'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, deviceId: 'board/17' }), 'deviceId "board/17" is not an IoT Hub device id'],
    ['{"kind":"iot-agent/assign', 'not valid JSON'],
    ['\u0000\u0001garbage', 'not valid JSON'],
    ['[]', 'does not hold a JSON object'],
    ['null', 'does not hold a JSON object'],
    ['{"kind":"something-else","schema":1}', 'not an iot-agent assignment'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 2 }), 'schema 2 is not the supported 1'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: '1' }), 'schema "1"'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, deviceId: 7 }), 'deviceId is missing'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, assignedHub: '' }), 'assignedHub is missing'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, assignedAt: 'yesterday' }), 'assignedAt is not a date'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, idScope: 'x'.repeat(600) }), 'idScope is missing'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, identityKeyHandle: 0x81010001 }), 'identityKeyHandle 2164326401 is not'],
    [JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, identityKeyHandle: '0x81000100' }), 'identityKeyHandle "0x81000100" is not'],
  ])('treats %j as invalid: %s', (text, reason) => {
    const stored = parseAssignment(text);
    expect(stored.status).toBe('invalid');
    expect(stored.status === 'invalid' && stored.reason).toContain(reason);
  });

  it('reads a file from before key slots as the SDK\'s handle 0x81000100', () => {
    const older: Partial<Assignment> = { ...assignment };
    delete older.identityKeyHandle;
    const stored = parseAssignment(JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...older }));
    expect(stored).toEqual({ status: 'valid', assignment: { ...assignment, identityKeyHandle: 0x81000100 } });
  });

  it('takes fields of up to 512 characters', () => {
    const long = { ...assignment, idScope: 'x'.repeat(512) };
    expect(parseAssignment(JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...long }))).toEqual({ status: 'valid', assignment: long });
  });

  it('ignores unknown extra fields of the same schema', () => {
    const stored = parseAssignment(JSON.stringify({ kind: 'iot-agent/assignment', schema: 1, ...assignment, extra: true }));
    expect(stored).toEqual({ status: 'valid', assignment });
  });
});
