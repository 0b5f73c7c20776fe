import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { isMapping, NOT_JSON, parseJson } from '../lib/validate.js';
import { assignmentTextProblem } from './assignment-text.js';
import { IDENTITY_KEY_SLOTS, isIdentityKeySlot } from '../tpm/key-slots.js';

/** Bumped when the file's shape changes; a file of another version is not trusted. */
export const ASSIGNMENT_SCHEMA = 1;
const FILE_NAME = 'assignment.json';
const KIND = 'iot-agent/assignment';

/** Where DPS put this device, and which DPS said so. Nothing secret: the key lives in the TPM. */
export interface Assignment {
  assignedHub: string;
  deviceId: string;
  registrationId: string;
  idScope: string;
  globalEndpoint: string;
  /** ISO 8601 time of the assignment. */
  assignedAt: string;
  /** The TPM handle of the hub key DPS issued with this assignment (0x81000100 when the file predates key slots). */
  identityKeyHandle: number;
}

export type StoredAssignment =
  | { status: 'absent' }
  | { status: 'valid'; assignment: Assignment }
  | { status: 'invalid'; reason: string };

export function assignmentPath(stateDir: string): string {
  return path.join(stateDir, FILE_NAME);
}

/**
 * Reads the cached assignment. A truncated, corrupt or foreign file is reported as
 * invalid with the reason, never thrown: the caller treats it as "not provisioned".
 */
export async function readAssignment(stateDir: string): Promise<StoredAssignment> {
  let text: string;
  try {
    text = await readFile(assignmentPath(stateDir), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { status: 'absent' };
    return { status: 'invalid', reason: `cannot be read (${code ?? String(err)})` };
  }
  return parseAssignment(text);
}

/** A file's text is an assignment or not: only a missing file is absent. */
export function parseAssignment(text: string): Exclude<StoredAssignment, { status: 'absent' }> {
  const record = parseJson(text);
  if (record === NOT_JSON) {
    return { status: 'invalid', reason: text.trim() === '' ? 'the file is empty' : 'the file is not valid JSON (truncated or corrupt)' };
  }
  if (!isMapping(record)) return { status: 'invalid', reason: 'the file does not hold a JSON object' };
  if (record.kind !== KIND) return { status: 'invalid', reason: `the file is not an iot-agent assignment (kind ${JSON.stringify(record.kind)})` };
  if (record.schema !== ASSIGNMENT_SCHEMA) {
    return { status: 'invalid', reason: `schema ${JSON.stringify(record.schema)} is not the supported ${ASSIGNMENT_SCHEMA}` };
  }
  const fields = ['assignedHub', 'deviceId', 'registrationId', 'idScope', 'globalEndpoint', 'assignedAt'] as const;
  for (const field of fields) {
    const value = record[field];
    if (typeof value !== 'string' || value === '' || value.length > 512) {
      return { status: 'invalid', reason: `${field} is missing or not a non-empty string` };
    }
  }
  if (Number.isNaN(Date.parse(record.assignedAt as string))) return { status: 'invalid', reason: 'assignedAt is not a date' };
  const handle = record.identityKeyHandle ?? IDENTITY_KEY_SLOTS[0];
  if (typeof handle !== 'number' || !isIdentityKeySlot(handle)) {
    return { status: 'invalid', reason: `identityKeyHandle ${JSON.stringify(handle)} is not one of the agent's key slots` };
  }
  const assignment = { ...Object.fromEntries(fields.map((f) => [f, record[f]])), identityKeyHandle: handle } as unknown as Assignment;
  const refused = assignmentTextProblem(assignment);
  if (refused) return { status: 'invalid', reason: refused };
  return { status: 'valid', assignment };
}

export async function writeAssignment(stateDir: string, assignment: Assignment): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const document = { kind: KIND, schema: ASSIGNMENT_SCHEMA, ...assignment };
  await writeFileAtomic(assignmentPath(stateDir), `${JSON.stringify(document, null, 2)}\n`, 0o640);
}

export async function clearAssignment(stateDir: string): Promise<void> {
  await rm(assignmentPath(stateDir), { force: true });
}
