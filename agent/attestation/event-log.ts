import { createHash } from 'node:crypto';
import { extendPcr } from './pcr-selection.js';
import { isMapping, NOT_JSON, parseJson } from '../lib/validate.js';

/**
 * The event log of the hardening PCR: one entry per measurement since the TPM's last reset,
 * so that anyone holding a quote of the PCR can replay the log and see whether it is whole.
 * Kept by the root side in /var/lib/iot-agent-hardening/pcr-events.json, replaced atomically,
 * and only ever appended to while the TPM keeps its PCR values (a new log starts when the
 * PCRs were reset: a reboot, or swtpm's TPM2_Startup(CLEAR)).
 *
 * An entry either was extended into the PCR (`extended: true`, with the SHA-256 of its
 * `data`, the exact bytes the TPM hashed in TPM2_PCR_Event) or records a measurement that
 * could not be made (`extended: false`, with the reason): a gap the verifier reports.
 */
export const EVENT_LOG_FORMAT = 'iot-agent-pcr-events/1';
export const MAX_EVENTS = 1_000;
/** TPM2B_EVENT holds at most 1024 bytes (Part 2 §10.4.7). */
export const MAX_EVENT_DATA_BYTES = 1_024;

export interface ExtendedEvent {
  seq: number;
  at: string;
  extended: true;
  sha256: string;
  data: string;
}

export interface GapEvent {
  seq: number;
  at: string;
  extended: false;
  reason: string;
  data: string;
}

export type LogEvent = ExtendedEvent | GapEvent;

export interface EventLog {
  format: typeof EVENT_LOG_FORMAT;
  /** The PCR the events were extended into. */
  pcr: number;
  /** Linux's boot id when the log started. */
  bootId: string;
  /** The TPM's resetCount while the events were extended (null: the TPM could not be read yet). */
  tpmResetCount: number | null;
  events: LogEvent[];
}

export class EventLogError extends Error {}

export function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

export function emptyLog(pcr: number, bootId: string, tpmResetCount: number | null): EventLog {
  return { format: EVENT_LOG_FORMAT, pcr, bootId, tpmResetCount, events: [] };
}

export function appendEvent(log: EventLog, event: Omit<ExtendedEvent, 'seq'> | Omit<GapEvent, 'seq'>): EventLog {
  return { ...log, events: [...log.events, { ...event, seq: log.events.length + 1 }] };
}

/** The PCR value the extended events give, starting from zero, and what is wrong with the log (empty when nothing). */
export function replayLog(log: EventLog): { pcr: Buffer; problems: string[] } {
  let pcr: Buffer = Buffer.alloc(32);
  const problems: string[] = [];
  for (const event of log.events) {
    if (!event.extended) continue;
    const digest = sha256Hex(event.data);
    if (digest !== event.sha256) problems.push(`event ${event.seq}: its sha256 is not the digest of its data`);
    pcr = extendPcr(pcr, Buffer.from(digest, 'hex'));
  }
  return { pcr, problems };
}

/** Checks a parsed JSON document against the format; anything else is an EventLogError naming the field. */
export function parseEventLog(value: unknown): EventLog {
  const top = object(value, 'event log', ['format', 'pcr', 'bootId', 'tpmResetCount', 'events']);
  if (top.format !== EVENT_LOG_FORMAT) throw new EventLogError(`event log: format is not ${EVENT_LOG_FORMAT}`);
  const pcr = integer(top.pcr, 'pcr', 0, 23);
  const bootId = text(top.bootId, 'bootId', 64);
  const tpmResetCount = top.tpmResetCount === null ? null : integer(top.tpmResetCount, 'tpmResetCount', 0, 0xffffffff);
  if (!Array.isArray(top.events)) throw new EventLogError('event log: events is not a list');
  if (top.events.length > MAX_EVENTS) throw new EventLogError(`event log: ${top.events.length} events, more than ${MAX_EVENTS}`);
  const events = top.events.map((raw: unknown, i: number): LogEvent => {
    const where = `events[${i}]`;
    const e = object(raw, where, ['seq', 'at', 'extended', 'sha256', 'reason', 'data']);
    if (integer(e.seq, `${where}.seq`, 1, MAX_EVENTS) !== i + 1) throw new EventLogError(`event log: ${where}.seq is not ${i + 1}`);
    const at = text(e.at, `${where}.at`, 40);
    const data = text(e.data, `${where}.data`, MAX_EVENT_DATA_BYTES);
    if (Buffer.byteLength(data) > MAX_EVENT_DATA_BYTES) throw new EventLogError(`event log: ${where}.data is longer than ${MAX_EVENT_DATA_BYTES} bytes`);
    if (e.extended === true) {
      if (e.reason !== undefined) throw new EventLogError(`event log: ${where} was extended and has a reason`);
      const sha256 = text(e.sha256, `${where}.sha256`, 64);
      if (!/^[0-9a-f]{64}$/.test(sha256)) throw new EventLogError(`event log: ${where}.sha256 is not 64 hex digits`);
      return { seq: i + 1, at, extended: true, sha256, data };
    }
    if (e.extended === false) {
      if (e.sha256 !== undefined) throw new EventLogError(`event log: ${where} was not extended and has a sha256`);
      return { seq: i + 1, at, extended: false, reason: text(e.reason, `${where}.reason`, 500), data };
    }
    throw new EventLogError(`event log: ${where}.extended is not true or false`);
  });
  return { format: EVENT_LOG_FORMAT, pcr, bootId, tpmResetCount, events };
}

/** The file's text: parsed JSON, then the format check. */
export function parseEventLogText(content: string): EventLog {
  const value = parseJson(content);
  if (value === NOT_JSON) throw new EventLogError('event log: not JSON');
  return parseEventLog(value);
}

function object(value: unknown, where: string, keys: readonly string[]): Record<string, unknown> {
  if (!isMapping(value)) throw new EventLogError(`event log: ${where} is not an object`);
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw new EventLogError(`event log: ${where} has an unknown key ${JSON.stringify(key.slice(0, 40))}`);
  }
  return value;
}

function integer(value: unknown, where: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new EventLogError(`event log: ${where} is not a whole number from ${min} to ${max}`);
  }
  return value;
}

function text(value: unknown, where: string, maxLength: number): string {
  if (typeof value !== 'string') throw new EventLogError(`event log: ${where} is not a string`);
  if (value.length > maxLength) throw new EventLogError(`event log: ${where} is longer than ${maxLength} characters`);
  return value;
}
