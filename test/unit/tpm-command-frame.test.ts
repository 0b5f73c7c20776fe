import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { endorsementKeyTemplate } from '../../agent/tpm/key-templates.js';
import { FrameError, frameCommand, parseResponse } from '../../agent/tpm/command-frame.js';
import {
  Endorsement, GetRandomResponse, NullPwSession, Owner, ReadPublicResponse, Tpm, TPM_CC, TPM_HANDLE, TPM2_GetRandom_REQUEST,
  TPM2_ReadPublic_REQUEST, TPMS_SENSITIVE_CREATE,
} from '../../agent/tpm/tss-lib.js';

// Requests tss.js has no re-export for in the agent: taken from tss.js directly, for the comparison only.
const tss = createRequire(import.meta.url)('tss.js') as typeof import('tss.js');

/** The bytes tss.js's own path sends for a command, from a device that records them. */
function tssBytes(send: (tpm: Tpm) => void): Buffer {
  let sent: Buffer | undefined;
  const tpm = new Tpm(false);
  (tpm as unknown as { device: unknown }).device = {
    connect: (done: (err: null) => void) => done(null),
    dispatchCommand: (command: Buffer) => { sent = Buffer.from(command); },
    close: () => undefined,
  };
  send(tpm);
  return sent!;
}

describe('the agent\'s own TPM command framing', () => {
  it('frames TPM2_GetRandom as the spec\'s example bytes', () => {
    expect(frameCommand(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(8)).toString('hex')).toBe('80010000000c0000017b0008');
  });

  it('frames commands byte for byte as tss.js does, empty-password sessions included', () => {
    const handle = new TPM_HANDLE(0x81010001);
    expect(frameCommand(TPM_CC.ReadPublic, new TPM2_ReadPublic_REQUEST(handle)))
      .toEqual(tssBytes((tpm) => tpm.ReadPublic(handle, () => undefined)));
    const template = endorsementKeyTemplate();
    expect(frameCommand(TPM_CC.CreatePrimary, new tss.TPM2_CreatePrimary_REQUEST(Endorsement, new TPMS_SENSITIVE_CREATE(), template, Buffer.alloc(0), [])))
      .toEqual(tssBytes((tpm) => tpm.withSession(NullPwSession).CreatePrimary(Endorsement, new TPMS_SENSITIVE_CREATE(), template, Buffer.alloc(0), [], () => undefined)));
    const persistent = new TPM_HANDLE(0x81000001);
    const transient = new TPM_HANDLE(0x80000000);
    expect(frameCommand(TPM_CC.EvictControl, new tss.TPM2_EvictControl_REQUEST(Owner, transient, persistent)))
      .toEqual(tssBytes((tpm) => tpm.withSession(NullPwSession).EvictControl(Owner, transient, persistent, () => undefined)));
  });

  it('gives a fresh buffer for each command, never its scratch space', () => {
    const first = frameCommand(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(8));
    frameCommand(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(32));
    expect(first.toString('hex')).toBe('80010000000c0000017b0008');
  });

  it('refuses a command larger than a TPM takes, and frames the next one whole', () => {
    const huge = new tss.TPM2_Hash_REQUEST(Buffer.alloc(5000), 0x0b, new TPM_HANDLE(0x40000007));
    expect(() => frameCommand(TPM_CC.Hash, huge)).toThrow(FrameError);
    expect(frameCommand(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(8)).toString('hex')).toBe('80010000000c0000017b0008');
  });

  it('reads a response\'s code, and its parameters (and handle) when it succeeded', () => {
    expect(parseResponse(Buffer.from('80010000000a0000018b', 'hex'), GetRandomResponse)).toEqual({ responseCode: 0x18b });
    const random = parseResponse(Buffer.from('80010000001000000000000401020304', 'hex'), GetRandomResponse);
    expect(random.responseCode).toBe(0);
    expect(random.result?.randomBytes).toEqual(Buffer.from([1, 2, 3, 4]));
  });

  it('refuses malformed responses: shorter than a header, or parameters of another size than announced', () => {
    expect(() => parseResponse(Buffer.from('8001000000', 'hex'), GetRandomResponse)).toThrow(FrameError);
    expect(() => parseResponse(Buffer.from('800100000010000000000008010203', 'hex'), GetRandomResponse)).toThrow(FrameError);
    // tag SESSIONS: the parameter size field says 9, the parameters take 6
    expect(() => parseResponse(Buffer.from('80020000001400000000000000090004010203040000', 'hex'), GetRandomResponse)).toThrow(FrameError);
    expect(() => parseResponse(Buffer.from('80010000000a00000000', 'hex'), ReadPublicResponse)).toThrow(FrameError);
    expect(parseResponse(Buffer.from('80010000001000000000000401020304', 'hex'), GetRandomResponse).result?.randomBytes).toEqual(Buffer.from([1, 2, 3, 4]));
  });

  it('frames a missing handle as TPM_RH_NULL, as tss.js does', () => {
    expect(frameCommand(TPM_CC.ReadPublic, new TPM2_ReadPublic_REQUEST()).toString('hex')).toBe('80010000000e00000173' + '40000007');
    // An unbound, unsalted session: both handles null.
    const session = () => new tss.TPM2_StartAuthSession_REQUEST(null as never, null as never, Buffer.alloc(16, 1), Buffer.alloc(0), 1, new tss.TPMT_SYM_DEF(), 0x0b);
    const framed = frameCommand(TPM_CC.StartAuthSession, session());
    expect(framed.subarray(10, 18).toString('hex')).toBe('40000007' + '40000007');
    expect(framed).toEqual(tssBytes((tpm) => tpm.StartAuthSession(null as never, null as never, Buffer.alloc(16, 1), Buffer.alloc(0), 1, new tss.TPMT_SYM_DEF(), 0x0b, () => undefined)));
  });

  it('gives each authorized handle its own empty-password session, as tss.js does', () => {
    const blob = () => new tss.TPMS_ID_OBJECT(Buffer.from('ab', 'hex'), Buffer.from('cd', 'hex'));
    const request = new tss.TPM2_ActivateCredential_REQUEST(new TPM_HANDLE(0x80000001), new TPM_HANDLE(0x81010001), blob(), Buffer.from('ef', 'hex'));
    const framed = frameCommand(TPM_CC.ActivateCredential, request);
    expect(framed.subarray(0, 40).toString('hex')).toBe('8002' + framed.readUInt32BE(2).toString(16).padStart(8, '0') + '00000147' + '80000001' + '81010001'
      + '00000012' + '400000090000010000'.repeat(2));
    expect(framed).toEqual(tssBytes((tpm) => tpm.withSessions(NullPwSession, NullPwSession).ActivateCredential(
      new TPM_HANDLE(0x80000001), new TPM_HANDLE(0x81010001), blob(), Buffer.from('ef', 'hex'), () => undefined)));
  });

  it('says which command does not fit', () => {
    const huge = new tss.TPM2_Hash_REQUEST(Buffer.alloc(5000), 0x0b, new TPM_HANDLE(0x40000007));
    expect(() => frameCommand(TPM_CC.Hash, huge)).toThrow('command 0x17d does not fit in 4096 bytes');
  });

  it('says how a response is malformed', () => {
    expect(() => parseResponse(Buffer.from('8001000000000000', 'hex'))).toThrow('response of 8 bytes is shorter than its header');
    expect(() => parseResponse(Buffer.from('800100000010000000000008010203', 'hex'), GetRandomResponse))
      .toThrow('response parameters of 2 bytes where the TPM announced 5');
    expect(() => parseResponse(Buffer.from('80020000001400000000000000090004010203040000', 'hex'), GetRandomResponse))
      .toThrow('response parameters of 6 bytes where the TPM announced 9');
  });

  it('reads only the code of a response whose type it is not told, or that failed', () => {
    expect(parseResponse(Buffer.from('80010000001000000000000401020304', 'hex'))).toEqual({ responseCode: 0 });
    expect(parseResponse(Buffer.from('80010000000a00000921', 'hex'))).toEqual({ responseCode: 0x921 });
  });

  it('reads the handle a response starts with, and the parameters after it, with and without sessions', () => {
    // TPM2_Load's answer: objectHandle, then name (TPM2B); with sessions, parameterSize between the two.
    const plain = parseResponse(Buffer.from('8001' + '00000012' + '00000000' + '80000002' + '0002abcd', 'hex'), tss.LoadResponse);
    expect((plain.result?.handle.handle ?? 0) >>> 0).toBe(0x80000002);
    expect(plain.result?.name).toEqual(Buffer.from('abcd', 'hex'));
    const sessions = parseResponse(Buffer.from('8002' + '0000001b' + '00000000' + '80000003' + '00000004' + '0002abcd' + '0000010000', 'hex'), tss.LoadResponse);
    expect((sessions.result?.handle.handle ?? 0) >>> 0).toBe(0x80000003);
    expect(sessions.result?.name).toEqual(Buffer.from('abcd', 'hex'));
  });
});
