import { createHash } from 'node:crypto';
import { TpmParseError, TpmReader, u16, u32 } from '../tpm/wire/tpm-bytes.js';
import { ALG_ID } from './attestation-key.js';

/**
 * PCR selections in the SHA-256 bank: written as text ("0-7,13") in commands and options,
 * marshalled as TPML_PCR_SELECTION (Part 2 §10.9.7) for the TPM, and read back from a quote.
 */
export const PCR_COUNT = 24;
/** What the firmware and boot loader measure (TCG PC Client Platform Firmware Profile §3.3.4). */
export const BOOT_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7];
const SELECT_BYTES = 3;
const SELECTION_TEXT = /^\d{1,2}(-\d{1,2})?(,\d{1,2}(-\d{1,2})?){0,23}$/;

export class PcrSelectionError extends Error {}

/** The boot PCRs and the hardening PCR: what a quote covers unless asked otherwise. */
export function defaultSelection(hardeningPcr: number): number[] {
  return normalise([...BOOT_PCRS, hardeningPcr]);
}

/** "0-7,13" → [0,1,…,7,13]; sorted, without repeats; every index below 24. */
export function parseSelection(text: string): number[] {
  if (!SELECTION_TEXT.test(text)) throw new PcrSelectionError(`${JSON.stringify(text.slice(0, 40))} is not a PCR list such as 0-7,13`);
  const out: number[] = [];
  for (const part of text.split(',')) {
    const [from, to = from] = part.split('-').map(Number) as [number, number?];
    if (from >= PCR_COUNT || to >= PCR_COUNT || to < from) throw new PcrSelectionError(`PCR range ${part} is not within 0-${PCR_COUNT - 1}`);
    for (let i = from; i <= to; i++) out.push(i);
  }
  return normalise(out);
}

/** [0,…,7,13] → "0-7,13". */
export function formatSelection(pcrs: readonly number[]): string {
  const ranges: string[] = [];
  for (let i = 0; i < pcrs.length; i++) {
    let j = i;
    while (j + 1 < pcrs.length && pcrs[j + 1] === pcrs[j]! + 1) j++;
    ranges.push(i === j ? `${pcrs[i]}` : `${pcrs[i]}-${pcrs[j]}`);
    i = j;
  }
  return ranges.join(',');
}

/** TPML_PCR_SELECTION with one TPMS_PCR_SELECTION for SHA-256 (an empty list for no PCRs). */
export function marshalSelection(pcrs: readonly number[]): Buffer {
  if (pcrs.length === 0) return u32(0);
  const bitmap = Buffer.alloc(SELECT_BYTES);
  for (const pcr of pcrs) bitmap[pcr >> 3]! |= 1 << (pcr & 7);
  return Buffer.concat([u32(1), u16(ALG_ID.SHA256), Buffer.from([SELECT_BYTES]), bitmap]);
}

/** Reads a TPML_PCR_SELECTION; refuses any bank but SHA-256 (a quote over another bank is not what was asked for). */
export function readSelection(r: TpmReader): number[] {
  const count = r.u32('pcrSelections.count');
  if (count > 16) throw new TpmParseError(`PCR selection: ${count} banks is not plausible`);
  const out: number[] = [];
  for (let bank = 0; bank < count; bank++) {
    const hash = r.u16('pcrSelections.hash');
    const size = r.take(1, 'pcrSelections.sizeofSelect')[0]!;
    const bitmap = r.take(size, 'pcrSelections.pcrSelect');
    const selected: number[] = [];
    for (let i = 0; i < size * 8; i++) if (bitmap[i >> 3]! & (1 << (i & 7))) selected.push(i);
    if (selected.length === 0) continue;
    if (hash !== ALG_ID.SHA256) throw new TpmParseError(`PCR selection: bank 0x${hash.toString(16)} is not SHA-256`);
    out.push(...selected);
  }
  return normalise(out);
}

/** The digest a quote signs over its PCRs: SHA-256 of their values, concatenated in selection order (Part 3 §18.4). */
export function pcrDigest(values: readonly Buffer[]): Buffer {
  const hash = createHash('sha256');
  for (const value of values) hash.update(value);
  return hash.digest();
}

/** Extending a SHA-256 PCR: new = SHA-256(old ‖ digest) (Part 1 §17.2). */
export function extendPcr(pcr: Buffer, digest: Buffer): Buffer {
  return createHash('sha256').update(pcr).update(digest).digest();
}

export function samePcrs(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((pcr, i) => pcr === b[i]);
}

function normalise(pcrs: readonly number[]): number[] {
  return [...new Set(pcrs)].sort((a, b) => a - b);
}
