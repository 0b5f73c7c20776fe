import securityTpm from 'azure-iot-security-tpm';
import type { TpmClient } from '../tpm/tpm-client.js';
import type { RegisterOptions } from './register.js';

// CommonJS package: Node's ESM loader cannot always see its named exports.
const { TpmSecurityClient } = securityTpm;

/**
 * Activations the SDK asks for: the first carries DPS's challenge, the second (after
 * assignment) the hub key. Counting them is how a technician sees the steps happen.
 */
export class StepReportingSecurityClient extends TpmSecurityClient {
  private activations = 0;

  constructor(registrationId: string, tpm: ReturnType<TpmClient['sdkTpm']>, private readonly onStep: RegisterOptions['onStep']) {
    super(registrationId, tpm);
  }

  override activateIdentityKey(key: Buffer, callback: (err: Error) => void): void {
    const first = this.activations++ === 0;
    if (first) this.onStep?.('challenge');
    super.activateIdentityKey(key, (err: Error) => {
      if (!err && first) this.onStep?.('activated');
      callback(err);
    });
  }
}
