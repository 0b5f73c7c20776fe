import { randomBytes } from 'node:crypto';
import { TpmCommandError } from '../tpm/tpm-client.js';
import type { TpmTransport } from '../tpm/transport.js';
import { PASSWORD, runCommand, type AuthSession } from '../tpm/wire/command.js';
import { TpmParseError, tpm2b, u16, u32 } from '../tpm/wire/tpm-bytes.js';
import { ALG_ID } from './attestation-key.js';
import { marshalSelection, readSelection } from './pcr-selection.js';
import { readClockInfo, type ClockInfo } from './quote.js';

/**
 * The TPM 2.0 commands attestation needs (Part 3), marshalled by the agent itself
 * (tpm/wire/command.ts): the quote's bytes must be the TPM's own, and the clock's 64-bit
 * fields read whole.
 */
const CC = {
  EvictControl: 0x120, CreatePrimary: 0x131, PCR_Event: 0x13c, ActivateCredential: 0x147, PolicySecret: 0x151,
  Quote: 0x158, FlushContext: 0x165, ReadPublic: 0x173, StartAuthSession: 0x176, PCR_Read: 0x17e, ReadClock: 0x181,
} as const;
export const TPM_RH_OWNER = 0x40000001;
const TPM_RH_NULL = 0x40000007;
export const TPM_RH_ENDORSEMENT = 0x4000000b;
const TPM_SE_POLICY = 0x01;
const TPM_RC_HANDLE = 0x08b;
const DIGEST_SIZES: Record<number, number> = { 0x0004: 20, 0x000b: 32, 0x000c: 48, 0x000d: 64, 0x0012: 32 };

export interface PublicArea {
  /** TPM2B_PUBLIC as the TPM returned it. */
  tpm2bPublic: Buffer;
  name: Buffer;
}

/** The public area at a handle, or undefined when nothing is there. */
export async function readPublic(tpm: TpmTransport, handle: number): Promise<PublicArea | undefined> {
  try {
    const { parameters: p } = await runCommand(tpm, { name: 'ReadPublic', code: CC.ReadPublic, handles: [handle] });
    const area = p.sized('outPublic');
    return { tpm2bPublic: tpm2b(area), name: Buffer.from(p.sized('name')) };
  } catch (err) {
    // TPM_RC_HANDLE (a format-one code: its handle-number bits say which handle).
    if (err instanceof TpmCommandError && (err.responseCode & 0xbf) === TPM_RC_HANDLE) return undefined;
    throw err;
  }
}

/** Creates a primary key from `template` (TPMT_PUBLIC bytes) in `hierarchy` (empty auth) and returns its transient handle. */
export async function createPrimary(tpm: TpmTransport, hierarchy: number, template: Buffer): Promise<PublicArea & { handle: number }> {
  const { handles, parameters: p } = await runCommand(tpm, {
    name: 'CreatePrimary', code: CC.CreatePrimary, handles: [hierarchy], sessions: [PASSWORD], responseHandles: 1,
    parameters: [tpm2b(tpm2b(), tpm2b()), tpm2b(template), tpm2b(), marshalSelection([])],
  });
  const area = p.sized('outPublic');
  p.sized('creationData');
  p.sized('creationHash');
  p.take(6, 'creationTicket.tag+hierarchy');
  p.sized('creationTicket.digest');
  return { handle: handles[0]!, tpm2bPublic: tpm2b(area), name: Buffer.from(p.sized('name')) };
}

/** Makes a loaded object persistent at `persistent` (owner authorisation, empty). */
export async function evictControl(tpm: TpmTransport, object: number, persistent: number): Promise<void> {
  await runCommand(tpm, { name: 'EvictControl', code: CC.EvictControl, handles: [TPM_RH_OWNER, object], sessions: [PASSWORD], parameters: [u32(persistent)] });
}

export async function flushContext(tpm: TpmTransport, handle: number): Promise<void> {
  await runCommand(tpm, { name: 'FlushContext', code: CC.FlushContext, parameters: [u32(handle)] });
}

/**
 * ActivateCredential with the EK (its standard policy: PolicySecret(TPM_RH_ENDORSEMENT),
 * TCG EK Credential Profile B.3.3) for the object at `activate`: the TPM returns the
 * credential only when it holds the EK's private key and `activate` has the name the
 * credential was made for.
 */
export async function activateCredential(tpm: TpmTransport, activate: number, ek: number, idObject: Buffer, encryptedSecret: Buffer): Promise<Buffer> {
  const { handles: [session] } = await runCommand(tpm, {
    name: 'StartAuthSession', code: CC.StartAuthSession, handles: [TPM_RH_NULL, TPM_RH_NULL], responseHandles: 1,
    parameters: [tpm2b(randomBytes(32)), tpm2b(), Buffer.from([TPM_SE_POLICY]), u16(ALG_ID.NULL), u16(ALG_ID.SHA256)],
  });
  const policy: AuthSession = { handle: session!, continueSession: false };
  try {
    await runCommand(tpm, {
      name: 'PolicySecret', code: CC.PolicySecret, handles: [TPM_RH_ENDORSEMENT, session!], sessions: [PASSWORD],
      parameters: [tpm2b(), tpm2b(), tpm2b(), u32(0)],
    });
    const { parameters: p } = await runCommand(tpm, {
      name: 'ActivateCredential', code: CC.ActivateCredential, handles: [activate, ek], sessions: [PASSWORD, policy],
      parameters: [idObject, encryptedSecret],
    });
    return Buffer.from(p.sized('certInfo'));
  } catch (err) {
    await flushContext(tpm, session!).catch(() => undefined); // a failed command leaves the session open
    throw err;
  }
}

/** TPM2_PCR_Event: the TPM hashes `data` with every active bank's algorithm and extends `pcr` with each digest. */
export async function pcrEvent(tpm: TpmTransport, pcr: number, data: Buffer): Promise<Map<number, Buffer>> {
  const { parameters: p } = await runCommand(tpm, { name: 'PCR_Event', code: CC.PCR_Event, handles: [pcr], sessions: [PASSWORD], parameters: [tpm2b(data)] });
  const digests = new Map<number, Buffer>();
  const count = p.u32('digests.count');
  for (let i = 0; i < count; i++) {
    const alg = p.u16('digests.hashAlg');
    const size = DIGEST_SIZES[alg];
    if (size === undefined) throw new TpmParseError(`TPM2_PCR_Event: unknown hash algorithm 0x${alg.toString(16)}`);
    digests.set(alg, Buffer.from(p.take(size, 'digest')));
  }
  return digests;
}

/** SHA-256 PCR values; the TPM returns at most eight per call, so this asks until it has all. */
export async function pcrRead(tpm: TpmTransport, pcrs: readonly number[]): Promise<Map<number, Buffer>> {
  const values = new Map<number, Buffer>();
  let wanted = [...pcrs];
  for (let round = 0; wanted.length && round < 4; round++) {
    const { parameters: p } = await runCommand(tpm, { name: 'PCR_Read', code: CC.PCR_Read, parameters: [marshalSelection(wanted)] });
    p.u32('pcrUpdateCounter');
    const returned = readSelection(p);
    const count = p.u32('pcrValues.count');
    if (count !== returned.length) throw new TpmParseError(`TPM2_PCR_Read: ${count} values for ${returned.length} PCRs`);
    for (const pcr of returned) values.set(pcr, Buffer.from(p.sized(`PCR ${pcr}`)));
    wanted = wanted.filter((pcr) => !values.has(pcr));
  }
  if (wanted.length) throw new TpmParseError(`TPM2_PCR_Read: the TPM has no SHA-256 bank for PCR ${wanted.join(', ')}`);
  return values;
}

export async function readClock(tpm: TpmTransport): Promise<ClockInfo> {
  const { parameters: p } = await runCommand(tpm, { name: 'ReadClock', code: CC.ReadClock });
  p.take(8, 'time');
  return readClockInfo(p);
}

/** TPM2_Quote with the AK's own scheme: the TPMS_ATTEST bytes exactly as signed, and the TPMT_SIGNATURE. */
export async function quote(tpm: TpmTransport, ak: number, qualifyingData: Buffer, pcrs: readonly number[]): Promise<{ attest: Buffer; signature: Buffer }> {
  const { parameters: p } = await runCommand(tpm, {
    name: 'Quote', code: CC.Quote, handles: [ak], sessions: [PASSWORD],
    parameters: [tpm2b(qualifyingData), u16(ALG_ID.NULL), marshalSelection(pcrs)],
  });
  const attest = Buffer.from(p.sized('quoted'));
  return { attest, signature: Buffer.from(p.take(p.remaining, 'signature')) };
}
