/**
 * TPM 2.0 response codes in words (TPM 2.0 Part 2, §6.6), so an error names the
 * failure instead of a hex number a technician must look up.
 */

const RC_VER1 = 0x100;
const RC_FMT1 = 0x080;
const RC_WARN = 0x900;

type Entry = readonly [name: string, meaning: string];

const FORMAT_ZERO: Record<number, Entry> = {
  0x000: ['INITIALIZE', 'TPM2_Startup has not been run'],
  0x001: ['FAILURE', 'the TPM is in failure mode (a software TPM answers this until it is initialised)'],
  0x003: ['SEQUENCE', 'improper use of a sequence handle'],
  0x00b: ['PRIVATE', 'not currently used'],
  0x019: ['HMAC', 'not currently used'],
  0x020: ['DISABLED', 'the command is disabled'],
  0x021: ['EXCLUSIVE', 'the command failed because of an audit sequence'],
  0x024: ['AUTH_TYPE', 'authorisation handle is not correct for the command'],
  0x025: ['AUTH_MISSING', 'the command requires an authorisation session'],
  0x026: ['POLICY', 'the policy failure in math operation or an invalid authPolicy value'],
  0x027: ['PCR', 'PCR check fail'],
  0x028: ['PCR_CHANGED', 'PCR have changed since checked'],
  0x02d: ['UPGRADE', 'the TPM is in field upgrade mode'],
  0x02e: ['TOO_MANY_CONTEXTS', 'context ID counter is at maximum'],
  0x02f: ['AUTH_UNAVAILABLE', 'authValue or authPolicy is not available for the selected entity'],
  0x030: ['REBOOT', 'a _TPM_Init and Startup(CLEAR) is required'],
  0x031: ['UNBALANCED', 'the protection algorithms (hash and symmetric) are not reasonably balanced'],
  0x042: ['COMMAND_SIZE', 'command size is inconsistent with its contents'],
  0x043: ['COMMAND_CODE', 'the command code is not supported'],
  0x044: ['AUTHSIZE', 'the authorisation size is out of range'],
  0x045: ['AUTH_CONTEXT', 'use of an authorisation session with a context command'],
  0x046: ['NV_RANGE', 'NV offset + size is out of range'],
  0x047: ['NV_SIZE', 'requested allocation size is larger than allowed'],
  0x048: ['NV_LOCKED', 'NV access locked'],
  0x049: ['NV_AUTHORIZATION', 'NV access authorisation fails'],
  0x04a: ['NV_UNINITIALIZED', 'an NV index is used before being initialised'],
  0x04b: ['NV_SPACE', 'insufficient space for NV allocation'],
  0x04c: ['NV_DEFINED', 'the NV index is already defined'],
  0x050: ['BAD_CONTEXT', 'context in TPM2_ContextLoad is not valid'],
  0x051: ['CPHASH', 'cpHash value already set or not correct'],
  0x052: ['PARENT', 'the handle is not a valid parent'],
  0x053: ['NEEDS_TEST', 'some function needs testing'],
  0x054: ['NO_RESULT', 'an internal function cannot process a request'],
  0x055: ['SENSITIVE', 'the sensitive area did not unmarshal correctly'],
};

const FORMAT_ONE: Record<number, Entry> = {
  0x01: ['ASYMMETRIC', 'asymmetric algorithm not supported or not correct'],
  0x02: ['ATTRIBUTES', 'inconsistent attributes'],
  0x03: ['HASH', 'hash algorithm not supported or not appropriate'],
  0x04: ['VALUE', 'value is out of range or is not correct for the context'],
  0x05: ['HIERARCHY', 'hierarchy is not enabled or is not correct for the use'],
  0x07: ['KEY_SIZE', 'key size is not supported'],
  0x08: ['MGF', 'mask generation function not supported'],
  0x09: ['MODE', 'mode of operation not supported'],
  0x0a: ['TYPE', 'the type of the value is not appropriate for the use'],
  0x0b: ['HANDLE', 'the handle is not correct for the use (for a persistent handle: nothing is stored there)'],
  0x0c: ['KDF', 'unsupported key derivation function'],
  0x0d: ['RANGE', 'value was out of allowed range'],
  0x0e: ['AUTH_FAIL', 'the authorisation HMAC check failed and the DA counter was incremented'],
  0x0f: ['NONCE', 'invalid nonce size or nonce value mismatch'],
  0x10: ['PP', 'authorisation requires assertion of physical presence'],
  0x12: ['SCHEME', 'unsupported or incompatible scheme'],
  0x15: ['SIZE', 'structure is the wrong size'],
  0x16: ['SYMMETRIC', 'unsupported symmetric algorithm or key size'],
  0x17: ['TAG', 'incorrect structure tag'],
  0x18: ['SELECTOR', 'union selector is incorrect'],
  0x1a: ['INSUFFICIENT', 'the TPM was unable to unmarshal a value because there were not enough octets'],
  0x1b: ['SIGNATURE', 'the signature is not valid'],
  0x1c: ['KEY', 'key fields are not compatible with the selected use'],
  0x1d: ['POLICY_FAIL', 'a policy check failed'],
  0x1f: ['INTEGRITY', 'integrity check failed'],
  0x20: ['TICKET', 'invalid ticket'],
  0x21: ['RESERVED_BITS', 'reserved bits not set to zero as required'],
  0x22: ['BAD_AUTH', 'authorisation failure without DA implications'],
  0x23: ['EXPIRED', 'the policy has expired'],
  0x24: ['POLICY_CC', 'the commandCode in the policy is not the commandCode of the command'],
  0x25: ['BINDING', 'public and sensitive portions of an object are not cryptographically bound'],
  0x26: ['CURVE', 'curve not supported'],
  0x27: ['ECC_POINT', 'point is not on the required curve'],
};

/** TPM_RC_REFERENCE_H0-H6 and _S0-S6: the nth handle (or session) names one that is not loaded. */
function references(kind: string, base: number, what: string): Record<number, Entry> {
  const ordinals = ['1st', '2nd', '3rd', '4th', '5th', '6th', '7th'];
  return Object.fromEntries(ordinals.map((nth, n) => [base + n, [`REFERENCE_${kind}${n}`, `the ${nth} ${what} that is not loaded`]]));
}

const WARNINGS: Record<number, Entry> = {
  0x01: ['CONTEXT_GAP', 'gap for context ID is too large'],
  0x02: ['OBJECT_MEMORY', 'out of memory for object contexts'],
  0x03: ['SESSION_MEMORY', 'out of memory for session contexts'],
  0x04: ['MEMORY', 'out of shared object/session memory or need space for internal operations'],
  0x05: ['SESSION_HANDLES', 'out of session handles'],
  0x06: ['OBJECT_HANDLES', 'out of object handles'],
  0x07: ['LOCALITY', 'bad locality'],
  0x08: ['YIELDED', 'the TPM has suspended operation on the command'],
  0x09: ['CANCELED', 'the command was cancelled'],
  0x0a: ['TESTING', 'the TPM is performing self-tests'],
  ...references('H', 0x10, 'handle in the handle area references a transient object or session'),
  ...references('S', 0x18, 'authorisation session handle references a session'),
  0x20: ['NV_RATE', 'the TPM is rate-limiting accesses to prevent wearout of NV'],
  0x21: ['LOCKOUT', 'authorisations for objects subject to DA protection are not allowed at this time because the TPM is in DA lockout mode'],
  0x22: ['RETRY', 'the TPM was not able to start the command'],
  0x23: ['NV_UNAVAILABLE', 'the command may require writing of NV and NV is not currently accessible'],
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
