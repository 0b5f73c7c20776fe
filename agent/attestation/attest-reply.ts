import { EventLogError, parseEventLog, type EventLog } from './event-log.js';
import { isMapping } from '../lib/validate.js';

/**
 * The answer to the `attest` command: a quote, the PCR values it covers and the hardening
 * event log, all as the board claims them. The verifier trusts none of it until the checks
 * (verifier/checks.ts) tie it to the bound AK, its nonce and the replayed log.
 */
export interface AttestReply {
  /** TPMS_ATTEST, base64: the bytes the AK signed. */
  quote: string;
  /** TPMT_SIGNATURE, base64. */
  signature: string;
  /** SHA-256 PCR values by index, hex. */
  pcrs: Record<string, string>;
  /** null when no measurement was recorded since the log began (or it is unreadable: see eventLogError). */
  eventLog: EventLog | null;
  eventLogError?: string;
  /** The AK's name, hex: which key the board says it signed with. */
  akName: string;
  /** Milliseconds the board spent in the TPM for this answer (the quote and the PCR reads). */
  tpmMs?: number;
}

/** What the board sends back: 128 KiB is IoT Hub's limit for a direct method's payload. */
export const MAX_REPLY_BYTES = 120 * 1024;

export class AttestReplyError extends Error {}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX = /^[0-9a-f]*$/;

/** Checks an `attest` payload as received from the hub; anything malformed is an AttestReplyError naming the field. */
export interface ParsedAttestReply {
  quote: Buffer;
  signature: Buffer;
  pcrs: Map<number, Buffer>;
  eventLog: EventLog | null;
  eventLogError?: string;
  akName: Buffer;
  tpmMs?: number;
}

export function parseAttestReply(v: unknown): ParsedAttestReply {
  if (!isMapping(v)) throw new AttestReplyError('attest reply: not an object');
  const unknown = Object.keys(v).find((k) => !['quote', 'signature', 'pcrs', 'eventLog', 'eventLogError', 'akName', 'tpmMs'].includes(k));
  if (unknown !== undefined) throw new AttestReplyError(`attest reply: unknown field ${JSON.stringify(unknown.slice(0, 40))}`);
  const quote = decode(v.quote, 'quote', BASE64, 'base64', 4096);
  const signature = decode(v.signature, 'signature', BASE64, 'base64', 1024);
  const akName = decode(v.akName, 'akName', HEX, 'hex', 200);
  if (!isMapping(v.pcrs)) throw new AttestReplyError('attest reply: pcrs is not an object');
  const pcrs = new Map<number, Buffer>();
  for (const [key, hex] of Object.entries(v.pcrs)) {
    if (!/^(1?\d|2[0-3])$/.test(key)) throw new AttestReplyError(`attest reply: pcrs has a key ${JSON.stringify(key.slice(0, 10))} that is no PCR index`);
    const digest = decode(hex, `pcrs.${key}`, HEX, 'hex', 64);
    if (digest.length !== 32) throw new AttestReplyError(`attest reply: pcrs.${key} is not a SHA-256 value`);
    pcrs.set(Number(key), digest);
  }
  let eventLog: EventLog | null = null;
  if (v.eventLog !== null && v.eventLog !== undefined) {
    try {
      eventLog = parseEventLog(v.eventLog);
    } catch (err) {
      if (err instanceof EventLogError) throw new AttestReplyError(`attest reply: ${err.message}`);
      throw err;
    }
  }
  if (v.eventLogError !== undefined && typeof v.eventLogError !== 'string') throw new AttestReplyError('attest reply: eventLogError is not a string');
  if (v.tpmMs !== undefined && (typeof v.tpmMs !== 'number' || !Number.isFinite(v.tpmMs) || v.tpmMs < 0)) throw new AttestReplyError('attest reply: tpmMs is not a duration');
  return {
    quote, signature, pcrs, eventLog, akName,
    ...(typeof v.eventLogError === 'string' ? { eventLogError: v.eventLogError.slice(0, 500) } : {}),
    ...(typeof v.tpmMs === 'number' ? { tpmMs: v.tpmMs } : {}),
  };
}

function decode(value: unknown, field: string, pattern: RegExp, encoding: 'base64' | 'hex', maxChars: number): Buffer {
  if (typeof value !== 'string' || value.length === 0) throw new AttestReplyError(`attest reply: ${field} is not a non-empty string`);
  if (value.length > maxChars) throw new AttestReplyError(`attest reply: ${field} is longer than ${maxChars} characters`);
  if (!pattern.test(value) || (encoding === 'hex' && value.length % 2 !== 0) || (encoding === 'base64' && value.length % 4 !== 0)) {
    throw new AttestReplyError(`attest reply: ${field} is not ${encoding}`);
  }
  return Buffer.from(value, encoding);
}
