import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AK_HANDLE, parseAttestationKey } from '../../agent/attestation/attestation-key.js';
import { parseEventLogText, replayLog, type EventLog } from '../../agent/attestation/event-log.js';
import { recordMeasurement, type TpmSource } from '../../agent/attestation/measurement.js';
import { defaultSelection } from '../../agent/attestation/pcr-selection.js';
import { parseQuote, verifyQuoteSignature } from '../../agent/attestation/quote.js';
import { activateAttestationKey, ensureAttestationKey, quotePcrs } from '../../agent/attestation/tpm-attestation.js';
import { pcrEvent, pcrRead, readClock } from '../../agent/attestation/tpm-commands.js';
import { attestationAccess } from '../../agent/commands/attestation-access.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { makeCredential } from '../../agent/tpm/wire/credential.js';
import { parseRsaPublic } from '../../agent/tpm/wire/tpm-public.js';
import { stringMatching } from '../support/matchers.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

const run = promisify(execFile);
const PCR = 13;

/** tpm2-tools, an independent TPM 2.0 implementation, against the same swtpm (one connection at a time: ours is closed first). */
async function tpm2(tool: string, args: string[]): Promise<string> {
  try {
    return (await run(tool, args, { timeout: 20_000 })).stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${tool} is not installed: run scripts/setup.sh (Debian package tpm2-tools)`, { cause: err });
    throw err;
  }
}

describe('attestation against a real TPM (swtpm), cross-checked with tpm2-tools', () => {
  let swtpm: SwtpmInstance;
  let other: SwtpmInstance;
  let dir: string;
  const tcti = () => `swtpm:host=${swtpm.host},port=${swtpm.port}`;
  const withTpm = async <T>(use: (client: TpmClient) => Promise<T>, instance = swtpm): Promise<T> => {
    const client = clientFor(instance.transport);
    try {
      return await use(client);
    } finally {
      await client.close();
    }
  };
  const source = (instance = swtpm): TpmSource => ({ open: () => Promise.resolve(clientFor(instance.transport).transport), release: (t) => t.close() });

  beforeAll(async () => {
    [swtpm, other] = await Promise.all([SwtpmInstance.start(), SwtpmInstance.start()]);
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-attest-tpm-'));
    await withTpm((c) => ensureIdentity(c));
    await withTpm((c) => ensureIdentity(c), other);
  });
  afterAll(async () => {
    await Promise.all([swtpm?.stop(), other?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the AK once, persisted at 0x81010100: a restricted ECC signing key, as tpm2_readpublic reads it', async () => {
    const first = await withTpm((c) => ensureAttestationKey(c.transport));
    const second = await withTpm((c) => ensureAttestationKey(c.transport));
    expect(first.created).toBe(true);
    expect(second).toMatchObject({ created: false, name: first.name });
    expect(parseAttestationKey(first.tpm2bPublic)).toMatchObject({ algorithm: 'ecdsa-p256-sha256', name: first.name });
    const out = await tpm2('tpm2_readpublic', ['-T', tcti(), '-c', `0x${AK_HANDLE.toString(16)}`]);
    expect(out).toContain(`name: ${first.name.toString('hex')}`);
    const flags = /attributes:\s+value: ([a-z|]+)\s+raw: 0x50472/.exec(out)?.[1]?.split('|');
    expect(flags?.sort()).toEqual(['fixedparent', 'fixedtpm', 'noda', 'restricted', 'sensitivedataorigin', 'sign', 'userwithauth']);
  });

  it('quotes with the nonce: tpm2_checkquote verifies the signature and nonce, tpm2_print and tpm2_pcrread agree on the PCR digest', async () => {
    const nonce = randomBytes(32);
    const selection = defaultSelection(PCR);
    const { ak, quote } = await withTpm(async (c) => ({ ak: await ensureAttestationKey(c.transport), quote: await quotePcrs(c.transport, nonce, selection) }));
    const key = parseAttestationKey(ak.tpm2bPublic);
    expect(verifyQuoteSignature(key, quote.attest, quote.signature)).toBe(true);
    const parsed = parseQuote(quote.attest);
    expect(parsed).toMatchObject({ extraData: nonce, pcrs: selection, clockInfo: { resetCount: 1 } });
    const files = { ak: path.join(dir, 'ak.pem'), msg: path.join(dir, 'quote.msg'), sig: path.join(dir, 'quote.sig') };
    writeFileSync(files.ak, key.key.export({ format: 'pem', type: 'spki' }));
    writeFileSync(files.msg, quote.attest);
    writeFileSync(files.sig, quote.signature);
    const check = (qualification: Buffer) => tpm2('tpm2_checkquote', ['-u', files.ak, '-m', files.msg, '-s', files.sig, '-g', 'sha256', '-q', qualification.toString('hex')]);
    await expect(check(nonce)).resolves.toMatch(/^sig: [0-9a-f]+/);
    await expect(check(randomBytes(32))).rejects.toThrow(); // not a rubber stamp
    // An independent reading of the quoted structure, and of the PCRs themselves.
    const printed = await tpm2('tpm2_print', ['-t', 'TPMS_ATTEST', files.msg]);
    expect(printed).toContain(`pcrDigest: ${parsed.pcrDigest.toString('hex')}`);
    expect(printed).toContain(`extraData: ${nonce.toString('hex')}`);
    const read = await tpm2('tpm2_pcrread', ['-T', tcti(), `sha256:${selection.join(',')}`]);
    const values = selection.map((pcr) => Buffer.from(new RegExp(`\\b${pcr}\\s*: 0x([0-9A-F]{64})`).exec(read)![1]!, 'hex'));
    expect(values).toEqual(selection.map((pcr) => quote.pcrValues.get(pcr)));
    expect(createHash('sha256').update(Buffer.concat(values)).digest()).toEqual(parsed.pcrDigest);
  });

  it('activates a credential made in software for the AK and the EK; refuses one for another key or another EK without resetting the TPM', async () => {
    const ek = await withTpm(async (c) => (await ensureIdentity(c)).endorsementKey);
    const otherEk = await withTpm(async (c) => (await ensureIdentity(c)).endorsementKey, other);
    const ak = await withTpm((c) => ensureAttestationKey(c.transport));
    const otherAk = await withTpm((c) => ensureAttestationKey(c.transport), other);
    const secret = randomBytes(32);
    const good = makeCredential(parseRsaPublic(ek), ak.name, secret);
    expect(await withTpm((c) => activateAttestationKey(c.transport, good.idObject, good.encryptedSecret))).toEqual(secret);

    const before = await withTpm(async (c) => ({ clock: await readClock(c.transport), pcrs: await pcrRead(c.transport, [0, PCR]) }));
    const forAnotherKey = makeCredential(parseRsaPublic(ek), otherAk.name, secret);
    await expect(withTpm((c) => activateAttestationKey(c.transport, forAnotherKey.idObject, forAnotherKey.encryptedSecret))).rejects.toThrow(/TPM_RC_INTEGRITY/);
    // libtpms answers TPM_RC_FAILURE to the failed RSA decryption; the transport must not take that for an uninitialised swtpm.
    const forAnotherEk = makeCredential(parseRsaPublic(otherEk), ak.name, secret);
    await expect(withTpm((c) => activateAttestationKey(c.transport, forAnotherEk.idObject, forAnotherEk.encryptedSecret))).rejects.toThrow(/TPM2_ActivateCredential failed/);
    const after = await withTpm(async (c) => ({ clock: await readClock(c.transport), pcrs: await pcrRead(c.transport, [0, PCR]) }));
    expect(after.clock.resetCount).toBe(before.clock.resetCount);
    expect(after.pcrs).toEqual(before.pcrs);
  });

  it('answers attest with the log that matches its quote, when the log is written just after the PCR was extended', async () => {
    const logFile = path.join(dir, 'race-events.json');
    const RACE_PCR = 15; // its own PCR: the log tests below start from a zero PCR 13
    rmSync(logFile, { force: true });
    await recordMeasurement({ logPath: logFile, pcr: RACE_PCR, data: '{"race":1}', bootId: 'b', now: new Date(), tpm: source() });
    const complete = readFileSync(logFile, 'utf8');
    const client = clientFor(swtpm.transport);
    try {
      // As the root side leaves it for a moment: the PCR extended, the log not yet written.
      await pcrEvent(client.transport, RACE_PCR, Buffer.from('{"race":2}'));
      const withSecond = parseEventLogText(complete);
      const second = { seq: withSecond.events.length + 1, at: new Date().toISOString(), extended: true as const, sha256: createHash('sha256').update('{"race":2}').digest('hex'), data: '{"race":2}' };
      const access = attestationAccess({ tpm: () => client, pcr: RACE_PCR, eventLogPath: logFile, onChange: () => undefined });
      await access.key();
      setTimeout(() => writeFileSync(logFile, JSON.stringify({ ...withSecond, events: [...withSecond.events, second] })), 30);
      const reply = await access.quote(randomBytes(32), undefined);
      expect(reply.eventLog?.events.map((e) => e.data)).toEqual([...withSecond.events.map((e) => e.data), '{"race":2}']);
      expect(replayLog(reply.eventLog!).pcr.toString('hex')).toBe(reply.pcrs[String(RACE_PCR)]);
    } finally {
      await client.close();
    }
  });

  describe('measurements and their event log', () => {
    const logPath = () => path.join(dir, 'pcr-events.json');
    const readLog = (): EventLog => parseEventLogText(readFileSync(logPath(), 'utf8'));
    const measure = (data: string, extra: Partial<Parameters<typeof recordMeasurement>[0]> = {}) =>
      recordMeasurement({ logPath: logPath(), pcr: PCR, data, bootId: 'boot-1', now: new Date(), tpm: source(), ...extra });

    it('extends every active bank with TPM2_PCR_Event; tpm2_pcrread reads what replaying the log gives', async () => {
      rmSync(logPath(), { force: true });
      const start = await withTpm((c) => pcrRead(c.transport, [PCR]));
      expect(start.get(PCR)).toEqual(Buffer.alloc(32));
      expect(await measure('{"first":1}')).toEqual({ outcome: 'extended', seq: 1 });
      expect(await measure('{"second":2}')).toEqual({ outcome: 'extended', seq: 2 });
      const log = readLog();
      expect(log).toMatchObject({ pcr: PCR, bootId: 'boot-1', tpmResetCount: 1, events: [{ seq: 1, extended: true }, { seq: 2, extended: true }] });
      const out = await tpm2('tpm2_pcrread', ['-T', tcti(), `sha256:${PCR}+sha1:${PCR}`]);
      expect(out).toContain(`${PCR}: 0x${replayLog(log).pcr.toString('hex').toUpperCase()}`);
      const sha1 = (b: Buffer | string) => createHash('sha1').update(b).digest();
      const sha1Bank = sha1(Buffer.concat([sha1(Buffer.concat([Buffer.alloc(20), sha1('{"first":1}')])), sha1('{"second":2}')]));
      expect(out).toContain(`${PCR}: 0x${sha1Bank.toString('hex').toUpperCase()}`);
    });

    it('does not extend a state the log already ends with, when asked not to', async () => {
      const before = readLog().events.length;
      expect(await measure('{"second":2}', { alreadyRecorded: (last) => last.data === '{"second":2}' })).toEqual({ outcome: 'unchanged' });
      expect(readLog().events).toHaveLength(before);
    });

    it('records a gap, extending nothing, when the TPM cannot be reached; the next measurement keeps it', async () => {
      const pcrBefore = await withTpm((c) => pcrRead(c.transport, [PCR]));
      const unreachable: TpmSource = { open: () => Promise.resolve(clientFor('swtpm:host=127.0.0.1,port=9', { commandTimeoutMs: 2_000 }).transport), release: (t) => t.close() };
      const gap = await measure('{"third":3}', { tpm: unreachable });
      expect(gap).toMatchObject({ outcome: 'gap', reason: stringMatching(/^TPM unavailable: .*ECONNREFUSED|connect/) });
      expect(await withTpm((c) => pcrRead(c.transport, [PCR]))).toEqual(pcrBefore);
      await measure('{"fourth":4}');
      const log = readLog();
      expect(log.events.slice(-2)).toMatchObject([{ extended: false, data: '{"third":3}' }, { extended: true, data: '{"fourth":4}' }]);
      expect(replayLog(log).pcr).toEqual((await withTpm((c) => pcrRead(c.transport, [PCR]))).get(PCR));
    });

    it('keeps an unreadable log aside and notes it as a gap in the new one', async () => {
      writeFileSync(logPath(), '{"format": "iot-agent-pcr-events/1", "events": [');
      await measure('{"fifth":5}');
      const aside = readdirSync(dir).filter((f) => f.startsWith('pcr-events.json.unreadable-'));
      expect(aside).toHaveLength(1);
      const log = readLog();
      expect(log.events[0]).toMatchObject({ extended: false, reason: stringMatching(/previous event log was unreadable/) });
      expect(log.events[1]).toMatchObject({ extended: true, data: '{"fifth":5}' });
      rmSync(path.join(dir, aside[0]!));
    });

    it('starts a fresh log after the TPM was reset (swtpm restarted: TPM2_Startup(CLEAR) zeroes the PCRs)', async () => {
      const before = readLog();
      await swtpm.restart();
      await measure('{"after-reset":1}', { bootId: 'boot-1' });
      const log = readLog();
      expect(log.tpmResetCount).toBe(before.tpmResetCount! + 1);
      expect(log.events).toMatchObject([{ seq: 1, extended: true, data: '{"after-reset":1}' }]);
      expect(replayLog(log).pcr).toEqual((await withTpm((c) => pcrRead(c.transport, [PCR]))).get(PCR));
      expect(existsSync(logPath())).toBe(true);
    });
  });
});
