import TABLES from './response-codes.json' with { type: 'json' };

/**
 * TPM 2.0 response codes in words (TPM 2.0 Part 2, §6.6), so an error names the
 * failure instead of a hex number a technician must look up. The spec's tables are data
 * (response-codes.json); what the bits of a code mean is here.
 */

const RC_VER1 = 0x100;
const RC_FMT1 = 0x080;
const RC_WARN = 0x900;

type Entry = readonly [name: string, meaning: string];

/** A table of response-codes.json, keyed by the code's low bits written in hex. */
function byCode(table: Record<string, string[]>): Record<number, Entry> {
  return Object.fromEntries(Object.entries(table).map(([code, [name = '', meaning = '']]) => [Number(code), [name, meaning] as const]));
}

/** TPM_RC_REFERENCE_H0-H6 and _S0-S6: the nth handle (or session) names one that is not loaded. */
function references(kind: string, base: number, what: string): Record<number, Entry> {
  const ordinals = ['1st', '2nd', '3rd', '4th', '5th', '6th', '7th'];
  return Object.fromEntries(ordinals.map((nth, n) => [base + n, [`REFERENCE_${kind}${n}`, `the ${nth} ${what} that is not loaded`]]));
}

const FORMAT_ZERO = byCode(TABLES.formatZero);
const FORMAT_ONE = byCode(TABLES.formatOne);
const WARNINGS: Record<number, Entry> = {
  ...byCode(TABLES.warnings),
  ...references('H', 0x10, 'handle in the handle area references a transient object or session'),
  ...references('S', 0x18, 'authorisation session handle references a session'),
};

export const TPM_RC_SUCCESS = 0;
export const TPM_RC_INITIALIZE = RC_VER1 + 0x000;
export const TPM_RC_FAILURE = RC_VER1 + 0x001;

/** The response code of a TPM response buffer (header: tag u16, size u32, code u32). */
export function responseCodeOf(response: Buffer): number {
  return response.length >= 10 ? response.readUInt32BE(6) : -1;
}

/** e.g. "TPM_RC_HANDLE (0x18b): the handle is not correct for the use (handle 1)". */
export function describeResponseCode(rc: number): string {
  const hex = `0x${(rc >>> 0).toString(16)}`;
  if (rc === TPM_RC_SUCCESS) return `TPM_RC_SUCCESS (${hex})`;
  // A TPM's codes fit in 12 bits; the bits above name the TSS layer that answered instead
  // (and are set in a negative code, such as -1 for no response at all).
  if ((rc & 0xfffff000) !== 0) return `response code ${hex} from a TSS layer, not from the TPM`;
  if (rc & RC_FMT1) {
    const entry = FORMAT_ONE[rc & 0x3f];
    return `${named(entry, hex)}${formatOneSubject(rc)}`;
  }
  if ((rc & 0xf00) === RC_WARN) return named(WARNINGS[rc & 0x7f], hex, 'warning');
  if ((rc & 0xf00) === RC_VER1) return named(FORMAT_ZERO[rc & 0x7f], hex);
  return `TPM 1.2 or vendor response code ${hex}`;
}

function named(entry: Entry | undefined, hex: string, fallback = 'error'): string {
  return entry ? `TPM_RC_${entry[0]} (${hex}): ${entry[1]}` : `unknown TPM ${fallback} (${hex})`;
}

/** Format-one codes say which parameter, handle or session of the command was at fault. */
function formatOneSubject(rc: number): string {
  if (rc & 0x040) return ` (parameter ${(rc >> 8) & 0xf})`;
  const n = (rc >> 8) & 0x7;
  if (n === 0) return '';
  return rc & 0x800 ? ` (session ${n})` : ` (handle ${n})`;
}
