import { AgentError } from '../lib/errors.js';
import { EK_HANDLE } from '../tpm/identity.js';
import type { TpmTransport } from '../tpm/transport.js';
import { AK_HANDLE, attestationKeyTemplate } from './attestation-key.js';
import { pcrDigest } from './pcr-selection.js';
import { parseQuote } from './quote.js';
import { activateCredential, createPrimary, evictControl, flushContext, pcrRead, quote, readPublic, TPM_RH_ENDORSEMENT, type PublicArea } from './tpm-commands.js';

/** The board's side of attestation: its AK, the credential activation that binds it to the EK, and quotes. */

/** The AK at its persistent handle, created and persisted first when the handle is empty. */
export async function ensureAttestationKey(tpm: TpmTransport): Promise<PublicArea & { created: boolean }> {
  const existing = await readPublic(tpm, AK_HANDLE);
  if (existing) return { ...existing, created: false };
  const made = await createPrimary(tpm, TPM_RH_ENDORSEMENT, attestationKeyTemplate());
  try {
    await evictControl(tpm, made.handle, AK_HANDLE);
  } finally {
    await flushContext(tpm, made.handle);
  }
  return { tpm2bPublic: made.tpm2bPublic, name: made.name, created: true };
}

/**
 * ActivateCredential for the AK with the EK: the secret comes back only from the TPM that
 * holds the EK the credential was made for, and only for the AK's name. The EK must exist
 * (the agent creates it with its identity); the AK must have been created by `attestationKey`.
 */
export async function activateAttestationKey(tpm: TpmTransport, idObject: Buffer, encryptedSecret: Buffer): Promise<Buffer> {
  if (!(await readPublic(tpm, AK_HANDLE))) {
    throw new AgentError('there is no attestation key yet', { hint: 'call attestationKey first; it creates one' });
  }
  return activateCredential(tpm, AK_HANDLE, EK_HANDLE, idObject, encryptedSecret);
}

export interface Quote {
  /** TPMS_ATTEST, the bytes the AK signed. */
  attest: Buffer;
  signature: Buffer;
  /** The SHA-256 values of the quoted PCRs, read right after the quote and proven to be the ones it covers. */
  pcrValues: Map<number, Buffer>;
}

/**
 * A quote over `pcrs` with `nonce` as qualifying data, and the PCR values it covers. The
 * values are read after the quote; should a PCR be extended in between (a hardening apply),
 * they no longer match the quote's digest and the pair is made again (a few times at most).
 */
export async function quotePcrs(tpm: TpmTransport, nonce: Buffer, pcrs: readonly number[]): Promise<Quote> {
  for (let attempt = 1; ; attempt++) {
    const { attest, signature } = await quote(tpm, AK_HANDLE, nonce, pcrs);
    const pcrValues = await pcrRead(tpm, pcrs);
    const digest = pcrDigest(pcrs.map((pcr) => pcrValues.get(pcr)!));
    if (digest.equals(parseQuote(attest).pcrDigest)) return { attest, signature, pcrValues };
    if (attempt >= 3) throw new AgentError('the PCRs kept changing while they were quoted; try again');
  }
}
