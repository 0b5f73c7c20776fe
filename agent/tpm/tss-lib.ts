import { createRequire } from 'node:module';
import type * as Tss from 'tss.js';

/**
 * tss.js, loaded with require() instead of an ESM import. tss.js is CommonJS, and an ESM
 * import of it makes Node scan its 1 MB of sources with cjs-module-lexer to find the
 * export names: 50 to 100 ms of `iot-agent tpm info` start-up on a 2-core machine,
 * twice the cost of loading tss.js itself. The agent takes tss.js from here; the
 * type-only exports below are erased at build time and cost nothing.
 */
const tss = createRequire(import.meta.url)('tss.js') as typeof Tss;

export const Endorsement = tss.Endorsement;
export const NullPwSession = tss.NullPwSession;
export const Owner = tss.Owner;

export const Tpm = tss.Tpm;
export type Tpm = Tss.Tpm;
export const TpmTcpDevice = tss.TpmTcpDevice;
export type TpmTcpDevice = Tss.TpmTcpDevice;
export const TPM_ALG_ID = tss.TPM_ALG_ID;
export type TPM_ALG_ID = Tss.TPM_ALG_ID;
export const TPM_CAP = tss.TPM_CAP;
export type TPM_CAP = Tss.TPM_CAP;
export const TPM_CC = tss.TPM_CC;
export type TPM_CC = Tss.TPM_CC;
export const TPM_HANDLE = tss.TPM_HANDLE;
export type TPM_HANDLE = Tss.TPM_HANDLE;
export const TPMA_OBJECT = tss.TPMA_OBJECT;
export type TPMA_OBJECT = Tss.TPMA_OBJECT;
export const TPMS_NULL_ASYM_SCHEME = tss.TPMS_NULL_ASYM_SCHEME;
export type TPMS_NULL_ASYM_SCHEME = Tss.TPMS_NULL_ASYM_SCHEME;
export const TPMS_RSA_PARMS = tss.TPMS_RSA_PARMS;
export type TPMS_RSA_PARMS = Tss.TPMS_RSA_PARMS;
export const TPMS_SENSITIVE_CREATE = tss.TPMS_SENSITIVE_CREATE;
export type TPMS_SENSITIVE_CREATE = Tss.TPMS_SENSITIVE_CREATE;
export const TPMT_PUBLIC = tss.TPMT_PUBLIC;
export type TPMT_PUBLIC = Tss.TPMT_PUBLIC;
export const TPMT_SYM_DEF_OBJECT = tss.TPMT_SYM_DEF_OBJECT;
export type TPMT_SYM_DEF_OBJECT = Tss.TPMT_SYM_DEF_OBJECT;
export const TPM2B_PUBLIC_KEY_RSA = tss.TPM2B_PUBLIC_KEY_RSA;
export type TPM2B_PUBLIC_KEY_RSA = Tss.TPM2B_PUBLIC_KEY_RSA;
export const TPM_RH = tss.TPM_RH;
export type TPM_RH = Tss.TPM_RH;
export const TPM_ST = tss.TPM_ST;
export type TPM_ST = Tss.TPM_ST;
export const TpmBuffer = tss.TpmBuffer;
export type TpmBuffer = Tss.TpmBuffer;
export const TPM2_GetCapability_REQUEST = tss.TPM2_GetCapability_REQUEST;
export const TPM2_GetRandom_REQUEST = tss.TPM2_GetRandom_REQUEST;
export const TPM2_ReadPublic_REQUEST = tss.TPM2_ReadPublic_REQUEST;
export const GetCapabilityResponse = tss.GetCapabilityResponse;
export type GetCapabilityResponse = Tss.GetCapabilityResponse;
export const GetRandomResponse = tss.GetRandomResponse;
export type GetRandomResponse = Tss.GetRandomResponse;
export const ReadPublicResponse = tss.ReadPublicResponse;
export type ReadPublicResponse = Tss.ReadPublicResponse;

export type { CreatePrimaryResponse, TpmError, TPML_TAGGED_TPM_PROPERTY } from 'tss.js';
export type { ReqStructure, RespStructure } from 'tss.js/lib/TpmStructure.js';
