import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  appendEvent, emptyLog, EventLogError, MAX_EVENT_DATA_BYTES, MAX_EVENTS, parseEventLog, parseEventLogText, replayLog, sha256Hex, type EventLog,
} from '../../agent/attestation/event-log.js';
import { extendPcr } from '../../agent/attestation/pcr-selection.js';

const AT = '2026-12-01T12:00:00.000Z';

/** A log of PCR 13: one extended event, then one gap. */
function sampleLog(): EventLog {
  const extended = appendEvent(emptyLog(13, 'boot-1', 4), { at: AT, extended: true, sha256: sha256Hex('applied'), data: 'applied' });
  return appendEvent(extended, { at: AT, extended: false, reason: 'TPM unavailable: busy', data: 'again' });
}

function refusal(value: unknown): string {
  try {
    parseEventLog(value);
  } catch (err) {
    expect(err).toBeInstanceOf(EventLogError);
    return (err as Error).message;
  }
  throw new Error('expected an EventLogError');
}

describe('the event log format', () => {
  it('reads a log with extended events and gaps as it was written', () => {
    const log = sampleLog();
    expect(parseEventLog(JSON.parse(JSON.stringify(log)))).toEqual(log);
    expect(log.events.map((e) => e.seq)).toEqual([1, 2]);
  });

  it('reads a log whose TPM could not be read yet (no reset count)', () => {
    const log = emptyLog(13, 'boot-1', null);
    expect(parseEventLog(log)).toEqual(log);
  });

  it('takes the limits themselves: PCR 0 and 23, the largest reset count, 1000 events, 1024 bytes of data', () => {
    for (const pcr of [0, 23]) expect(parseEventLog({ ...emptyLog(pcr, 'b', 0xffffffff) }).pcr).toBe(pcr);
    const data = 'é'.repeat(MAX_EVENT_DATA_BYTES / 2);
    let log = emptyLog(13, 'b'.repeat(64), 0);
    for (let i = 0; i < MAX_EVENTS; i++) log = appendEvent(log, { at: AT, extended: true, sha256: sha256Hex(data), data });
    expect(parseEventLog(JSON.parse(JSON.stringify(log))).events).toHaveLength(1000);
  });

  it('hashes event data as UTF-8, as the TPM hashed the bytes it was given', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('é')).toBe(createHash('sha256').update(Buffer.from([0xc3, 0xa9])).digest('hex'));
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'event log: event log is not an object'],
    ['a list', [], 'event log: event log is not an object'],
    ['a number', 5, 'event log: event log is not an object'],
  ])('refuses %s, naming the field', (_what, value, message) => {
    expect(refusal(value)).toBe(message);
  });

  // The fields each row puts over an empty log of PCR 13.
  it.each<[string, Record<string, unknown>, string]>([
    ['an unknown key', { extra: 1 }, 'event log: event log has an unknown key "extra"'],
    ['a long unknown key', { ['k'.repeat(50)]: 1 }, `event log: event log has an unknown key "${'k'.repeat(40)}"`],
    ['another format', { format: 'iot-agent-pcr-events/2' }, 'event log: format is not iot-agent-pcr-events/1'],
    ['PCR 24', { pcr: 24 }, 'event log: pcr is not a whole number from 0 to 23'],
    ['PCR -1', { pcr: -1 }, 'event log: pcr is not a whole number from 0 to 23'],
    ['a PCR as text', { pcr: '13' }, 'event log: pcr is not a whole number from 0 to 23'],
    ['a boot id that is not text', { bootId: 7 }, 'event log: bootId is not a string'],
    ['a boot id over 64 characters', { bootId: 'b'.repeat(65) }, 'event log: bootId is longer than 64 characters'],
    ['a reset count past 32 bits', { tpmResetCount: 2 ** 32 }, 'event log: tpmResetCount is not a whole number from 0 to 4294967295'],
    ['events that are not a list', { events: {} }, 'event log: events is not a list'],
  ])('refuses %s, naming the field', (_what, fields, message) => {
    expect(refusal({ ...emptyLog(13, 'b', 1), ...fields })).toBe(message);
  });

  it('refuses more than 1000 events, saying how many', () => {
    const log = sampleLog();
    const events = Array.from({ length: MAX_EVENTS + 1 }, (_, i) => ({ ...log.events[0], seq: i + 1 }));
    expect(refusal({ ...log, events })).toBe('event log: 1001 events, more than 1000');
  });

  it.each<[string, (log: EventLog) => unknown, string]>([
    ['an event that is not an object', (log) => [log.events[0], 'x'], 'event log: events[1] is not an object'],
    ['an event with an unknown key', (log) => [{ ...log.events[0], pcr: 13 }], 'event log: events[0] has an unknown key "pcr"'],
    ['a sequence out of order', (log) => [log.events[1], log.events[0]], 'event log: events[0].seq is not 1'],
    ['a second event numbered 1', (log) => [log.events[0], { ...log.events[1], seq: 1 }], 'event log: events[1].seq is not 2'],
    ['a sequence number 0', (log) => [{ ...log.events[0], seq: 0 }], 'event log: events[0].seq is not a whole number from 1 to 1000'],
    ['a time that is not text', (log) => [{ ...log.events[0], at: 0 }], 'event log: events[0].at is not a string'],
    ['a time over 40 characters', (log) => [{ ...log.events[0], at: `${AT}${'0'.repeat(20)}` }], 'event log: events[0].at is longer than 40 characters'],
    ['data that is not text', (log) => [{ ...log.events[0], data: null }], 'event log: events[0].data is not a string'],
    ['data over 1024 characters', (log) => [{ ...log.events[0], data: 'x'.repeat(1025) }], 'event log: events[0].data is longer than 1024 characters'],
    ['data over 1024 bytes', (log) => [{ ...log.events[0], data: 'é'.repeat(513) }], 'event log: events[0].data is longer than 1024 bytes'],
    ['an extended event with a reason', (log) => [{ ...log.events[0], reason: 'x' }], 'event log: events[0] was extended and has a reason'],
    ['an extended event without a digest', (log) => [{ ...log.events[0], sha256: undefined }], 'event log: events[0].sha256 is not a string'],
    ['a digest in capitals', (log) => [{ ...log.events[0], sha256: sha256Hex('applied').toUpperCase() }], 'event log: events[0].sha256 is not 64 hex digits'],
    ['a short digest', (log) => [{ ...log.events[0], sha256: 'ab' }], 'event log: events[0].sha256 is not 64 hex digits'],
    ['a gap with a digest', (log) => [log.events[0], { ...log.events[1], sha256: sha256Hex('again') }], 'event log: events[1] was not extended and has a sha256'],
    ['a gap without a reason', (log) => [log.events[0], { ...log.events[1], reason: undefined }], 'event log: events[1].reason is not a string'],
    ['a gap with a reason over 500 characters', (log) => [{ ...log.events[1], seq: 1, reason: 'r'.repeat(501) }], 'event log: events[0].reason is longer than 500 characters'],
    ['an event neither extended nor not', (log) => [{ ...log.events[0], extended: 'yes' }], 'event log: events[0].extended is not true or false'],
  ])('refuses %s, naming the event and its field', (_what, events, message) => {
    const log = sampleLog();
    expect(refusal({ ...log, events: events(log) })).toBe(message);
  });

  it('refuses a file that is not JSON as such', () => {
    expect(() => parseEventLogText('{"format": ')).toThrow(new EventLogError('event log: not JSON'));
    expect(parseEventLogText(JSON.stringify(sampleLog()))).toEqual(sampleLog());
  });
});

describe('replaying the event log', () => {
  it('extends a zero PCR with the digest of each extended event, skipping gaps', () => {
    const log = appendEvent(sampleLog(), { at: AT, extended: true, sha256: sha256Hex('more'), data: 'more' });
    const expected = extendPcr(extendPcr(Buffer.alloc(32), Buffer.from(sha256Hex('applied'), 'hex')), Buffer.from(sha256Hex('more'), 'hex'));
    expect(replayLog(log)).toEqual({ pcr: expected, problems: [] });
    expect(replayLog(emptyLog(13, 'b', 1)).pcr).toEqual(Buffer.alloc(32));
  });
});
