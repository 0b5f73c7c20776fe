import { identityKeyHandleInUse, useIdentityKeyHandle } from '../azure-sdk/identity-key-handle.js';
import { AgentError } from '../lib/errors.js';
import type { Proxy } from '../config/proxy-setting.js';
import { IDENTITY_KEY_HANDLE } from '../tpm/identity.js';
import type { TpmClient } from '../tpm/tpm-client.js';
import { assignmentTextProblem } from '../state/assignment-text.js';
import { classifyDpsFailure, DpsError } from './dps-error.js';

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
  /** The CAs to trust, in PEM (agent/check/trust.ts); Node's default when absent. */
  ca?: string;
  /** The HTTPS proxy DPS is reached through (plain data: the tunnel is made here). */
  proxy?: Proxy | undefined;
  /** The persistent handle the new hub key goes to (default: the SDK's 0x81000100). */
  identityKeyHandle?: number;
  onStep?: (step: ProvisionStep, detail?: string) => void;
  /** Each answer's Date header, with the local times around the request: the service's clock. */
  onDate?: (date: string | undefined, sentAt: number, receivedAt: number) => void;
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
  // Loaded on a board with a proxy only.
  const tunnel = options.proxy ? new (await import('../network/proxy-agent.js')).ProxyTunnel(options.proxy) : undefined;
  const { transport, lastResponse } = createDpsTransport(options.ca, options.onDate, tunnel);
  const previousHandle = identityKeyHandleInUse();
  useIdentityKeyHandle(options.identityKeyHandle ?? IDENTITY_KEY_HANDLE);
  const security = new StepReportingSecurityClient(options.registrationId, options.tpm.sdkTpm(), options.onStep);
  const client = ProvisioningDeviceClient.create(options.globalEndpoint, options.idScope, transport, security);
  try {
    const result = await new Promise<AssignedState>((resolve, reject) => {
      void client.register((err?: Error, res?: AssignedState & { registrationState?: AssignedState }) =>
        // For TPM attestation the SDK hands over DPS's whole operation body.
        (err ? reject(err) : resolve(res?.registrationState ?? res ?? {})));
    });
    if (!result.assignedHub || !result.deviceId) {
      throw new DpsError('DPS answered without an assigned hub and device id', { retryable: true, operatorMustAct: false });
    }
    const refused = assignmentTextProblem({ assignedHub: result.assignedHub, deviceId: result.deviceId });
    if (refused) {
      throw new DpsError(`DPS ${options.globalEndpoint} answered with an unusable assignment: ${refused}; nothing was cached`,
        { retryable: false, operatorMustAct: true }, { hint: 'check the enrollment\'s device id and the linked hubs in DPS' });
    }
    options.onStep?.('assigned', `${result.assignedHub} as ${result.deviceId}`);
    return { assignedHub: result.assignedHub, deviceId: result.deviceId };
  } catch (err) {
    if (err instanceof DpsError) throw err;
    // Before DPS's words: a proxy's refusal arrives as an HTTP answer (a 401 or 407 DPS never gave).
    // Only a failure of the HTTP layer can be the proxy's: the SDK's own error may be the TPM's (a
    // swtpm socket refused is ECONNREFUSED too, and no request went through the proxy at all).
    const viaProxy = tunnel?.explain(lastResponse()?.error);
    if (viaProxy) {
      throw new DpsError(`DPS ${options.globalEndpoint} not reached: ${viaProxy.message}`, { retryable: true, operatorMustAct: false },
        { cause: viaProxy, hint: viaProxy.hint });
    }
    throw classifyDpsFailure(err, lastResponse(), options, err instanceof AgentError || isSdkTpmFailure(err));
  } finally {
    useIdentityKeyHandle(previousHandle);
  }
}

/**
 * The SDK's TPM security client reports a failed TPM command as SecurityDeviceError
 * (azure-iot-common, whichever copy): the TPM failed, not DPS. Between DPS's challenge and
 * the signed registration the last answer DPS gave is the challenge's 401, which would
 * otherwise read as DPS refusing the device.
 */
function isSdkTpmFailure(err: unknown): boolean {
  return err instanceof Error && err.name === 'SecurityDeviceError';
}
