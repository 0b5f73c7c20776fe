import { readFile } from 'node:fs/promises';
import type { AttestationAccess } from './command.js';
import { CommandFailure } from './command.js';
import { describeError } from '../lib/errors.js';
import type { TpmClient } from '../tpm/tpm-client.js';
import { MAX_REPLY_BYTES, type AttestReply } from '../attestation/attest-reply.js';
import { AK_HANDLE } from '../attestation/attestation-key.js';
import { parseEventLogText, replayLog, type EventLog } from '../attestation/event-log.js';
import { defaultSelection } from '../attestation/pcr-selection.js';
import { readPublic } from '../attestation/tpm-commands.js';
import { activateAttestationKey, ensureAttestationKey, quotePcrs } from '../attestation/tpm-attestation.js';

export interface AttestationAccessOptions {
  /** The daemon's TPM connection of the moment (undefined while it has none). */
  tpm(): TpmClient | undefined;
  /** The hardening PCR (attestation.pcr). */
  pcr: number;
  /** The event log the root side keeps: <hardening state dir>/pcr-events.json. */
  eventLogPath: string;
  /** Something the twin reports changed (a new AK, a quote made). */
  onChange(report: AttestationReport): void;
  now?: () => Date;
}

/** Twin reported `attestation`: the verdict is the verifier's, never the agent's. */
export interface AttestationReport {
  pcr: number;
  lastQuoteAt: string | null;
  akName: string | null;
}

/** The attestation commands' access to the daemon's TPM and to the root side's event log. */
export function attestationAccess(options: AttestationAccessOptions): AttestationAccess & { report(): Promise<AttestationReport> } {
  let lastQuoteAt: string | null = null;
  let akName: string | null = null;
  const now = options.now ?? (() => new Date());
  const transport = () => {
    const client = options.tpm();
    if (!client) throw new CommandFailure(503, 'the agent has no TPM connection right now (starting, or the TPM is unavailable); try again');
    return client.transport;
  };
  const current = (): AttestationReport => ({ pcr: options.pcr, lastQuoteAt, akName });

  return {
    key: async () => {
      const ak = await ensureAttestationKey(transport());
      akName = ak.name.toString('hex');
      options.onChange(current());
      return { akPublic: ak.tpm2bPublic.toString('base64'), akName, handle: `0x${AK_HANDLE.toString(16)}`, created: ak.created };
    },
    activate: async (idObject, encryptedSecret) => activateAttestationKey(transport(), idObject, encryptedSecret),
    quote: async (nonce, pcrs) => {
      const tpm = transport();
      const selection = pcrs ?? defaultSelection(options.pcr);
      const started = performance.now();
      const ak = await readPublic(tpm, AK_HANDLE);
      if (!ak) throw new CommandFailure(409, 'there is no attestation key yet: call attestationKey (and have it bound) first');
      // The root side extends the PCR first and writes the log right after: a quote that falls
      // in between is made again, so an honest board never answers with a log one event short.
      let made = await quotePcrs(tpm, nonce, selection);
      let log = await readEventLog(options.eventLogPath);
      for (let attempt = 1; attempt < 3 && !consistent(log.log, made.pcrValues); attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        made = await quotePcrs(tpm, nonce, selection);
        log = await readEventLog(options.eventLogPath);
      }
      const tpmMs = Math.round((performance.now() - started) * 100) / 100;
      const reply: AttestReply = {
        quote: made.attest.toString('base64'),
        signature: made.signature.toString('base64'),
        pcrs: Object.fromEntries(selection.map((pcr) => [String(pcr), made.pcrValues.get(pcr)!.toString('hex')])),
        eventLog: log.log,
        ...(log.error ? { eventLogError: log.error } : {}),
        akName: ak.name.toString('hex'),
        tpmMs,
      };
      const size = Buffer.byteLength(JSON.stringify(reply));
      if (size > MAX_REPLY_BYTES) {
        throw new CommandFailure(413, `the quote and its event log (${log.log?.events.length ?? 0} events) take ${size} bytes, more than a direct method may carry`);
      }
      lastQuoteAt = now().toISOString();
      akName = reply.akName;
      options.onChange(current());
      return reply;
    },
    report: async () => {
      const client = options.tpm();
      if (client && akName === null) {
        const ak = await readPublic(client.transport, AK_HANDLE).catch(() => undefined);
        akName = ak ? ak.name.toString('hex') : null;
      }
      return current();
    },
  };
}

/** Whether the log replays to the quoted value of its PCR (true when that cannot be told). */
function consistent(log: EventLog | null, values: Map<number, Buffer>): boolean {
  const quoted = log ? values.get(log.pcr) : undefined;
  return !log || !quoted || replayLog(log).pcr.equals(quoted);
}

/** The log as the root side wrote it; absent before the first measurement since it began. */
async function readEventLog(file: string): Promise<{ log: EventLog | null; error?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { log: null };
    return { log: null, error: `cannot read ${file}: ${describeError(err)}` };
  }
  try {
    return { log: parseEventLogText(text) };
  } catch (err) {
    return { log: null, error: `${file}: ${describeError(err)}` };
  }
}
