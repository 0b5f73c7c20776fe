import { AttestReplyError, parseAttestReply } from '../agent/attestation/attest-reply.js';
import type { AttestationKeyPublic } from '../agent/attestation/attestation-key.js';
import { replayLog, type EventLog } from '../agent/attestation/event-log.js';
import { HardeningEventError, parseHardeningEvent, type HardeningEvent } from '../agent/attestation/hardening-event.js';
import { formatSelection, pcrDigest, samePcrs } from '../agent/attestation/pcr-selection.js';
import { parseQuote, verifyQuoteSignature, type QuoteInfo } from '../agent/attestation/quote.js';
import { TpmParseError } from '../agent/tpm/wire/tpm-bytes.js';

/**
 * The verifier's judgement of one `attest` answer, check by check. Pure: everything it
 * trusts comes in as arguments (the AK bound through the EK, the nonce it chose, the PCRs
 * it asked for, the golden values); everything the board sent is checked before use.
 */
export type CheckId = 'reply' | 'signature' | 'nonce' | 'pcr-selection' | 'pcr-values' | 'event-log' | 'measured' | 'twin' | 'golden';
export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface Check {
  id: CheckId;
  status: CheckStatus;
  message: string;
}

export interface EventSummary {
  seq: number;
  at: string;
  measured: boolean;
  op?: string;
  by?: string;
  profile?: string | null;
  profileHash?: string | null;
  reason?: string;
}

export interface Posture {
  /** The profile the last measured event put in force (null: none in force). */
  profile: string | null;
  profileHash: string | null;
  measuredAt: string;
  measuredBy: string;
  /** The TPM's resetCount: it grows with every reboot. */
  tpmResetCount: number;
  events: EventSummary[];
}

export interface Verdict {
  ok: boolean;
  checks: Check[];
  /** What the board has loaded since boot, when the quote and the log hold up. */
  posture?: Posture;
}

export interface VerifyInput {
  /** The AK as bound through the enrolled EK. */
  ak: AttestationKeyPublic;
  nonce: Buffer;
  /** The PCRs asked for: 0-7 and the hardening PCR. */
  selection: readonly number[];
  hardeningPcr: number;
  /** The `attest` payload, as received; or why there is none (the board answered with an error). */
  reply: unknown;
  replyError?: string;
  /** The twin's reported properties (what the board claims in `hardening`). */
  reported: Record<string, unknown> | undefined;
  /** Expected PCR values (known-good boot), e.g. 0-7. */
  golden?: ReadonlyMap<number, Buffer>;
}

export function verifyAttestation(input: VerifyInput): Verdict {
  const checks: Check[] = [];
  const add = (id: CheckId, status: CheckStatus, message: string) => checks.push({ id, status, message });
  const skipRest = (ids: CheckId[], why: string) => ids.forEach((id) => add(id, 'skip', why));
  const done = (posture?: Posture): Verdict => ({ ok: checks.every((c) => c.status !== 'fail'), checks, ...(posture ? { posture } : {}) });

  let reply: ReturnType<typeof parseAttestReply>;
  try {
    if (input.replyError !== undefined) throw new AttestReplyError(input.replyError);
    reply = parseAttestReply(input.reply);
    add('reply', 'pass', 'the answer is a well-formed quote, PCR values and event log');
  } catch (err) {
    if (!(err instanceof AttestReplyError)) throw err;
    add('reply', 'fail', err.message);
    skipRest(['signature', 'nonce', 'pcr-selection', 'pcr-values', 'event-log', 'measured', 'twin', 'golden'], 'no usable answer');
    return done();
  }

  let quote: QuoteInfo;
  try {
    quote = parseQuote(reply.quote);
  } catch (err) {
    if (!(err instanceof TpmParseError)) throw err;
    add('signature', 'fail', `not a TPM quote: ${err.message}`);
    skipRest(['nonce', 'pcr-selection', 'pcr-values', 'event-log', 'measured', 'twin', 'golden'], 'no valid quote');
    return done();
  }
  if (!verifyQuoteSignature(input.ak, reply.quote, reply.signature)) {
    add('signature', 'fail', `the quote is not signed by the bound attestation key ${input.ak.name.toString('hex').slice(0, 16)}…` +
      (reply.akName.equals(input.ak.name) ? '' : ` (the board names key ${reply.akName.toString('hex').slice(0, 16)}…: another TPM, or a new key to bind)`));
    skipRest(['nonce', 'pcr-selection', 'pcr-values', 'event-log', 'measured', 'twin', 'golden'], 'nothing in an unsigned quote can be trusted');
    return done();
  }
  add('signature', 'pass', `a TPM-generated quote signed by the bound attestation key (${input.ak.algorithm})`);

  if (quote.extraData.equals(input.nonce)) add('nonce', 'pass', 'the quote carries this verification\'s nonce: it is fresh');
  else add('nonce', 'fail', 'the quote carries another nonce: a replayed (old) quote');

  const expected = [...input.selection];
  if (samePcrs(quote.pcrs, expected)) add('pcr-selection', 'pass', `the quote covers SHA-256 PCRs ${formatSelection(expected)}`);
  else add('pcr-selection', 'fail', `the quote covers PCRs ${formatSelection(quote.pcrs) || '(none)'}, not ${formatSelection(expected)}`);

  const missing = quote.pcrs.filter((pcr) => !reply.pcrs.has(pcr));
  const values = new Map<number, Buffer>();
  if (missing.length) {
    add('pcr-values', 'fail', `no values sent for PCR ${missing.join(', ')}`);
  } else if (!pcrDigest(quote.pcrs.map((pcr) => reply.pcrs.get(pcr)!)).equals(quote.pcrDigest)) {
    add('pcr-values', 'fail', 'the PCR values sent are not those the quote signed');
  } else {
    for (const pcr of quote.pcrs) values.set(pcr, reply.pcrs.get(pcr)!);
    add('pcr-values', 'pass', 'the PCR values sent are those the quote signed');
  }

  let posture: Posture | undefined;
  const hardeningValue = values.get(input.hardeningPcr);
  const log = checkLog(reply.eventLog, reply.eventLogError, input.hardeningPcr, hardeningValue, quote);
  add('event-log', log.status, log.message);
  if (log.status !== 'pass') {
    skipRest(['measured', 'twin'], 'the event log does not match the quoted PCR');
  } else {
    const events = summarise(reply.eventLog!);
    const gaps = events.filter((e) => !e.measured);
    const last = lastHardening(reply.eventLog!);
    if (!last) add('measured', 'fail', 'no hardening was measured since boot');
    else if ('error' in last) add('measured', 'fail', last.error);
    else if (gaps.length) add('measured', 'fail', `${gaps.length} change(s) were not measured: ${gaps.map((g) => `#${g.seq} ${g.reason}`).join('; ').slice(0, 300)}`);
    else add('measured', 'pass', `every change since boot was measured (${events.length} event(s))`);

    if (last && !('error' in last)) {
      const claim = twinClaim(input.reported);
      const { profile, profileHash } = last.event;
      if (claim.profile === profile && claim.appliedHash === profileHash) {
        add('twin', 'pass', `the twin's hardening (${describe(profile, profileHash)}) is what was last measured`);
      } else {
        add('twin', 'fail', `the twin claims ${describe(claim.profile, claim.appliedHash)}, but ${describe(profile, profileHash)} was last measured`);
      }
      posture = {
        profile, profileHash, measuredAt: last.at, measuredBy: last.event.by, tpmResetCount: quote.clockInfo.resetCount, events,
      };
    } else {
      add('twin', 'skip', 'nothing measured to compare with');
    }
  }

  if (!input.golden || input.golden.size === 0) {
    add('golden', 'skip', 'no golden PCR values given');
  } else {
    const differ = [...input.golden].filter(([pcr, value]) => !values.get(pcr)?.equals(value)).map(([pcr]) => pcr);
    if (differ.length) add('golden', 'fail', `PCR ${differ.join(', ')} differ from the golden values: another firmware, boot loader or boot configuration`);
    else add('golden', 'pass', `PCRs ${formatSelection([...input.golden.keys()].sort((a, b) => a - b))} match the golden values`);
  }
  return done(posture);
}

function checkLog(log: EventLog | null, error: string | undefined, pcr: number, value: Buffer | undefined, quote: QuoteInfo): { status: CheckStatus; message: string } {
  if (!value) return { status: 'fail', message: `PCR ${pcr} was not quoted` };
  if (!log) {
    if (error) return { status: 'fail', message: `no event log: ${error}` };
    return value.equals(Buffer.alloc(32))
      ? { status: 'fail', message: `no event log, and PCR ${pcr} is untouched: nothing was measured since boot` }
      : { status: 'fail', message: `no event log, yet PCR ${pcr} was extended` };
  }
  if (log.pcr !== pcr) return { status: 'fail', message: `the event log is about PCR ${log.pcr}, not ${pcr}` };
  if (log.tpmResetCount !== quote.clockInfo.resetCount) {
    return { status: 'fail', message: `the event log is from another boot (TPM reset ${log.tpmResetCount ?? 'unknown'}, now ${quote.clockInfo.resetCount})` };
  }
  const replay = replayLog(log);
  if (replay.problems.length) return { status: 'fail', message: `the event log was altered: ${replay.problems.join('; ')}` };
  if (!replay.pcr.equals(value)) {
    return { status: 'fail', message: `replaying the event log does not give PCR ${pcr}'s quoted value: events were added, removed or changed after they were measured (or something else extends PCR ${pcr})` };
  }
  return { status: 'pass', message: `replaying ${log.events.filter((e) => e.extended).length} event(s) gives PCR ${pcr}'s quoted value` };
}

function lastHardening(log: EventLog): { at: string; event: HardeningEvent } | { error: string } | undefined {
  const last = [...log.events].reverse().find((e) => e.extended);
  if (!last) return undefined;
  try {
    return { at: last.at, event: parseHardeningEvent(last.data) };
  } catch (err) {
    if (err instanceof HardeningEventError) return { error: `event ${last.seq} is not a hardening event: ${err.message}` };
    throw err;
  }
}

function summarise(log: EventLog): EventSummary[] {
  return log.events.map((e) => {
    const base = { seq: e.seq, at: e.at, measured: e.extended, ...(e.extended ? {} : { reason: e.reason }) };
    try {
      const h = parseHardeningEvent(e.data);
      return { ...base, op: h.op, by: h.by, profile: h.profile, profileHash: h.profileHash };
    } catch {
      return base;
    }
  });
}

function twinClaim(reported: Record<string, unknown> | undefined): { profile: string | null; appliedHash: string | null } {
  const hardening = reported?.hardening;
  if (typeof hardening !== 'object' || hardening === null) return { profile: null, appliedHash: null };
  const { profile, appliedHash } = hardening as Record<string, unknown>;
  return { profile: typeof profile === 'string' ? profile : null, appliedHash: typeof appliedHash === 'string' ? appliedHash : null };
}

function describe(profile: string | null, hash: string | null): string {
  return profile === null ? 'no profile' : `profile ${profile} (${hash ? hash.slice(0, 12) : 'no hash'})`;
}
