import { AgentError } from '../errors.js';
import { parseRetryAfter } from '../retry/backoff.js';
import type { TpmClient } from '../tpm/tpm-client.js';
import type { DpsResponse } from './dps-transport.js';

export type ProvisionStep = 'challenge' | 'activated' | 'assigned';

export interface DpsAssignment {
  assignedHub: string;
  deviceId: string;
}

interface AssignedState {
  assignedHub?: string;
  deviceId?: string;
}

export interface RegisterOptions {
  tpm: TpmClient;
  registrationId: string;
  idScope: string;
  globalEndpoint: string;
  /** PEM of a private CA to trust besides the system's (QA's local cloud). */
  ca?: string;
  onStep?: (step: ProvisionStep, detail?: string) => void;
}

/** DPS refused or could not be reached; `retryable` says whether trying again soon can help. */
export class DpsError extends AgentError {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | undefined,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    super(message, options);
  }
}

/**
 * One registration with DPS by TPM attestation through the unmodified Azure SDK: challenge,
 * key activated into the TPM, signed registration, polling until assigned, hub key activated.
 */
export async function registerWithDps(options: RegisterOptions): Promise<DpsAssignment> {
  // The DPS client and its HTTP stack load on the first registration, not with this module:
  // the daemon registers in a short-lived child process and never loads them itself.
  const [{ ProvisioningDeviceClient }, { StepReportingSecurityClient }, { createDpsTransport }] = await Promise.all([
    import('azure-iot-provisioning-device').then((m) => m.default), import('./step-reporting-security-client.js'), import('./dps-transport.js'),
  ]);
  const { transport, lastResponse } = createDpsTransport(options.ca);
  const security = new StepReportingSecurityClient(options.registrationId, options.tpm.tpm, options.onStep);
  // The SDK's own interface type for TPM security clients is structural; the class is what it expects.
  const client = ProvisioningDeviceClient.create(options.globalEndpoint, options.idScope, transport, security as never);
  try {
    const result = await new Promise<AssignedState>((resolve, reject) =>
      client.register((err?: Error, res?: AssignedState & { registrationState?: AssignedState }) =>
        // For TPM attestation the SDK hands over DPS's whole operation body.
        (err ? reject(err) : resolve(res?.registrationState ?? res ?? {}))));
    if (!result.assignedHub || !result.deviceId) {
      throw new DpsError('DPS answered without an assigned hub and device id', true, undefined);
    }
    options.onStep?.('assigned', `${result.assignedHub} as ${result.deviceId}`);
    return { assignedHub: result.assignedHub, deviceId: result.deviceId };
  } catch (err) {
    throw err instanceof DpsError ? err : classify(err, lastResponse(), options);
  }
}

function classify(err: unknown, response: DpsResponse | undefined, options: RegisterOptions): DpsError {
  const where = `DPS ${options.globalEndpoint} (ID scope ${options.idScope}, registration ${options.registrationId})`;
  const status = response?.statusCode;
  const retryAfterMs = parseRetryAfter(response?.retryAfter);
  if (err instanceof AgentError) {
    // The TPM failed under the SDK: the device cannot prove itself until it answers again.
    return new DpsError(`TPM failed during registration with ${where}`, true, undefined, { cause: err });
  }
  if (status === 429) return new DpsError(`${where} is throttling registrations (429)`, true, retryAfterMs, { cause: err });
  if (status !== undefined && status >= 500) return new DpsError(`${where} is unavailable (${status})`, true, retryAfterMs, { cause: err });
  if (status === 401 || status === 403) {
    return new DpsError(`${where} refused the device (${status})`, false, retryAfterMs, {
      cause: err,
      hint: 'check that an individual enrollment exists for this registration id with this EK (iot-agent tpm info) and is enabled',
    });
  }
  if (status === 404) {
    return new DpsError(`${where} does not know this device (404)`, false, retryAfterMs, {
      cause: err, hint: 'check the ID scope and that the enrollment exists',
    });
  }
  if (status === 400) return new DpsError(`${where} rejected the request (400)`, false, retryAfterMs, { cause: err });
  return new DpsError(`${where} could not be reached`, true, retryAfterMs, {
    cause: response?.error ?? err, hint: 'check the network, DNS, the clock and tls.extraCaFile for a private CA',
  });
}
