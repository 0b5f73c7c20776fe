import { describe, expect, it } from 'vitest';
import {
  BOOT_PCRS, defaultSelection, formatSelection, marshalSelection, parseSelection, PcrSelectionError, readSelection, samePcrs,
} from '../../agent/attestation/pcr-selection.js';
import { TpmParseError, TpmReader, u16, u32 } from '../../agent/tpm/wire/tpm-bytes.js';

const SHA1 = 0x0004;
const SHA256 = 0x000b;

/** A TPMS_PCR_SELECTION: bank, size of the bitmap, the bitmap. */
function bank(hash: number, bitmap: number[]): Buffer {
  return Buffer.concat([u16(hash), Buffer.from([bitmap.length]), Buffer.from(bitmap)]);
}

function read(bytes: Buffer): number[] {
  return readSelection(new TpmReader(bytes, 'quote'));
}

function parseError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(TpmParseError);
    return (err as Error).message;
  }
  throw new Error('expected a TpmParseError');
}

describe('PCR selections as text', () => {
  it('cover the boot PCRs and the hardening PCR by default', () => {
    expect(BOOT_PCRS).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(defaultSelection(13)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 13]);
    expect(defaultSelection(7)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('read every PCR up to 23, and a range of one', () => {
    expect(parseSelection('0-23')).toHaveLength(24);
    expect(parseSelection('23,5-5')).toEqual([5, 23]);
  });

  it('say which text is not a PCR list, cut to 40 characters', () => {
    expect(() => parseSelection('all')).toThrow(new PcrSelectionError('"all" is not a PCR list such as 0-7,13'));
    expect(() => parseSelection('x'.repeat(50))).toThrow(new PcrSelectionError(`"${'x'.repeat(40)}" is not a PCR list such as 0-7,13`));
  });

  it('say which range is out of bounds or backwards', () => {
    expect(() => parseSelection('0-7,20-24')).toThrow(new PcrSelectionError('PCR range 20-24 is not within 0-23'));
    expect(() => parseSelection('7-3')).toThrow(new PcrSelectionError('PCR range 7-3 is not within 0-23'));
  });

  it('write runs of PCRs as ranges and single PCRs alone', () => {
    expect(formatSelection([])).toBe('');
    expect(formatSelection([13])).toBe('13');
    expect(formatSelection([0, 2, 3, 5, 6, 7, 23])).toBe('0,2-3,5-7,23');
  });

  it('compare element by element', () => {
    expect(samePcrs([0, 1, 13], [0, 1, 13])).toBe(true);
    expect(samePcrs([0, 1], [0, 2])).toBe(false);
    expect(samePcrs([0, 1], [0, 1, 13])).toBe(false);
    expect(samePcrs([], [])).toBe(true);
  });
});

describe('PCR selections as the TPM has them', () => {
  it('marshal no PCRs as an empty list, not as an empty bank', () => {
    expect(marshalSelection([]).toString('hex')).toBe('00000000');
  });

  it('marshal the SHA-256 bank with a three-byte bitmap', () => {
    expect(marshalSelection([0, 7, 8, 23]).toString('hex')).toBe('00000001' + '000b' + '03' + '810180');
  });

  it('read what they marshal', () => {
    expect(read(marshalSelection([0, 7, 13, 23]))).toEqual([0, 7, 13, 23]);
    expect(read(marshalSelection([]))).toEqual([]);
  });

  it('skip empty banks of other algorithms, as a TPM lists every bank it has', () => {
    expect(read(Buffer.concat([u32(2), bank(SHA1, [0, 0, 0]), bank(SHA256, [0, 0x20, 0])]))).toEqual([13]);
  });

  it('read larger bitmaps and merge the PCRs of repeated banks', () => {
    expect(read(Buffer.concat([u32(2), bank(SHA256, [1, 0, 0, 0]), bank(SHA256, [1, 0, 0x80, 0])]))).toEqual([0, 23]);
  });

  it('take up to 16 banks and refuse more', () => {
    const banks = (n: number) => Buffer.concat([u32(n), ...Array.from({ length: n }, () => bank(SHA1, [0, 0, 0]))]);
    expect(read(banks(16))).toEqual([]);
    expect(parseError(() => read(banks(17)))).toBe('PCR selection: 17 banks is not plausible');
  });

  it('refuse PCRs selected in another bank than SHA-256', () => {
    expect(parseError(() => read(Buffer.concat([u32(1), bank(SHA1, [1, 0, 0])])))).toBe('PCR selection: bank 0x4 is not SHA-256');
  });

  it.each([
    ['000000', 'pcrSelections.count'],
    ['0000000100', 'pcrSelections.hash'],
    ['00000001000b', 'pcrSelections.sizeofSelect'],
    ['00000001000b0301', 'pcrSelections.pcrSelect'],
  ])('name the field a selection cut to %s ends in', (hex, field) => {
    expect(parseError(() => read(Buffer.from(hex, 'hex')))).toMatch(new RegExp(`^quote: ${field.replace('.', '\\.')} needs`));
  });
});
