/**
 * The short-lived process that registers with DPS for the daemon and `iot-agent provision`
 * (started by registerInChild, never by hand): one request over the IPC channel, the TPM
 * it names opened afresh, the steps, DPS's clock readings and the assignment sent back. It
 * takes no TPM lock: its parent holds it and has lent it the TPM.
 */
import { signDpsTokensWith } from '../azure-sdk/token-clock.js';
import { serveChild } from '../child/serve-child.js';
import { ServiceClock } from '../time/service-clock.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { parseTransport } from '../tpm/transport-spec.js';
import { parseRegisterRequest, type DateEvent, type StepEvent } from './child-protocol.js';
import { registerWithDps } from './register.js';

serveChild('the provisioning process', async (message, progress) => {
  const request = parseRegisterRequest(message);
  // Registration tokens signed against DPS's time: as the parent knew it, then as DPS's answers tell.
  const clock = new ServiceClock();
  if (request.clockOffsetMs !== undefined) clock.adopt(request.clockOffsetMs);
  signDpsTokensWith(() => clock.now());
  const tpm = new TpmClient(openTransport(parseTransport(request.transport)));
  try {
    return await registerWithDps({
      tpm, registrationId: request.registrationId, idScope: request.idScope, globalEndpoint: request.globalEndpoint,
      ...(request.ca !== undefined ? { ca: request.ca } : {}),
      ...(request.identityKeyHandle !== undefined ? { identityKeyHandle: request.identityKeyHandle } : {}),
      ...(request.proxy !== undefined ? { proxy: request.proxy } : {}),
      onStep: (step, detail) => progress((detail === undefined ? { step } : { step, detail }) satisfies StepEvent),
      onDate: (date, sentAt, receivedAt) => {
        clock.observe(date, sentAt, receivedAt);
        progress((date === undefined ? { sentAt, receivedAt } : { date, sentAt, receivedAt }) satisfies DateEvent);
      },
    });
  } finally {
    // The parent takes the TPM back once this process has exited; let go of it first.
    await tpm.close().catch(() => undefined);
  }
});
