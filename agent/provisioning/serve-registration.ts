import { signDpsTokensWith } from '../azure-sdk/token-clock.js';
import { parseTransport } from '../config/transport-spec.js';
import { ServiceClock } from '../time/service-clock.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { parseRegisterRequest, type DateEvent, type StepEvent } from './child-protocol.js';
import { registerWithDps, type DpsAssignment } from './register.js';

/**
 * The provisioning helper's work (child-main.ts serves it): one request, the TPM it names
 * opened afresh, the steps and DPS's clock readings reported as progress, the assignment
 * returned. It takes no TPM lock: its parent holds it and has lent it the TPM.
 */
export async function serveRegistration(message: unknown, progress: (event: StepEvent | DateEvent) => void): Promise<DpsAssignment> {
  const { transport, clockOffsetMs, ...registration } = parseRegisterRequest(message);
  // Registration tokens signed against DPS's time: as the parent knew it, then as DPS's answers tell.
  const clock = new ServiceClock();
  if (clockOffsetMs !== undefined) clock.adopt(clockOffsetMs);
  signDpsTokensWith(() => clock.now());
  const tpm = new TpmClient(openTransport(parseTransport(transport)));
  try {
    return await registerWithDps({
      ...registration, tpm,
      onStep: (step, detail) => progress(detail === undefined ? { step } : { step, detail }),
      onDate: (date, sentAt, receivedAt) => {
        clock.observe(date, sentAt, receivedAt);
        progress(date === undefined ? { sentAt, receivedAt } : { date, sentAt, receivedAt });
      },
    });
  } finally {
    // The parent takes the TPM back once this process has exited; let go of it first.
    await tpm.close().catch(() => undefined);
  }
}
