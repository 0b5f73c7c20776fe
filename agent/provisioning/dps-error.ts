import { AgentError } from '../lib/errors.js';
import { parseRetryAfter } from '../retry/backoff.js';
import type { DpsResponse } from './dps-transport.js';

/** What a registration attempt learnt about why it failed; own enumerable data, so it survives JSON between processes. */
export interface DpsErrorDetails {
  /** Whether trying again on the ordinary backoff can help. */
  retryable: boolean;
  /** What DPS asked for in Retry-After, in milliseconds. */
  retryAfterMs?: number;
  /** The HTTP status of DPS's last answer, when there was one. */
  httpStatus?: number;
  /** DPS's registration status when it ended the registration itself: "failed" or "disabled". */
  status?: string;
  /** DPS's errorCode and errorMessage for that status, when it gave them. */
  errorCode?: number;
  errorMessage?: string;
  /**
   * Only a person can mend this (the enrollment is disabled, missing or refuses this
   * device): each attempt is billed and re-keys the TPM, so retry rarely (provisioning.slowRetryHours).
   */
  operatorMustAct: boolean;
}

/** DPS refused the device, ended its registration, or could not be reached. */
export class DpsError extends AgentError {
  static override readonly errorName: string = 'DpsError';

  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly httpStatus: number | undefined;
  readonly status: string | undefined;
  readonly errorCode: number | undefined;
  readonly errorMessage: string | undefined;
  readonly operatorMustAct: boolean;

  constructor(message: string, details: DpsErrorDetails, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.retryable = details.retryable;
    this.retryAfterMs = details.retryAfterMs;
    this.httpStatus = details.httpStatus;
    this.status = details.status;
    this.errorCode = details.errorCode;
    this.errorMessage = details.errorMessage;
    this.operatorMustAct = details.operatorMustAct;
  }
}

export interface RegistrationTarget {
  globalEndpoint: string;
  idScope: string;
  registrationId: string;
}

/** What the SDK attaches to the error when DPS ends a registration with a status (`result`: DPS's body). */
interface EndedRegistration {
  status?: unknown;
  errorCode?: unknown;
  errorMessage?: unknown;
  registrationState?: { status?: unknown; errorCode?: unknown; errorMessage?: unknown };
}

/**
 * Names why a registration failed, in DPS's own words where it gave them. A registration
 * DPS ended with status "disabled" or "failed" (HTTP 200: the SDK reports "failed" as
 * DeviceRegistrationFailedError and any other status as a SyntaxError, both carrying DPS's
 * body as `result`) is not a network problem; "disabled" needs an operator.
 */
export function classifyDpsFailure(err: unknown, response: DpsResponse | undefined, target: RegistrationTarget, isTpmFailure: boolean): DpsError {
  const where = `DPS ${target.globalEndpoint} (ID scope ${target.idScope}, registration ${target.registrationId})`;
  const httpStatus = response?.statusCode;
  const retryAfterMs = parseRetryAfter(response?.retryAfter);
  const base = { retryAfterMs, httpStatus };
  if (isTpmFailure) {
    // The TPM failed under the SDK: the device cannot prove itself until it answers again.
    return new DpsError(`TPM failed during registration with ${where}`, { ...base, retryable: true, operatorMustAct: false }, { cause: err });
  }
  const ended = endedRegistration(err);
  if (ended?.status === 'disabled') {
    return new DpsError(`${where} ended the registration with status "disabled"${reasonOf(ended)}: the enrollment is disabled`,
      { ...base, ...ended, retryable: false, operatorMustAct: true }, {
        cause: err,
        hint: 'an operator must enable the enrollment in DPS; the agent tries again after provisioning.slowRetryHours, or at once with iot-agent provision',
      });
  }
  if (ended?.status !== undefined) {
    return new DpsError(`${where} ended the registration with status "${ended.status}"${reasonOf(ended)}`,
      { ...base, ...ended, retryable: true, operatorMustAct: false }, {
        cause: err, hint: 'DPS could not assign the device to an IoT hub; if this persists, check the linked hubs and the enrollment\'s allocation',
      });
  }
  if (httpStatus === 429) return new DpsError(`${where} is throttling registrations (429)`, { ...base, retryable: true, operatorMustAct: false }, { cause: err });
  if (httpStatus !== undefined && httpStatus >= 500) {
    return new DpsError(`${where} is unavailable (${httpStatus})`, { ...base, retryable: true, operatorMustAct: false }, { cause: err });
  }
  if (httpStatus === 401 || httpStatus === 403) {
    return new DpsError(`${where} refused the device (${httpStatus})`, { ...base, retryable: false, operatorMustAct: true }, {
      cause: err,
      hint: 'check that an individual enrollment exists for this registration id with this EK (iot-agent tpm info) and is enabled',
    });
  }
  if (httpStatus === 404) {
    return new DpsError(`${where} does not know this device (404)`, { ...base, retryable: false, operatorMustAct: true }, {
      cause: err, hint: 'check the ID scope and that the enrollment exists',
    });
  }
  if (httpStatus === 400) return new DpsError(`${where} rejected the request (400)`, { ...base, retryable: false, operatorMustAct: true }, { cause: err });
  return new DpsError(`${where} could not be reached`, { ...base, retryable: true, operatorMustAct: false }, {
    cause: response?.error ?? err, hint: 'check the network, DNS, the clock and tls.extraCaFile for a private CA',
  });
}

function endedRegistration(err: unknown): Pick<DpsErrorDetails, 'status' | 'errorCode' | 'errorMessage'> | undefined {
  const result = (err as { result?: EndedRegistration } | undefined)?.result;
  if (typeof result !== 'object' || result === null) return undefined;
  const state = typeof result.registrationState === 'object' && result.registrationState !== null ? result.registrationState : {};
  const status = typeof state.status === 'string' ? state.status : typeof result.status === 'string' ? result.status : undefined;
  if (status === undefined) return undefined;
  const errorCode = state.errorCode ?? result.errorCode;
  const errorMessage = state.errorMessage ?? result.errorMessage;
  return {
    status: status.slice(0, 40),
    ...(typeof errorCode === 'number' ? { errorCode } : {}),
    ...(typeof errorMessage === 'string' ? { errorMessage: errorMessage.slice(0, 300) } : {}),
  };
}

function reasonOf(ended: { errorCode?: number; errorMessage?: string }): string {
  if (ended.errorCode === undefined && ended.errorMessage === undefined) return '';
  return ` (${[ended.errorCode, ended.errorMessage].filter((p) => p !== undefined).join(': ')})`;
}
