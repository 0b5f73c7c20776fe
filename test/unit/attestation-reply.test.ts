import { describe, expect, it } from 'vitest';
import { AttestReplyError, parseAttestReply } from '../../agent/attestation/attest-reply.js';
import { emptyLog } from '../../agent/attestation/event-log.js';

/** An answer as a board sends it (the parser decodes; the verifier's checks judge the bytes). */
function answer(): Record<string, unknown> {
  return {
    quote: Buffer.from('a quote').toString('base64'),
    signature: Buffer.from('a signature').toString('base64'),
    pcrs: { 0: '00'.repeat(32), 13: 'ab'.repeat(32) },
    eventLog: emptyLog(13, 'boot-1', 4),
    akName: `000b${'cd'.repeat(32)}`,
    tpmMs: 12.5,
  };
}

function refusal(value: unknown): string {
  try {
    parseAttestReply(value);
  } catch (err) {
    expect(err).toBeInstanceOf(AttestReplyError);
    return (err as Error).message;
  }
  throw new Error('expected an AttestReplyError');
}

describe('the attest answer', () => {
  it('decodes every field', () => {
    expect(parseAttestReply({ ...answer(), eventLogError: 'cannot read the log' })).toEqual({
      quote: Buffer.from('a quote'), signature: Buffer.from('a signature'),
      pcrs: new Map([[0, Buffer.alloc(32)], [13, Buffer.alloc(32, 0xab)]]),
      eventLog: emptyLog(13, 'boot-1', 4), eventLogError: 'cannot read the log',
      akName: Buffer.from(`000b${'cd'.repeat(32)}`, 'hex'), tpmMs: 12.5,
    });
  });

  it('takes an answer without an event log, its error or the TPM time', () => {
    const bare = answer();
    delete bare.eventLog;
    delete bare.tpmMs;
    const parsed = parseAttestReply(bare);
    expect(parsed.eventLog).toBeNull();
    expect(Object.keys(parsed).sort()).toEqual(['akName', 'eventLog', 'pcrs', 'quote', 'signature']);
    expect(parseAttestReply({ ...answer(), eventLog: null }).eventLog).toBeNull();
  });

  it('takes a TPM time of zero and PCR indexes 0 to 23', () => {
    const pcrs = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [String(i), '00'.repeat(32)]));
    const parsed = parseAttestReply({ ...answer(), tpmMs: 0, pcrs });
    expect(parsed.tpmMs).toBe(0);
    expect([...parsed.pcrs.keys()]).toEqual(Array.from({ length: 24 }, (_, i) => i));
  });

  it('takes fields up to their size limits', () => {
    const parsed = parseAttestReply({ ...answer(), quote: 'A'.repeat(4096), signature: 'A'.repeat(1024), akName: 'ab'.repeat(100) });
    expect([parsed.quote.length, parsed.signature.length, parsed.akName.length]).toEqual([3072, 768, 100]);
  });

  it('cuts a long event log error to 500 characters', () => {
    expect(parseAttestReply({ ...answer(), eventLogError: 'e'.repeat(600) }).eventLogError).toBe('e'.repeat(500));
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'attest reply: not an object'],
    ['a list', [], 'attest reply: not an object'],
    ['text', 'ok', 'attest reply: not an object'],
  ])('refuses %s', (_what, value, message) => {
    expect(refusal(value)).toBe(message);
  });

  it.each<[string, (a: Record<string, unknown>) => void, string]>([
    ['an unknown field', (a) => { a.verdict = 'pass'; }, 'attest reply: unknown field "verdict"'],
    ['a long unknown field', (a) => { a['v'.repeat(50)] = 1; }, `attest reply: unknown field "${'v'.repeat(40)}"`],
    ['no quote', (a) => { delete a.quote; }, 'attest reply: quote is not a non-empty string'],
    ['an empty quote', (a) => { a.quote = ''; }, 'attest reply: quote is not a non-empty string'],
    ['a quote over 4096 characters', (a) => { a.quote = 'A'.repeat(4100); }, 'attest reply: quote is longer than 4096 characters'],
    ['a quote that is not base64', (a) => { a.quote = 'not base64!'; }, 'attest reply: quote is not base64'],
    ['a quote cut inside a base64 group', (a) => { a.quote = 'QUJDRA'; }, 'attest reply: quote is not base64'],
    ['a signature as a number', (a) => { a.signature = 5; }, 'attest reply: signature is not a non-empty string'],
    ['a signature over 1024 characters', (a) => { a.signature = 'A'.repeat(1028); }, 'attest reply: signature is longer than 1024 characters'],
    ['an AK name that is not hex', (a) => { a.akName = 'xyz0'; }, 'attest reply: akName is not hex'],
    ['an AK name in capitals', (a) => { a.akName = 'AB'; }, 'attest reply: akName is not hex'],
    ['an AK name of an odd length', (a) => { a.akName = 'abc'; }, 'attest reply: akName is not hex'],
    ['an AK name over 200 characters', (a) => { a.akName = 'ab'.repeat(101); }, 'attest reply: akName is longer than 200 characters'],
    ['no PCRs', (a) => { delete a.pcrs; }, 'attest reply: pcrs is not an object'],
    ['PCRs as null', (a) => { a.pcrs = null; }, 'attest reply: pcrs is not an object'],
    ['PCRs as text', (a) => { a.pcrs = '13'; }, 'attest reply: pcrs is not an object'],
    ['PCRs as a list', (a) => { a.pcrs = ['00'.repeat(32)]; }, 'attest reply: pcrs is not an object'],
    ['PCR 24', (a) => { a.pcrs = { 24: '00'.repeat(32) }; }, 'attest reply: pcrs has a key "24" that is no PCR index'],
    ['a long PCR key', (a) => { a.pcrs = { ['1'.repeat(20)]: '00'.repeat(32) }; }, 'attest reply: pcrs has a key "1111111111" that is no PCR index'],
    ['a PCR value that is not hex', (a) => { a.pcrs = { 13: 'zz'.repeat(32) }; }, 'attest reply: pcrs.13 is not hex'],
    ['a PCR value over 64 characters', (a) => { a.pcrs = { 13: '00'.repeat(33) }; }, 'attest reply: pcrs.13 is longer than 64 characters'],
    ['a SHA-1 PCR value', (a) => { a.pcrs = { 13: '00'.repeat(20) }; }, 'attest reply: pcrs.13 is not a SHA-256 value'],
    ['a malformed event log', (a) => { a.eventLog = { format: 'x' }; }, 'attest reply: event log: format is not iot-agent-pcr-events/1'],
    ['an event log error that is not text', (a) => { a.eventLogError = 5; }, 'attest reply: eventLogError is not a string'],
    ['a negative TPM time', (a) => { a.tpmMs = -0.5; }, 'attest reply: tpmMs is not a duration'],
    ['a TPM time as text', (a) => { a.tpmMs = '12'; }, 'attest reply: tpmMs is not a duration'],
    ['a TPM time that is no number', (a) => { a.tpmMs = Number.NaN; }, 'attest reply: tpmMs is not a duration'],
    ['an endless TPM time', (a) => { a.tpmMs = Number.POSITIVE_INFINITY; }, 'attest reply: tpmMs is not a duration'],
  ])('refuses %s, naming the field', (_what, edit, message) => {
    const value = answer();
    edit(value);
    expect(refusal(value)).toBe(message);
  });
});
