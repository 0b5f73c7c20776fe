import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { EventLog } from '../../agent/attestation/event-log.js';
import { hardeningEventText } from '../../agent/attestation/hardening-event.js';
import { defaultSelection } from '../../agent/attestation/pcr-selection.js';
import { verifyAttestation, type VerifyInput } from '../../verifier/checks.js';
import { logOf, SoftwareAttestationKey } from '../support/software-quote.js';

const HASH = { baseline: 'a'.repeat(64), strict: 'b'.repeat(64) };
const parts = { iptables: '1'.repeat(64), ip6tables: null, sysctls: '2'.repeat(64), files: '3'.repeat(64), sysfs: '4'.repeat(64) };
const event = (profile: 'baseline' | 'strict', by: 'boot' | 'agent' = 'boot') =>
  hardeningEventText({ op: 'apply', by, profile, profileHash: HASH[profile], parts, agentVersion: '0.1.0' });

/** A board in software: its AK, boot PCRs, and a hardening PCR that is the replay of `log`. */
function board(options: { log?: EventLog; pcr13?: Buffer } = {}) {
  const ak = SoftwareAttestationKey.create();
  const measured = options.log ? { log: options.log, pcr: logOf([]).pcr } : logOf([event('baseline')]);
  const values = new Map<number, Buffer>();
  for (let pcr = 0; pcr < 8; pcr++) values.set(pcr, Buffer.alloc(32, pcr + 1));
  values.set(13, options.pcr13 ?? measured.pcr);
  const reply = (nonce: Buffer, override: { pcrs?: number[]; values?: Map<number, Buffer>; resetCount?: number; log?: EventLog | null } = {}) => {
    const pcrs = override.pcrs ?? defaultSelection(13);
    const v = override.values ?? values;
    const quote = ak.quote({ nonce, pcrs, values: v, resetCount: override.resetCount ?? 1 });
    return {
      quote: quote.attest.toString('base64'), signature: quote.signature.toString('base64'),
      pcrs: Object.fromEntries(pcrs.map((p) => [String(p), v.get(p)!.toString('hex')])),
      eventLog: override.log === undefined ? measured.log : override.log, akName: ak.public.name.toString('hex'),
    };
  };
  return { ak, values, reply };
}

function input(b: ReturnType<typeof board>, overrides: Partial<VerifyInput> = {}, replyOverride: Parameters<ReturnType<typeof board>['reply']>[1] = {}): VerifyInput {
  const nonce = randomBytes(32);
  return {
    ak: b.ak.public, nonce, selection: defaultSelection(13), hardeningPcr: 13, reply: b.reply(nonce, replyOverride),
    reported: { hardening: { profile: 'baseline', appliedHash: HASH.baseline } }, ...overrides,
  };
}

const statusOf = (v: ReturnType<typeof verifyAttestation>) => Object.fromEntries(v.checks.map((c) => [c.id, c.status]));

describe('the verifier\'s checks', () => {
  it('pass for an honest answer, and tell the posture', () => {
    const verdict = verifyAttestation(input(board()));
    expect(statusOf(verdict)).toEqual({ reply: 'pass', signature: 'pass', nonce: 'pass', 'pcr-selection': 'pass', 'pcr-values': 'pass', 'event-log': 'pass', measured: 'pass', twin: 'pass', golden: 'skip' });
    expect(verdict.ok).toBe(true);
    expect(verdict.posture).toMatchObject({ profile: 'baseline', profileHash: HASH.baseline, measuredBy: 'boot', tpmResetCount: 1, events: [{ seq: 1, measured: true, profile: 'baseline' }] });
  });

  it('fail the signature for another key\'s quote, and trust nothing after it', () => {
    const verdict = verifyAttestation(input(board(), { ak: SoftwareAttestationKey.create().public }));
    expect(statusOf(verdict)).toMatchObject({ signature: 'fail', nonce: 'skip', 'event-log': 'skip', twin: 'skip' });
    expect(verdict.ok).toBe(false);
  });

  it('fail the signature when a signed quote was altered', () => {
    const b = board();
    const i = input(b);
    const reply = i.reply as { quote: string };
    const bytes = Buffer.from(reply.quote, 'base64');
    bytes[bytes.length - 1]! ^= 1;
    expect(statusOf(verifyAttestation({ ...i, reply: { ...reply, quote: bytes.toString('base64') } })).signature).toBe('fail');
  });

  it('fail the nonce for an answer to another nonce', () => {
    const b = board();
    const old = input(b);
    expect(statusOf(verifyAttestation({ ...old, nonce: randomBytes(32) }))).toMatchObject({ signature: 'pass', nonce: 'fail' });
  });

  it('fail the selection for a quote over other PCRs', () => {
    const verdict = verifyAttestation(input(board(), {}, { pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }));
    expect(statusOf(verdict)).toMatchObject({ 'pcr-selection': 'fail', 'event-log': 'fail' });
    expect(verdict.checks.find((c) => c.id === 'event-log')?.message).toBe('PCR 13 was not quoted');
  });

  it('fail the PCR values when they are not those the quote signed', () => {
    const b = board();
    const i = input(b);
    const reply = i.reply as { pcrs: Record<string, string> };
    expect(statusOf(verifyAttestation({ ...i, reply: { ...reply, pcrs: { ...reply.pcrs, 13: '00'.repeat(32) } } }))['pcr-values']).toBe('fail');
    const without = Object.fromEntries(Object.entries(reply.pcrs).filter(([pcr]) => pcr !== '13'));
    expect(verifyAttestation({ ...i, reply: { ...reply, pcrs: without } }).checks.find((c) => c.id === 'pcr-values')?.message).toBe('no values sent for PCR 13');
  });

  it('fail the event log when it does not replay to the quoted PCR, is from another TPM boot, or about another PCR', () => {
    const other = logOf([event('strict')]).log;
    expect(statusOf(verifyAttestation(input(board(), {}, { log: other })))['event-log']).toBe('fail');
    expect(verifyAttestation(input(board(), {}, { resetCount: 2 })).checks.find((c) => c.id === 'event-log')?.message).toMatch(/from another boot \(TPM reset 1, now 2\)/);
    const about14 = logOf([event('baseline')], { pcr: 14 });
    expect(verifyAttestation(input(board({ log: about14.log, pcr13: about14.pcr }))).checks.find((c) => c.id === 'event-log')?.message).toMatch(/about PCR 14, not 13/);
    expect(verifyAttestation(input(board(), {}, { log: null })).checks.find((c) => c.id === 'event-log')?.message).toMatch(/no event log, yet PCR 13 was extended/);
  });

  it('fail "measured" when a change was recorded as a gap, or nothing was measured', () => {
    const withGap = logOf([event('baseline'), event('strict', 'agent')], { gaps: [1] });
    const verdict = verifyAttestation(input(board({ log: withGap.log, pcr13: withGap.pcr })));
    expect(statusOf(verdict)).toMatchObject({ 'event-log': 'pass', measured: 'fail', twin: 'pass' });
    expect(verdict.checks.find((c) => c.id === 'measured')?.message).toMatch(/1 change\(s\) were not measured: #2 TPM unavailable/);
    const empty = logOf([]);
    expect(statusOf(verifyAttestation(input(board({ log: empty.log, pcr13: empty.pcr }))))).toMatchObject({ measured: 'fail', twin: 'skip' });
  });

  it('fail the twin when it claims another profile than the last measured one', () => {
    const two = logOf([event('baseline'), event('strict', 'agent')]);
    const b = board({ log: two.log, pcr13: two.pcr });
    expect(statusOf(verifyAttestation(input(b, { reported: { hardening: { profile: 'strict', appliedHash: HASH.strict } } }))).twin).toBe('pass');
    const claim = verifyAttestation(input(b, { reported: { hardening: { profile: 'baseline', appliedHash: HASH.baseline } } }));
    expect(claim.checks.find((c) => c.id === 'twin')?.message).toMatch(/twin claims profile baseline .* but profile strict .* was last measured/);
    expect(statusOf(verifyAttestation(input(b, { reported: {} }))).twin).toBe('fail');
  });

  it('check the boot PCRs against golden values when given', () => {
    const b = board();
    expect(statusOf(verifyAttestation(input(b, { golden: new Map([[0, b.values.get(0)!], [7, b.values.get(7)!]]) }))).golden).toBe('pass');
    const off = verifyAttestation(input(b, { golden: new Map([[0, Buffer.alloc(32)]]) }));
    expect(statusOf(off).golden).toBe('fail');
    expect(off.ok).toBe(false);
  });

  it('fail the reply, and skip the rest, for malformed answers and error answers', () => {
    const b = board();
    for (const reply of [null, 'text', [], { quote: 'x' }, { ...(input(b).reply as object), extra: 1 }]) {
      const verdict = verifyAttestation(input(b, { reply }));
      expect(statusOf(verdict)).toMatchObject({ reply: 'fail', signature: 'skip', twin: 'skip', golden: 'skip' });
    }
    expect(verifyAttestation(input(b, { replyError: 'attest answered 503: no TPM' })).checks[0]).toEqual({ id: 'reply', status: 'fail', message: 'attest answered 503: no TPM' });
  });
});
