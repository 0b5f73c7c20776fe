import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_REPLY_BYTES } from '../../agent/attestation/attest-reply.js';
import { AK_HANDLE } from '../../agent/attestation/attestation-key.js';
import type { EventLog } from '../../agent/attestation/event-log.js';
import { marshalSelection, readSelection } from '../../agent/attestation/pcr-selection.js';
import { attestationAccess, type AttestationReport } from '../../agent/commands/attestation-access.js';
import { CommandFailure } from '../../agent/commands/command.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import type { TpmTransport } from '../../agent/tpm/transport.js';
import { TpmReader, tpm2b, u16, u32 } from '../../agent/tpm/wire/tpm-bytes.js';
import { logOf, SoftwareAttestationKey } from '../support/software-quote.js';
import { stringMatching } from '../support/matchers.js';

/**
 * attestationAccess over a TPM that answers in software: the few commands attestation sends
 * (ReadPublic, CreatePrimary, EvictControl, FlushContext, Quote, PCR_Read and the
 * ActivateCredential sequence), with an ECDSA key standing in for the AK. It shows what the
 * access layer does with the TPM's answers and the root side's event log; that a real TPM
 * gives those answers is test/integration/attestation-tpm.test.ts's business.
 */
const CC = { EvictControl: 0x120, CreatePrimary: 0x131, ActivateCredential: 0x147, PolicySecret: 0x151, Quote: 0x158, FlushContext: 0x165, ReadPublic: 0x173, StartAuthSession: 0x176, PCR_Read: 0x17e };
const NAMES = Object.fromEntries(Object.entries(CC).map(([name, code]) => [code, name]));
const TPM_RC_HANDLE_1 = 0x18b;
const TPM_RC_FAILURE = 0x101;

class SoftwareTpm implements TpmTransport {
  readonly name = 'software TPM';
  readonly spec = { kind: 'swtpm', host: '127.0.0.1', port: 2321 } as const;
  /** The names of the commands it answered, in order. */
  readonly sent: string[] = [];
  ak: SoftwareAttestationKey | undefined;
  readonly pcrs = new Map<number, Buffer>();
  /** Called after each quote, with the number of quotes made so far: what the root side does meanwhile. */
  afterQuote: (count: number) => void = () => undefined;
  /** Response codes to answer instead, by command name. */
  readonly failing = new Map<string, number>();
  private quotes = 0;

  constructor(private readonly delayMs = 0) {}

  async transmit(command: Buffer): Promise<Buffer> {
    if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const code = command.readUInt32BE(6);
    const name = NAMES[code] ?? `0x${code.toString(16)}`;
    this.sent.push(name);
    const failure = this.failing.get(name);
    if (failure !== undefined) return respond(failure);
    switch (code) {
      case CC.ReadPublic:
        if (!this.ak) return respond(TPM_RC_HANDLE_1);
        return respond(0, this.ak.public.tpm2bPublic, tpm2b(this.ak.public.name), tpm2b(this.ak.public.name));
      case CC.CreatePrimary:
        this.ak = SoftwareAttestationKey.create();
        return respond(0, u32(0x80000001), this.ak.public.tpm2bPublic, tpm2b(), tpm2b(), Buffer.alloc(6), tpm2b(), tpm2b(this.ak.public.name));
      case CC.StartAuthSession:
        return respond(0, u32(0x03000000), tpm2b(Buffer.alloc(32)));
      case CC.ActivateCredential:
        // The secret this TPM "recovers": its parameters (the blob, then the secret) reversed, so a test sees which bytes went in.
        return respond(0, tpm2b(Buffer.from(command.subarray(22 + command.readUInt32BE(18))).reverse()));
      case CC.Quote: {
        const r = new TpmReader(command.subarray(14 + 4 + command.readUInt32BE(14)), 'Quote');
        const nonce = Buffer.from(r.sized('qualifyingData'));
        r.u16('scheme');
        const selection = readSelection(r);
        const made = this.ak!.quote({ nonce, pcrs: selection, values: this.values(selection) });
        this.afterQuote(++this.quotes);
        return respond(0, tpm2b(made.attest), made.signature);
      }
      case CC.PCR_Read: {
        const selection = readSelection(new TpmReader(command.subarray(10), 'PCR_Read'));
        const values = this.values(selection);
        return respond(0, u32(7), marshalSelection(selection), u32(selection.length), ...selection.map((pcr) => tpm2b(values.get(pcr)!)));
      }
      default:
        return respond(0);
    }
  }

  lend<T>(use: () => Promise<T>): Promise<T> {
    return use();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** PCR values: what was set, or the all-zero value of a PCR nothing extended. */
  values(pcrs: readonly number[]): Map<number, Buffer> {
    return new Map(pcrs.map((pcr) => [pcr, this.pcrs.get(pcr) ?? Buffer.alloc(32)]));
  }
}

function respond(code: number, ...parameters: Buffer[]): Promise<Buffer> {
  const body = Buffer.concat(parameters);
  return Promise.resolve(Buffer.concat([u16(0x8001), u32(10 + body.length), u32(code), body]));
}

const NOW = new Date('2026-12-01T12:00:00.000Z');
const dirs: string[] = [];

/** An access over a software TPM (with an AK unless told otherwise), an event log path in a fresh directory, and the reports it made. */
function setup(options: { ak?: boolean; delayMs?: number; realClock?: boolean } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-access-'));
  dirs.push(dir);
  const tpm = new SoftwareTpm(options.delayMs);
  if (options.ak ?? true) tpm.ak = SoftwareAttestationKey.create();
  const client = new TpmClient(tpm);
  const changes: AttestationReport[] = [];
  const eventLogPath = path.join(dir, 'pcr-events.json');
  const access = attestationAccess({
    tpm: () => client, pcr: 13, eventLogPath, onChange: (report) => changes.push(report), ...(options.realClock ? {} : { now: () => NOW }),
  });
  return { access, tpm, changes, eventLogPath, dir };
}

const writeLog = (file: string, log: EventLog) => writeFileSync(file, JSON.stringify(log));
const nonce = Buffer.alloc(32, 9);

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the attestation key through the access layer', () => {
  it('creates the AK at its persistent handle on first use, and says it did', async () => {
    const { access, tpm, changes } = setup({ ak: false });
    const key = await access.key();
    expect(tpm.sent).toEqual(['ReadPublic', 'CreatePrimary', 'EvictControl', 'FlushContext']);
    const akName = tpm.ak!.public.name.toString('hex');
    expect(key).toEqual({ akPublic: tpm.ak!.public.tpm2bPublic.toString('base64'), akName, handle: '0x81010100', created: true });
    expect(changes).toEqual([{ pcr: 13, lastQuoteAt: null, akName }]);
  });

  it('answers the AK that is there without creating another', async () => {
    const { access, tpm, changes } = setup();
    const key = await access.key();
    expect(tpm.sent).toEqual(['ReadPublic']);
    expect(key).toMatchObject({ akName: tpm.ak!.public.name.toString('hex'), handle: `0x${AK_HANDLE.toString(16)}`, created: false });
    expect(changes).toHaveLength(1);
  });

  it('activates a credential with the decoded blob and secret, and answers what the TPM recovered', async () => {
    const { access, tpm } = setup();
    const secret = await access.activate(Buffer.from([1, 2, 3]), Buffer.from([4, 5]));
    expect(secret).toEqual(Buffer.from([5, 4, 3, 2, 1]));
    expect(tpm.sent).toEqual(['ReadPublic', 'StartAuthSession', 'PolicySecret', 'ActivateCredential']);
  });
});

describe('the twin\'s attestation report', () => {
  it('reads the AK\'s name from the TPM once, then answers what it holds', async () => {
    const { access, tpm } = setup();
    const akName = tpm.ak!.public.name.toString('hex');
    expect(await access.report()).toEqual({ pcr: 13, lastQuoteAt: null, akName });
    expect(await access.report()).toEqual({ pcr: 13, lastQuoteAt: null, akName });
    expect(tpm.sent).toEqual(['ReadPublic']);
  });

  it('reports no AK when the TPM holds none, and asks again next time', async () => {
    const { access, tpm } = setup({ ak: false });
    expect(await access.report()).toEqual({ pcr: 13, lastQuoteAt: null, akName: null });
    tpm.ak = SoftwareAttestationKey.create();
    expect(await access.report()).toEqual({ pcr: 13, lastQuoteAt: null, akName: tpm.ak.public.name.toString('hex') });
    expect(tpm.sent).toEqual(['ReadPublic', 'ReadPublic']);
  });

  it('reports no AK when the TPM fails the read, instead of failing', async () => {
    const { access, tpm } = setup();
    tpm.failing.set('ReadPublic', TPM_RC_FAILURE);
    expect(await access.report()).toEqual({ pcr: 13, lastQuoteAt: null, akName: null });
  });

  it('reports the time of the last quote and the AK that made it', async () => {
    const { access, tpm } = setup();
    await access.quote(nonce, [13]);
    tpm.sent.length = 0;
    expect(await access.report()).toEqual({ pcr: 13, lastQuoteAt: NOW.toISOString(), akName: tpm.ak!.public.name.toString('hex') });
    expect(tpm.sent).toEqual([]);
  });
});

describe('a quote through the access layer', () => {
  it('quotes the boot PCRs and the hardening PCR unless told otherwise, and answers their values, the log and the AK', async () => {
    const { access, tpm, changes, eventLogPath } = setup();
    const { log, pcr } = logOf(['profile strict', 'profile baseline']);
    tpm.pcrs.set(13, pcr);
    tpm.pcrs.set(0, Buffer.alloc(32, 0xaa));
    writeLog(eventLogPath, log);
    const reply = await access.quote(nonce, undefined);
    const akName = tpm.ak!.public.name.toString('hex');
    expect(Object.keys(reply.pcrs)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '13']);
    expect(reply.pcrs['0']).toBe('aa'.repeat(32));
    expect(reply.pcrs['1']).toBe('00'.repeat(32));
    expect(reply.pcrs['13']).toBe(pcr.toString('hex'));
    expect(reply).toEqual({
      quote: expect.any(String) as unknown, signature: expect.any(String) as unknown, pcrs: reply.pcrs, eventLog: log, akName, tpmMs: reply.tpmMs,
    });
    const attest = Buffer.from(reply.quote, 'base64');
    expect(attest.includes(nonce)).toBe(true);
    expect(Buffer.from(reply.signature, 'base64').readUInt16BE(0)).toBe(0x0018);
    expect(tpm.sent).toEqual(['ReadPublic', 'Quote', 'PCR_Read']);
    expect(changes).toEqual([{ pcr: 13, lastQuoteAt: NOW.toISOString(), akName }]);
  });

  it('quotes the PCRs it is given, and only those', async () => {
    const { access } = setup();
    const reply = await access.quote(nonce, [2, 13, 16]);
    expect(Object.keys(reply.pcrs)).toEqual(['2', '13', '16']);
    expect(reply.eventLog).toBeNull();
    expect(reply).not.toHaveProperty('eventLogError');
  });

  it('counts the time spent in the TPM, to the hundredth of a millisecond', async () => {
    const { access } = setup({ delayMs: 20 });
    const { tpmMs } = await access.quote(nonce, [13]);
    expect(tpmMs).toBeGreaterThanOrEqual(55);
    expect(tpmMs).toBeLessThan(5_000);
    expect(Math.round(tpmMs! * 100) / 100).toBe(tpmMs);
  });

  it('stamps the last quote with the clock of the moment when it is given none', async () => {
    const { access, changes } = setup({ realClock: true });
    const before = Date.now();
    await access.quote(nonce, [13]);
    expect(Date.parse(changes[0]!.lastQuoteAt!)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(changes[0]!.lastQuoteAt!)).toBeLessThanOrEqual(Date.now());
  });

  it('refuses with 409 before quoting when there is no AK yet, and reports nothing', async () => {
    const { access, tpm, changes } = setup({ ak: false });
    const err = await access.quote(nonce, undefined).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailure);
    expect(err).toMatchObject({ status: 409, message: 'there is no attestation key yet: call attestationKey (and have it bound) first' });
    expect(tpm.sent).toEqual(['ReadPublic']);
    expect(changes).toEqual([]);
    expect(await access.report()).toMatchObject({ lastQuoteAt: null });
  });

  it('quotes again when the root side had extended the PCR but not yet written the log', async () => {
    const { access, tpm, eventLogPath } = setup();
    const before = logOf(['profile strict']);
    const after = logOf(['profile strict', 'profile baseline']);
    writeLog(eventLogPath, before.log);
    tpm.pcrs.set(13, after.pcr);
    // Written once the first quote's log was read (a fixed 30 ms timer lost that race under load).
    tpm.afterQuote = (count) => { if (count === 2) writeLog(eventLogPath, after.log); };
    const started = performance.now();
    const reply = await access.quote(nonce, [13]);
    expect(reply.eventLog).toEqual(after.log);
    expect(tpm.sent).toEqual(['ReadPublic', 'Quote', 'PCR_Read', 'Quote', 'PCR_Read']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(95);
  });

  it('gives up after three quotes of a log that never matches, and answers the last for the verifier to judge', async () => {
    const { access, tpm, eventLogPath } = setup();
    const { log } = logOf(['profile strict']);
    writeLog(eventLogPath, log);
    tpm.pcrs.set(13, Buffer.alloc(32, 0xee));
    const reply = await access.quote(nonce, [13]);
    expect(reply.eventLog).toEqual(log);
    expect(reply.pcrs['13']).toBe('ee'.repeat(32));
    expect(tpm.sent.filter((c) => c === 'Quote')).toHaveLength(3);
  });

  it('does not wait for a log of a PCR the quote does not cover', async () => {
    const { access, tpm, eventLogPath } = setup();
    writeLog(eventLogPath, logOf(['profile strict'], { pcr: 14 }).log);
    await access.quote(nonce, [0, 13]);
    expect(tpm.sent.filter((c) => c === 'Quote')).toHaveLength(1);
  });

  it('answers a log it cannot parse as an error beside the quote, not as a failure', async () => {
    const { access, eventLogPath } = setup();
    writeFileSync(eventLogPath, '{"format": "iot-agent-pcr');
    const reply = await access.quote(nonce, [13]);
    expect(reply.eventLog).toBeNull();
    expect(reply.eventLogError).toBe(`${eventLogPath}: event log: not JSON`);
  });

  it('answers a log it cannot read as an error beside the quote, naming the file', async () => {
    const { access, eventLogPath } = setup();
    mkdirSync(eventLogPath);
    const reply = await access.quote(nonce, [13]);
    expect(reply.eventLog).toBeNull();
    expect(reply.eventLogError).toEqual(stringMatching(new RegExp(`^cannot read ${eventLogPath}: .*EISDIR`)));
  });

  it('refuses with 413 a quote whose event log would not fit in a direct method, and records no quote', async () => {
    const { access, tpm, changes, eventLogPath } = setup();
    const { log, pcr } = logOf(Array.from({ length: 130 }, (_, i) => `${i}:${'x'.repeat(1000)}`));
    writeLog(eventLogPath, log);
    tpm.pcrs.set(13, pcr);
    const err = await access.quote(nonce, [13]).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailure);
    const { status, message } = err as CommandFailure;
    expect(status).toBe(413);
    const size = Number(/take (\d+) bytes/.exec(message)?.[1]);
    expect(size).toBeGreaterThan(MAX_REPLY_BYTES);
    expect(message).toBe(`the quote and its event log (130 events) take ${size} bytes, more than a direct method may carry`);
    expect(changes).toEqual([]);
    // Just under the limit is answered.
    const fits = logOf(Array.from({ length: 90 }, (_, i) => `${i}:${'x'.repeat(1000)}`));
    writeLog(eventLogPath, fits.log);
    tpm.pcrs.set(13, fits.pcr);
    expect((await access.quote(nonce, [13])).eventLog?.events).toHaveLength(90);
  });

  it('passes on the TPM\'s failure of the quote, and reports nothing', async () => {
    const { access, tpm, changes } = setup();
    tpm.failing.set('Quote', TPM_RC_FAILURE);
    await expect(access.quote(nonce, [13])).rejects.toThrow(/TPM2_Quote failed on software TPM/);
    expect(changes).toEqual([]);
  });
});
