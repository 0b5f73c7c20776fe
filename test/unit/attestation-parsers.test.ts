import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AttestReplyError, parseAttestReply } from '../../agent/attestation/attest-reply.js';
import { attestationKeyTemplate, parseAttestationKey } from '../../agent/attestation/attestation-key.js';
import { EVENT_LOG_FORMAT, EventLogError, parseEventLog, parseEventLogText, replayLog, type EventLog } from '../../agent/attestation/event-log.js';
import { HardeningEventError, hardeningEventText, parseHardeningEvent, sameState } from '../../agent/attestation/hardening-event.js';
import { formatSelection, marshalSelection, parseSelection, PcrSelectionError, readSelection } from '../../agent/attestation/pcr-selection.js';
import { parseQuote, verifyQuoteSignature } from '../../agent/attestation/quote.js';
import { marshalCommand, PASSWORD, unmarshalResponse } from '../../agent/tpm/wire/command.js';
import { TpmCommandError } from '../../agent/tpm/tpm-client.js';
import { TpmParseError, TpmReader, tpm2b, u16, u32 } from '../../agent/tpm/wire/tpm-bytes.js';
import { parseBinding } from '../../verifier/bindings.js';
import { parseEndorsementKeyText } from '../../verifier/endorsement-key.js';
import { parseGolden } from '../../verifier/golden.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { logOf, SoftwareAttestationKey } from '../support/software-quote.js';

const HEX64 = 'c'.repeat(64);

/** The text of a hardening event as the boot unit measures it. */
function hardeningEvent(): string {
  return hardeningEventText({ op: 'apply', by: 'boot', profile: 'baseline', profileHash: HEX64, agentVersion: '0.1.0',
    parts: { iptables: HEX64, ip6tables: null, sysctls: HEX64, files: HEX64, sysfs: HEX64 } });
}

/** A log of one extended hardening event. */
function goodLog(): EventLog {
  return logOf([hardeningEvent()]).log;
}

describe('the event log file', () => {
  it('reads back what is written, and replays it', () => {
    const good = goodLog();
    expect(parseEventLogText(JSON.stringify(good))).toEqual(good);
    expect(replayLog(good).problems).toEqual([]);
  });

  it.each<[string, (good: EventLog) => unknown]>([
    ['another format', (good) => ({ ...good, format: 'other/1' })],
    ['an unknown key', (good) => ({ ...good, extra: 1 })],
    ['a PCR out of range', (good) => ({ ...good, pcr: 24 })],
    ['a fractional reset count', (good) => ({ ...good, tpmResetCount: 1.5 })],
    ['events that are not a list', (good) => ({ ...good, events: {} })],
    ['a sequence out of order', (good) => ({ ...good, events: [{ ...good.events[0], seq: 2 }] })],
    ['an event neither extended nor not', (good) => ({ ...good, events: [{ ...good.events[0], extended: 'yes' }] })],
    ['an extended event without a digest', (good) => ({ ...good, events: [{ ...good.events[0], sha256: undefined }] })],
    ['a digest that is not hex', (good) => ({ ...good, events: [{ ...good.events[0], sha256: 'z'.repeat(64) }] })],
    ['an extended event with a reason', (good) => ({ ...good, events: [{ ...good.events[0], reason: 'x' }] })],
    ['a gap with a digest', (good) => ({ ...good, events: [{ ...good.events[0], extended: false, reason: 'r' }] })],
    ['data over 1024 bytes', (good) => ({ ...good, events: [{ ...good.events[0], data: 'é'.repeat(600) }] })],
    ['a boot id too long', (good) => ({ ...good, bootId: 'b'.repeat(65) })],
    ['too many events', (good) => ({ ...good, events: Array.from({ length: 1001 }, (_, i) => ({ ...good.events[0], seq: i + 1 })) })],
  ])('refuses %s with an EventLogError', (_what, edit) => {
    expect(() => parseEventLogText(JSON.stringify(edit(goodLog())))).toThrow(EventLogError);
  });

  it.each([['not JSON', '{"format":'], ['not an object', '[]']])('refuses a file that is %s with an EventLogError', (_what, text) => {
    expect(() => parseEventLogText(text)).toThrow(EventLogError);
  });

  it('reports an event whose digest is not that of its data', () => {
    const good = goodLog();
    const edited = { ...good, events: [{ ...good.events[0]!, data: hardeningEvent().replace('baseline', 'strict') }] };
    expect(replayLog(parseEventLog(edited)).problems).toEqual(['event 1: its sha256 is not the digest of its data']);
    expect(parseEventLog(edited).format).toBe(EVENT_LOG_FORMAT);
  });
});

describe('hardening events', () => {
  it('read back exactly, keys in a fixed order', () => {
    const event = hardeningEvent();
    expect(event.startsWith('{"type":"iot-agent/hardening","op":"apply","by":"boot","profile":"baseline"')).toBe(true);
    expect(hardeningEventText(parseHardeningEvent(event))).toBe(event);
    const none = hardeningEventText({ op: 'rollback', by: 'cli', profile: null, profileHash: null, parts: null, agentVersion: '0.1.0' });
    expect(parseHardeningEvent(none)).toMatchObject({ profile: null, parts: null });
  });

  it('compare by state, not by who measured it', () => {
    const a = parseHardeningEvent(hardeningEvent());
    expect(sameState(a, { ...a, by: 'agent', op: 'rollback' })).toBe(true);
    expect(sameState(a, { ...a, parts: { ...a.parts!, sysfs: 'd'.repeat(64) } })).toBe(false);
  });

  it.each<[string, (event: string) => string]>([
    ['not JSON', () => 'nope'],
    ['another type', (event) => event.replace('iot-agent/hardening', 'other')],
    ['an unknown operation', (event) => event.replace('"op":"apply"', '"op":"flush"')],
    ['an unknown measurer', (event) => event.replace('"by":"boot"', '"by":"root"')],
    ['a profile name with a slash', (event) => event.replace('"profile":"baseline"', '"profile":"../x"')],
    ['a short hash', (event) => event.replace(`"profileHash":"${HEX64}"`, '"profileHash":"abc"')],
    ['a missing part', (event) => event.replace(`"sysfs":"${HEX64}"`, '"other":"x"')],
    ['no profile but parts', (event) => event.replace('"profile":"baseline"', '"profile":null')],
    ['an extra key', (event) => event.replace('{"type"', '{"x":1,"type"')],
    ['a missing key', (event) => event.replace(',"agentVersion":"0.1.0"', '')],
  ])('refuses %s with a HardeningEventError', (_what, edit) => {
    expect(() => parseHardeningEvent(edit(hardeningEvent()))).toThrow(HardeningEventError);
  });
});

describe('PCR selections', () => {
  it('read and write lists, ranges and the TPM encoding', () => {
    expect(parseSelection('0-7,13')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 13]);
    expect(parseSelection('13,0,0')).toEqual([0, 13]);
    expect(formatSelection([0, 1, 2, 3, 4, 5, 6, 7, 13, 15, 16])).toBe('0-7,13,15-16');
    expect(readSelection(new TpmReader(marshalSelection([0, 7, 13, 23]), 'test'))).toEqual([0, 7, 13, 23]);
    expect(marshalSelection([0, 13])).toEqual(Buffer.from('00000001000b03012000', 'hex'));
  });

  it.each(['', '0-7,', '24', '7-3', 'a', '0--7', '-1', '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,0,1'])('refuses %j', (text) => {
    expect(() => parseSelection(text)).toThrow(PcrSelectionError);
  });

  it('refuses a selection in another bank than SHA-256', () => {
    const sha1 = Buffer.concat([u32(1), u16(0x0004), Buffer.from([3, 1, 0, 0])]);
    expect(() => readSelection(new TpmReader(sha1, 'test'))).toThrow(/not SHA-256/);
  });
});

describe('attestation keys, quotes and commands', () => {
  it('accept a restricted ECC signing key and name it as the TPM does', () => {
    const ak = SoftwareAttestationKey.create();
    expect(parseAttestationKey(ak.public.tpm2bPublic).name).toEqual(ak.public.name);
  });

  it.each([
    ['a decrypting key', (t: Buffer) => patchU32(t, 6, 0x00070472)],
    ['an unrestricted key', (t: Buffer) => patchU32(t, 6, 0x00040472)],
    ['a key that may leave its TPM', (t: Buffer) => patchU32(t, 6, 0x00050470)],
    ['a SHA-1 name', (t: Buffer) => patchU16(t, 4, 0x0004)],
    ['another curve', (t: Buffer) => patchU16(t, 18, 0x0004)],
    ['another scheme', (t: Buffer) => patchU16(t, 14, 0x0014)],
    ['trailing bytes', (t: Buffer) => tpm2b(Buffer.concat([t.subarray(2), Buffer.from([0])]))],
    ['a truncated area', (t: Buffer) => tpm2b(t.subarray(2, 20))],
    ['a keyed-hash key', (t: Buffer) => patchU16(t, 2, 0x0008)],
    ['the template (no public point)', () => tpm2b(attestationKeyTemplate())],
  ])('refuse %s', (_what, mutate) => {
    const ak = SoftwareAttestationKey.create();
    expect(() => parseAttestationKey(mutate(ak.public.tpm2bPublic))).toThrow(TpmParseError);
  });

  it('refuse an RSA storage key (the EK) as an AK', () => {
    expect(() => parseAttestationKey(SoftwareTpm.create().endorsementKey)).toThrow(/attributes/);
  });

  it('parse a quote; refuse what is not a TPM-made quote, and signatures that are not the AK\'s', () => {
    const ak = SoftwareAttestationKey.create();
    const nonce = randomBytes(32);
    const values = new Map([[0, Buffer.alloc(32)], [13, Buffer.alloc(32, 1)]]);
    const { attest, signature } = ak.quote({ nonce, pcrs: [0, 13], values });
    expect(parseQuote(attest)).toMatchObject({ extraData: nonce, pcrs: [0, 13], clockInfo: { resetCount: 1, safe: true }, firmwareVersion: 0x2019102300163636n });
    expect(verifyQuoteSignature(ak.public, attest, signature)).toBe(true);
    expect(() => parseQuote(Buffer.concat([u32(0xff544346), attest.subarray(4)]))).toThrow(/TPM_GENERATED_VALUE/);
    expect(() => parseQuote(Buffer.concat([attest.subarray(0, 4), u16(0x8014), attest.subarray(6)]))).toThrow(/not a quote/);
    expect(() => parseQuote(attest.subarray(0, attest.length - 1))).toThrow(TpmParseError);
    expect(() => parseQuote(Buffer.concat([attest, Buffer.from([0])]))).toThrow(TpmParseError);
    for (const bad of [Buffer.alloc(0), signature.subarray(0, 10), Buffer.concat([signature, Buffer.from([0])]), Buffer.concat([u16(0x0014), signature.subarray(2)]), Buffer.concat([signature.subarray(0, 2), u16(0x0004), signature.subarray(4)])]) {
      expect(verifyQuoteSignature(ak.public, attest, bad)).toBe(false);
    }
  });

  it('marshal commands with a password session, and turn a response code into a TpmCommandError', () => {
    const command = { name: 'PCR_Event', code: 0x13c, handles: [13], sessions: [PASSWORD], parameters: [tpm2b(Buffer.from('x'))] };
    expect(marshalCommand(command).toString('hex')).toBe('80020000001e0000013c0000000d00000009400000090000010000' + '000178');
    const ok = Buffer.from('80020000001300000000000000000000010000', 'hex');
    expect(unmarshalResponse(command, ok, 'swtpm').parameters.remaining).toBe(0);
    expect(() => unmarshalResponse(command, Buffer.from('80010000000a00000921', 'hex'), 'swtpm')).toThrow(TpmCommandError);
    expect(() => unmarshalResponse(command, Buffer.from('8002000000', 'hex'), 'swtpm')).toThrow(TpmParseError);
  });
});

/** The answer of a board whose hardening PCR is still zero: a quote over PCR 13 and no event log. */
function goodAnswer() {
  const ak = SoftwareAttestationKey.create();
  const q = ak.quote({ nonce: randomBytes(32), pcrs: [13], values: new Map([[13, Buffer.alloc(32)]]) });
  return { quote: q.attest.toString('base64'), signature: q.signature.toString('base64'), pcrs: { 13: '00'.repeat(32) }, eventLog: null, akName: ak.public.name.toString('hex'), tpmMs: 12.5 };
}

describe('the attest answer as the verifier receives it', () => {
  it('reads a well-formed answer', () => {
    expect(parseAttestReply(goodAnswer())).toMatchObject({ pcrs: new Map([[13, Buffer.alloc(32)]]), eventLog: null, tpmMs: 12.5 });
  });

  it.each<[string, (good: ReturnType<typeof goodAnswer>) => unknown]>([
    ['null', () => null],
    ['a list', () => []],
    ['an unknown field', (good) => ({ ...good, verdict: 'pass' })],
    ['a quote that is not base64', (good) => ({ ...good, quote: 'not base64!' })],
    ['an empty signature', (good) => ({ ...good, signature: '' })],
    ['an oversized quote', (good) => ({ ...good, quote: 'A'.repeat(8000) })],
    ['an AK name that is not hex', (good) => ({ ...good, akName: 'xyz' })],
    ['PCRs as a list', (good) => ({ ...good, pcrs: ['00'] })],
    ['a PCR index out of range', (good) => ({ ...good, pcrs: { 24: '00'.repeat(32) } })],
    ['a PCR index with a prefix', (good) => ({ ...good, pcrs: { '013': '00'.repeat(32) } })],
    ['a PCR value of the wrong size', (good) => ({ ...good, pcrs: { 13: '00'.repeat(20) } })],
    ['a malformed event log', (good) => ({ ...good, eventLog: { format: 'x' } })],
    ['a negative TPM time', (good) => ({ ...good, tpmMs: -1 })],
    ['an event log error that is not text', (good) => ({ ...good, eventLogError: 5 })],
  ])('refuses %s with an AttestReplyError', (_what, edit) => {
    expect(() => parseAttestReply(edit(goodAnswer()))).toThrow(AttestReplyError);
  });
});

describe('the verifier\'s own inputs', () => {
  it.each([
    ['not JSON', '{'],
    ['a list', '[]'],
    ['another key', '{"sha1": {}}'],
    ['a PCR beyond the boot PCRs', `{"sha256": {"13": "${HEX64}"}}`],
    ['a short value', '{"sha256": {"0": "abc"}}'],
    ['no values', '{"sha256": {}}'],
  ])('refuses a golden file with %s', (_what, text) => {
    expect(() => parseGolden(text, 'golden.json')).toThrow(/golden file golden.json/);
  });

  it('reads a golden file', () => {
    expect(parseGolden(`{"sha256": {"0": "${HEX64}", "7": "${HEX64.toUpperCase()}"}}`, 'g')).toEqual(new Map([[0, Buffer.from(HEX64, 'hex')], [7, Buffer.from(HEX64, 'hex')]]));
  });

  it('refuses a stored binding that is malformed or another device\'s', () => {
    const good = { deviceId: 'd1', akPublic: 'AAAA', akName: `000b${HEX64}`, ekName: `000b${HEX64}`, boundAt: '2024-01-01T00:00:00.000Z' };
    expect(parseBinding(good, 'd1')).toEqual(good);
    expect(() => parseBinding(good, 'd2')).toThrow(/binding of "d1"/);
    expect(() => parseBinding({ ...good, akName: 'x' }, 'd1')).toThrow(/akName/);
    expect(() => parseBinding([], 'd1')).toThrow(/not a JSON object/);
  });

  it('takes the EK as base64 or as `tpm info --json`, and refuses anything else', () => {
    const ek = SoftwareTpm.create().endorsementKey;
    expect(parseEndorsementKeyText(`${ek.toString('base64')}\n`, 'ek')).toEqual(ek);
    expect(parseEndorsementKeyText(JSON.stringify({ registrationId: 'r', endorsementKey: ek.toString('base64') }), 'ek')).toEqual(ek);
    for (const text of ['', '{', '{"endorsementKey": 5}', 'not-base64!'.repeat(20), 'QUJD']) {
      expect(() => parseEndorsementKeyText(text, 'ek')).toThrow(/ek: /);
    }
  });
});

function patchU16(tpm2bPublic: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(tpm2bPublic);
  copy.writeUInt16BE(value, offset);
  return copy;
}

function patchU32(tpm2bPublic: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(tpm2bPublic);
  copy.writeUInt32BE(value, offset);
  return copy;
}
