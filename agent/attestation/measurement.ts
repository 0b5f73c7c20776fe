import { readFile, rename } from 'node:fs/promises';
import { describeError } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import type { TpmTransport } from '../tpm/transport.js';
import { appendEvent, emptyLog, EventLogError, parseEventLogText, sha256Hex, type EventLog, type LogEvent } from './event-log.js';
import { pcrEvent, pcrRead, readClock } from './tpm-commands.js';

/** Where the TPM comes from: opened for one measurement (the root CLI), or lent by the daemon that holds it. */
export interface TpmSource {
  open(): Promise<TpmTransport>;
  release(tpm: TpmTransport): Promise<void>;
}

export interface MeasurementRequest {
  logPath: string;
  pcr: number;
  /** The exact text to extend (TPM2_PCR_Event hashes it with every active bank). */
  data: string;
  bootId: string;
  now: Date;
  tpm: TpmSource;
  /** Not extended again when the log's last entry already says the same (a re-apply that changed nothing). */
  alreadyRecorded?: (last: LogEvent) => boolean;
}

export type MeasurementOutcome =
  | { outcome: 'extended'; seq: number }
  | { outcome: 'unchanged' }
  | { outcome: 'gap'; seq: number; reason: string };

const ZERO_PCR = Buffer.alloc(32);
const SHA256 = 0x000b;

/**
 * Extends `data` into the PCR and appends it to the event log, starting a fresh log when
 * the PCRs were reset since the log began (another TPM resetCount, or the PCR back at zero).
 * When the TPM cannot be used, nothing is extended and a gap is recorded instead, with the
 * reason: the caller's work (the hardening itself) goes on regardless, and the verifier sees
 * that this state was never measured. Throws only when the log cannot be written.
 */
export async function recordMeasurement(request: MeasurementRequest): Promise<MeasurementOutcome> {
  const { pcr, data, bootId } = request;
  const at = request.now.toISOString();
  const { log: existing, note } = await readLogKeepingCorrupt(request.logPath, request.now);
  const gap = (log: EventLog, reason: string) =>
    finish(request.logPath, appendEvent(withNote(log, note, at), { at, extended: false, reason, data }), { outcome: 'gap' as const, reason });

  let tpm: TpmTransport;
  let state: { resetCount: number; value: Buffer };
  try {
    tpm = await request.tpm.open();
  } catch (err) {
    return gap(sameBootLog(existing, pcr, bootId) ?? emptyLog(pcr, bootId, null), `TPM unavailable: ${describeError(err).slice(0, 400)}`);
  }
  try {
    try {
      const clock = await readClock(tpm);
      state = { resetCount: clock.resetCount, value: (await pcrRead(tpm, [pcr])).get(pcr)! };
    } catch (err) {
      return await gap(sameBootLog(existing, pcr, bootId) ?? emptyLog(pcr, bootId, null), `TPM unavailable: ${describeError(err).slice(0, 400)}`);
    }
    let log: EventLog;
    if (!existing || existing.pcr !== pcr || startedBefore(existing, bootId, state)) {
      // Gaps recorded in this boot before the TPM could be read belong to this PCR epoch too.
      const earlier = existing?.tpmResetCount === null && existing.bootId === bootId && existing.pcr === pcr ? existing.events : [];
      log = earlier.reduce((l: EventLog, e) => appendEvent(l, e), emptyLog(pcr, bootId, state.resetCount));
    } else {
      log = { ...existing, tpmResetCount: state.resetCount };
    }
    const last = log.events.at(-1);
    if (!note && last && request.alreadyRecorded?.(last)) {
      if (JSON.stringify(log) !== JSON.stringify(existing)) await writeLog(request.logPath, log);
      return { outcome: 'unchanged' };
    }
    log = withNote(log, note, at);
    let digests: Map<number, Buffer>;
    try {
      digests = await pcrEvent(tpm, pcr, Buffer.from(data, 'utf8'));
    } catch (err) {
      return await finish(request.logPath, appendEvent(log, { at, extended: false, reason: `TPM2_PCR_Event failed: ${describeError(err).slice(0, 400)}`, data }), { outcome: 'gap' as const, reason: 'TPM2_PCR_Event failed' });
    }
    const sha256 = sha256Hex(data);
    if (digests.get(SHA256)?.toString('hex') !== sha256) throw new EventLogError('the TPM extended another SHA-256 digest than that of the event');
    return await finish(request.logPath, appendEvent(log, { at, extended: true, sha256, data }), { outcome: 'extended' as const });
  } finally {
    await request.tpm.release(tpm).catch(() => undefined);
  }
}

function sameBootLog(log: EventLog | undefined, pcr: number, bootId: string): EventLog | undefined {
  return log && log.pcr === pcr && log.bootId === bootId ? log : undefined;
}

/** Whether the PCR values the log describes are gone: another TPM reset, or a restart that zeroed the PCR. */
function startedBefore(log: EventLog, bootId: string, now: { resetCount: number; value: Buffer }): boolean {
  if (log.tpmResetCount === null) return log.bootId !== bootId;
  if (log.tpmResetCount !== now.resetCount) return true;
  return log.events.some((e) => e.extended) && now.value.equals(ZERO_PCR);
}

async function finish<T extends { outcome: string }>(file: string, log: EventLog, result: T): Promise<T & { seq: number }> {
  await writeLog(file, log);
  return { ...result, seq: log.events.length };
}

async function writeLog(file: string, log: EventLog): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(log, null, 1)}\n`, 0o644);
}

/** A log that cannot be read is kept aside (for whoever investigates) and noted as a gap in the next one. */
async function readLogKeepingCorrupt(file: string, now: Date): Promise<{ log: EventLog | undefined; note?: string }> {
  let content: string;
  try {
    content = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { log: undefined };
    throw err;
  }
  try {
    return { log: parseEventLogText(content) };
  } catch (err) {
    const aside = `${file}.unreadable-${now.getTime()}`;
    await rename(file, aside);
    return { log: undefined, note: `the previous event log was unreadable (${(err as Error).message}); kept as ${aside}` };
  }
}

function withNote(log: EventLog, note: string | undefined, at: string): EventLog {
  // A note is not a measurement: its data is empty, so the verifier reports it as a gap in the record.
  return note ? appendEvent(log, { at, extended: false, reason: note, data: '' }) : log;
}
